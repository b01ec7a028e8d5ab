import fs from 'node:fs/promises';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentVia } from '../helpers/agents.ts';
import { launchChromium, openDashboard, queueCell, type TestBrowser } from '../helpers/browser.ts';
import { tempDir } from '../helpers/database.ts';
import { freePort } from '../helpers/free-port.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TestRedisServer } from '../helpers/redis-server.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'dashboard-redis-away-admin-token-0123456789';
const SUE = { name: 'Sue Pervisor', email: 'sue@away.test', password: 'supervisor passphrase here' };

/**
 * The dashboard's queues panel in Debian's chromium while the hub's Redis (a server of the test's
 * own) goes away and comes back: the panel says the queues cannot be read, the charts stay, and
 * the queues come back by themselves.
 */
describe('the dashboard while Redis is away', () => {
  let dir: string;
  let redis: TestRedisServer;
  let gateway: RunningHub;
  let browser: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    dir = await tempDir('sbt-redis-');
    redis = new TestRedisServer(await freePort(), dir);
    await redis.start();
    gateway = await startTestHub(
      { redisUrl: redis.url, redisPrefix: 'away:', adminToken: ADMIN_TOKEN },
      { role: 'gateway' },
    );
    await createAgentVia(gateway.url, ADMIN_TOKEN, { ...SUE, role: 'supervisor', bots: ['*'] });
    browser = await launchChromium();
    page = await browser.context.newPage();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    await redis?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('says the queues cannot be read, keeps the charts, and shows the queues again once Redis is back', async () => {
    await openDashboard(page, gateway.url, SUE);
    const panel = page.locator('section.queues');
    await panel.locator('tr[data-queue="inbound"]').waitFor();
    await page.locator('figure[data-metric="messages"]').waitFor();

    await redis.stop();
    // The next reload (Live, every 5 s) finds the queue route answering 503.
    const alert = panel.getByRole('alert');
    await alert.waitFor({ timeout: 20_000 });
    expect(await alert.textContent()).toContain('not reachable right now');
    expect(await panel.locator('table').count()).toBe(0);
    // The charts come from PostgreSQL: they keep reloading ("Updated …" moves on), unhindered.
    const updated = page.locator('form.filters .updated');
    const before = await updated.textContent();
    await until(
      () => updated.textContent(),
      (t) => t !== before && /^Updated /.test(t ?? ''),
      15_000,
    );
    expect(await page.locator('.dashboard > p[role="alert"]').count()).toBe(0);
    expect(await alert.count()).toBe(1);

    await redis.start();
    await panel.locator('tr[data-queue="inbound"]').waitFor({ timeout: 30_000 });
    await until(
      () => alert.count(),
      (n) => n === 0,
      10_000,
    );
    expect(await queueCell(page, 'inbound', 'depth').textContent()).toBe('0');
  });
});
