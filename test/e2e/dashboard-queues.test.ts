import fs from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentVia } from '../helpers/agents.ts';
import { launchChromium, openDashboard, queueCell, type TestBrowser, untilText } from '../helpers/browser.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { repairAndAnswer, strandedMessage } from '../helpers/stranded-lane.ts';

const ADMIN_TOKEN = 'dashboard-queues-e2e-admin-token-0123456789';
const SUE = { name: 'Sue Pervisor', email: 'sue@queues.test', password: 'supervisor passphrase here' };
/** Set to a folder to write README's screenshot of the queues panel while the test runs. */
const SCREENSHOTS = process.env.SCREENSHOTS_DIR;

/**
 * The dashboard's queues panel in Debian's chromium, on a gateway and a worker sharing Redis: a
 * supervisor sees a message's lane held by a wake job that is over, then sees it cleared once a
 * worker's sweep hands the lane back and the message is answered.
 */
describe('the dashboard shows the shared queues, stuck lanes included', () => {
  const redis = testRedisPrefix();
  let gateway: RunningHub;
  let worker: RunningHub | undefined;
  let connection: Redis;
  let browser: TestBrowser;
  let page: Page;

  const row = (queue: string) => page.locator(`section.queues tr[data-queue="${queue}"]`);
  const cell = (queue: string, field: string) => queueCell(page, queue, field);
  const reads = (loc: Locator, text: string) => untilText(loc, (t) => t === text);

  beforeAll(async () => {
    // The gateway alone first: it queues, and nothing drains until the worker starts.
    gateway = await startTestHub(
      { redisUrl: TEST_REDIS_URL, redisPrefix: redis.prefix, adminToken: ADMIN_TOKEN },
      { role: 'gateway' },
    );
    connection = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    await createAgentVia(gateway.url, ADMIN_TOKEN, { ...SUE, role: 'supervisor', bots: ['*'] });
    browser = await launchChromium();
    page = await browser.context.newPage();
  });
  afterAll(async () => {
    await browser?.close();
    connection?.disconnect();
    await worker?.stop();
    await gateway?.stop();
    await redis.cleanup();
  });

  it('a supervisor sees both queues empty, then a stuck lane, then the lane handed back and the message answered', async () => {
    await openDashboard(page, gateway.url, SUE);

    const table = page.getByRole('table', { name: 'Queues' });
    await table.waitFor();
    expect(await row('inbound').locator('th').textContent()).toContain('Redis');
    for (const queue of ['inbound', 'outbound'])
      for (const field of ['depth', 'readyLanes', 'claimed', 'stranded', 'deadLetters'])
        await reads(cell(queue, field), '0');
    expect(await page.getByRole('list', { name: 'What needs attention' }).count()).toBe(0);

    // A person writes; the lane ends up claimed by a wake job that is gone.
    const auth = await strandedMessage(gateway.url, connection, redis.prefix, 'is anyone there?');

    // The session's start (its greeting) and the message, in one lane held by a job that is over.
    await reads(cell('inbound', 'stranded'), '1');
    await reads(cell('inbound', 'depth'), '2');
    await reads(cell('inbound', 'claimed'), '1');
    expect(await cell('inbound', 'stranded').getAttribute('class')).toBe('alert');
    expect(await cell('outbound', 'stranded').getAttribute('class')).toBeNull();
    const notes = page.getByRole('list', { name: 'What needs attention' });
    expect(await notes.textContent()).toContain(
      'inbound: 1 lane is held by 1 wake job that ended without handing it back',
    );
    if (SCREENSHOTS) {
      await fs.mkdir(SCREENSHOTS, { recursive: true });
      await page
        .locator('section.queues')
        .screenshot({ path: path.join(SCREENSHOTS, 'dashboard-queues.png') });
    }

    // A worker starts: its sweep hands the lane back, and the message is answered.
    worker = await repairAndAnswer(gateway, redis.prefix, auth);
    await reads(cell('inbound', 'depth'), '0');
    await reads(cell('inbound', 'stranded'), '0');
    await reads(cell('inbound', 'claimed'), '0');
    expect(await cell('inbound', 'stranded').getAttribute('class')).toBeNull();
    await notes.waitFor({ state: 'detached' });
  });
});
