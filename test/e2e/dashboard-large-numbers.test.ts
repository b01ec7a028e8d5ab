import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createAgentVia } from '../helpers/agents.ts';
import { launchChromium, openDashboard, type TestBrowser, untilText } from '../helpers/browser.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';

const ADMIN_TOKEN = 'dashboard-big-e2e-admin-token-0123456789a';
const SUE = { name: 'Sue Pervisor', email: 'sue@shop.test', password: 'supervisor passphrase here' };
const DAY_MS = 86_400_000;
const MESSAGES_IN = 123_456_789;

/**
 * A large deployment's figures: a day whose rollup (README "How it stays fast") holds over a
 * hundred million messages in. The totals are written grouped, so that they can be read at a glance.
 */
describe('dashboard with the numbers of a large deployment', () => {
  let running: RunningHub;
  let browser: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN });
    await createAgentVia(running.url, ADMIN_TOKEN, { ...SUE, role: 'supervisor', bots: ['*'] });
    // Three days ago, rolled up: the dashboard reads the row as it is.
    const day = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS - 3 * DAY_MS);
    await running.hub.db.query(`INSERT INTO analytics_rolled (grain, bucket) VALUES ('day', $1)`, [day]);
    await running.hub.db.query(
      `INSERT INTO analytics_rollup (grain, bucket, metric, bot, channel, key, value)
       VALUES ('day', $1, 'messages', 'default', 'whatsapp', 'in', $2)`,
      [day, MESSAGES_IN],
    );
    browser = await launchChromium();
    page = await browser.context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await running?.stop();
  });

  it('writes a total of 123,456,789 messages grouped by thousands', async () => {
    await openDashboard(page, running.url, SUE);
    await page.getByLabel('Range', { exact: true }).selectOption('7d');
    const total = page.locator('figure[data-metric="messages"] li[data-series="whatsapp in"] .total');
    await untilText(total, (t) => t === '123,456,789');
  });
});
