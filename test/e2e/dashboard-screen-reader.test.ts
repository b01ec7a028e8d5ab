import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHARTS } from '../../console/src/Dashboard.tsx';
import { createAgentVia } from '../helpers/agents.ts';
import { countJsonReads, launchChromium, openDashboard, type TestBrowser } from '../helpers/browser.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'dashboard-sr-e2e-admin-token-0123456789ab';
const SUE = { name: 'Sue Pervisor', email: 'sue@shop.test', password: 'supervisor passphrase here' };

/** What a screen reader announces by itself: the text of the page's live regions. */
const liveRegions = (page: Page) =>
  page.evaluate(() =>
    Array.from(
      document.querySelectorAll('[aria-live], [role="status"], [role="alert"], [role="log"], output'),
    )
      .filter((e) => e.getAttribute('aria-live') !== 'off')
      .map((e) => e.textContent ?? ''),
  );

/**
 * The dashboard reloads every 5 seconds while Live is on. A screen reader announces every change
 * of a live region: one that changes at each reload, when no figure did, talks over everything
 * the supervisor reads, every 5 seconds.
 */
describe('dashboard with a screen reader', () => {
  let running: RunningHub;
  let browser: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN });
    await createAgentVia(running.url, ADMIN_TOKEN, { ...SUE, role: 'supervisor', bots: ['*'] });
    const api = apiClient(running.url);
    const s = await api.createSession();
    expect((await api.chat(s.token, 'hello')).status).toBe(200);
    browser = await launchChromium();
    page = await browser.context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await running?.stop();
  });

  it('announces nothing at a live reload that changed no figure', async () => {
    const reads = await countJsonReads(page);
    await openDashboard(page, running.url, SUE);
    const charts = () => reads('/api/admin/analytics/messages');
    // The charts drawn once: the page says when.
    await page.getByText(/^Updated /).waitFor();
    const before = await liveRegions(page);
    // Two reloads later (Live is on by default), with nothing new in the database.
    const seen = await charts();
    await until(charts, (n) => n >= seen + 2);
    await until(
      () => reads('/api/admin/analytics/'),
      (n) => n >= (seen + 2) * CHARTS.length,
    );
    expect(await liveRegions(page)).toEqual(before);
  });
});
