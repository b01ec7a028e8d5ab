import fs from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIVE_MS } from '../../console/src/Dashboard.tsx';
import { createAgentVia } from '../helpers/agents.ts';
import { launchChromium, openDashboard, queueCell, type TestBrowser, untilText } from '../helpers/browser.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { queuedMessage, untilAnswered } from '../helpers/stranded-lane.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'dashboard-trend-e2e-admin-token-0123456789';
const SUE = { name: 'Sue Pervisor', email: 'sue@trend.test', password: 'supervisor passphrase here' };
/** Set to a folder to write README's screenshot of the panel while a queue grows. */
const SCREENSHOTS = process.env.SCREENSHOTS_DIR;

/**
 * The queues panel's "Last 10 s" column in Debian's chromium: the page's clock is driven by the
 * test (Playwright's fake timers), so each reload of "Live" comes when the test says; the queue
 * itself is real (a gateway that queues, then a worker that drains, on real Redis).
 */
describe('the dashboard shows which way each queue is going', () => {
  const redis = testRedisPrefix();
  let gateway: RunningHub;
  let worker: RunningHub | undefined;
  let browser: TestBrowser;
  let page: Page;

  const cell = (queue: string, field: string) => queueCell(page, queue, field);
  /** Waits until the cell's text passes `ok` (after the reload the test just made). */
  const shows = (queue: string, field: string, ok: (text: string) => boolean) =>
    untilText(cell(queue, field), ok);
  /** The inbound queue's depth, as the hub's queue status reads it now. */
  const inboundDepth = async (): Promise<number> => {
    const res = await fetch(`${gateway.url}/api/admin/queue`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const { queues } = (await res.json()) as { queues: { queue: string; depth: number }[] };
    return queues.find((q) => q.queue === 'inbound')!.depth;
  };
  /** One reload of "Live": the page's clock moves on by its period. */
  const nextReload = () => page.clock.runFor(LIVE_MS);

  beforeAll(async () => {
    gateway = await startTestHub(
      { redisUrl: TEST_REDIS_URL, redisPrefix: redis.prefix, adminToken: ADMIN_TOKEN },
      { role: 'gateway' },
    );
    await createAgentVia(gateway.url, ADMIN_TOKEN, { ...SUE, role: 'supervisor', bots: ['*'] });
    browser = await launchChromium();
    page = await browser.context.newPage();
  });
  afterAll(async () => {
    await browser?.close();
    await worker?.stop();
    await gateway?.stop();
    await redis.cleanup();
  });

  it('up while messages wait, down while a worker drains them, then steady', async () => {
    await page.clock.install();
    await openDashboard(page, gateway.url, SUE);
    await shows('inbound', 'depth', (t) => t === '0');
    // No trend from one reading.
    expect(await cell('inbound', 'trend').textContent()).toBe('–');
    // From here on, time moves in the page only when the test moves it.
    await page.clock.pauseAt(Date.now() + 1_000);

    // A person writes while no worker runs: the session's start and the message wait.
    const auth = await queuedMessage(gateway.url, 'anyone there?');
    await nextReload();
    await shows('inbound', 'depth', (t) => t === '2');
    await nextReload();
    await shows('inbound', 'trend', (t) => t.startsWith('↑ '));
    expect(await cell('inbound', 'trend').textContent()).toMatch(/^↑ \d+\/min$/);
    if (SCREENSHOTS) {
      await fs.mkdir(SCREENSHOTS, { recursive: true });
      await page
        .locator('section.queues')
        .screenshot({ path: path.join(SCREENSHOTS, 'dashboard-queue-trend.png') });
    }

    // A worker starts and answers.
    worker = await startTestHub(
      { databaseUrl: gateway.hub.config.databaseUrl, redisUrl: TEST_REDIS_URL, redisPrefix: redis.prefix },
      { role: 'worker' },
    );
    await untilAnswered(gateway.url, auth);
    // The answer is in the history a moment before its envelope leaves the queue: the reload
    // must come after the queue has emptied, or it reads the depth of before.
    await until(inboundDepth, (depth) => depth === 0, 20_000);
    await nextReload();
    await shows('inbound', 'depth', (t) => t === '0');
    await shows('inbound', 'trend', (t) => t.startsWith('↓ '));
    // Emptied: nothing left to say when it empties.
    expect(await cell('inbound', 'trend').textContent()).toMatch(/^↓ \d+\/min$/);

    // Two reloads later the last 10 s saw no change.
    await nextReload();
    await nextReload();
    await shows('inbound', 'trend', (t) => t === 'steady');
    expect(await cell('outbound', 'trend').textContent()).toBe('steady');

    // The page is loaded again (the supervisor pressed reload), its clock running on from here:
    // the tab kept its readings, so the first reading after the reload has its trend at once
    // (from its own readings alone, the page would say "–" for the next 9 s).
    await page.clock.resume();
    await page.reload();
    await shows('inbound', 'depth', (t) => t === '0');
    expect(await cell('inbound', 'trend').textContent()).toBe('steady');
  });
});
