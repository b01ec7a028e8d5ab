import fs from 'node:fs/promises';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHARTS } from '../../console/src/Dashboard.tsx';
import { createAgentVia } from '../helpers/agents.ts';
import { launchChromium, openDashboard, type TestBrowser } from '../helpers/browser.ts';
import { tempDir } from '../helpers/database.ts';
import { freePort } from '../helpers/free-port.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TestPostgresServer } from '../helpers/postgres-server.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'dashboard-pg-away-admin-token-0123456789ab';
const SUE = { name: 'Sue Pervisor', email: 'sue@away.test', password: 'supervisor passphrase here' };

/**
 * The dashboard's charts in Debian's chromium while the hub's PostgreSQL (a server of the test's
 * own) goes away and comes back: each chart says its figures are not up to date (or could not be
 * read), rather than passing old figures for today's or saying "Loading…" for ever, and the
 * charts come back by themselves.
 */
describe('the dashboard while PostgreSQL is away', () => {
  let dir: string;
  let server: TestPostgresServer;
  let running: RunningHub;
  let browser: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    dir = await tempDir('sbt-pg-');
    server = new TestPostgresServer(await freePort(), `${dir}/data`);
    server.init();
    server.start();
    running = await startTestHub({ adminToken: ADMIN_TOKEN, databaseUrl: server.adminUrl });
    await createAgentVia(running.url, ADMIN_TOKEN, { ...SUE, role: 'supervisor', bots: ['*'] });
    const api = apiClient(running.url);
    const s = await api.createSession();
    expect((await api.chat(s.token, 'hello')).status).toBe(200);
    browser = await launchChromium();
    page = await browser.context.newPage();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await running?.stop().catch(() => undefined);
    try {
      server?.stop();
    } catch {
      // Stopped already.
    }
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('says in each chart that its figures are old or unread, and draws them again once PostgreSQL is back', async () => {
    await openDashboard(page, running.url, SUE);
    await page
      .locator('form.filters .updated')
      .filter({ hasText: /^Updated / })
      .waitFor();
    const stale = page.locator('figure.chart .stale');
    const messagesIn = page.locator('figure[data-metric="messages"] li[data-series="api in"] .total');
    expect(await messagesIn.textContent()).toBe('1');

    server.stop();
    // The next reload (Live, every 5 s) fails: every chart says so, and keeps its figures.
    await until(
      () => stale.count(),
      (n) => n === CHARTS.length,
      20_000,
    );
    // The figures shown were read at the last reload that worked, which the page still names.
    const shownSince = (await page.locator('form.filters .updated').textContent())!.replace(/^Updated /, '');
    for (const text of await stale.allTextContents())
      expect(text).toBe(
        `Not up to date: these are the figures of ${shownSince}. A service the hub depends on is not reachable right now; retry shortly`,
      );
    expect(await messagesIn.textContent()).toBe('1');

    // Other filters, still away: nothing to show, and each chart says why (not "Loading…").
    await page.getByLabel('Range', { exact: true }).selectOption('7d');
    await until(
      () => stale.allTextContents(),
      (texts) => texts.length === CHARTS.length && texts.every((t) => t.startsWith('Not read. ')),
      20_000,
    );
    expect(await page.locator('figure.chart .loading').count()).toBe(0);

    server.start();
    await until(
      () => messagesIn.textContent({ timeout: 1_000 }).catch(() => null),
      (t) => t === '1',
      30_000,
    );
    await until(
      () => stale.count(),
      (n) => n === 0,
      10_000,
    );
  });
});
