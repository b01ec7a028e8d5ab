import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentVia } from '../helpers/agents.ts';
import { launchChromium, openDashboard, type TestBrowser, untilText } from '../helpers/browser.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';

const ADMIN_TOKEN = 'dashboard-tz-e2e-admin-token-0123456789ab';
const SUE = { name: 'Sue Pervisor', email: 'sue@shop.test', password: 'supervisor passphrase here' };
const DAY_MS = 86_400_000;

/**
 * The dashboard's buckets are UTC hours and days (README "Analytics API"): a browser in another
 * zone must still show each bucket under its own UTC date, not the local time of its start (in
 * Los Angeles, a UTC day starts at 4 pm the day before).
 */
describe('dashboard in a browser west of UTC', () => {
  let running: RunningHub;
  let browser: TestBrowser;
  let page: Page;
  /** The UTC day whose 02:00 holds every message: three days ago. */
  let dayOfMessages = '';

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN });
    await createAgentVia(running.url, ADMIN_TOKEN, { ...SUE, role: 'supervisor', bots: ['*'] });
    const api = apiClient(running.url);
    for (const text of ['hello', 'again']) {
      const s = await api.createSession();
      expect((await api.chat(s.token, text)).status).toBe(200);
    }
    const at = Math.floor(Date.now() / DAY_MS) * DAY_MS - 3 * DAY_MS + 2 * 3_600_000;
    dayOfMessages = new Date(at).toISOString().slice(0, 10);
    await running.hub.db.query('UPDATE messages SET created_at = $1', [new Date(at)]);
    await running.hub.db.query('UPDATE sessions SET created_at = $1', [new Date(at)]);
    browser = await launchChromium({ timezoneId: 'America/Los_Angeles' });
    page = await browser.context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await running?.stop();
  });

  it("shows a day's messages under its UTC date, and says the times are UTC", async () => {
    await openDashboard(page, running.url, SUE);
    await page.getByLabel('Range', { exact: true }).selectOption('7d');
    const figure = page.locator('figure[data-metric="messages"]');
    await untilText(figure.locator('li[data-series="api in"] .total'), (t) => t === '2');
    // Seven days, today the last: the messages' day is the fourth point, in the middle of the plot.
    const over = figure.locator('.u-over');
    const box = (await over.boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    // uPlot's legend (hidden by the console's style, which lists the totals instead) names the
    // point under the cursor with the same time zone as the axis' dates.
    const legend = figure.locator('.u-legend');
    await untilText(legend.locator('tr').filter({ hasText: 'api in' }).locator('.u-value'), (t) => t === '2');
    expect(await legend.locator('tr').first().locator('.u-value').textContent()).toBe(dayOfMessages);
    expect(await page.getByRole('form', { name: 'Dashboard filters' }).textContent()).toContain(
      'Times in UTC',
    );
  });
});
