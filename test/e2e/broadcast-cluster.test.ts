import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BroadcastProgressView } from '../../src/outbound/cli.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { adminClient } from '../helpers/admin.ts';
import { Cluster } from '../helpers/cluster.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import type { ServerProcess } from '../helpers/server-process.ts';
import { until } from '../helpers/until.ts';
import { postWhatsAppWebhook } from '../helpers/whatsapp-cloud.ts';

const ACCESS_TOKEN = 'EAAJB-cluster-token';
const APP_SECRET = 'cluster-app-secret';
const NUMBER = '106540352242922';
const ADMIN_TOKEN = 'broadcast-cluster-admin-token-0123456789abcdef';
const RECIPIENTS = 5_000;
const RATE = 200;

/**
 * Broadcasts on a gateway and two worker processes sharing PostgreSQL and Redis (BullMQ
 * scheduler and lanes), sending through a local Graph API.
 */
describe('broadcasts across worker processes', () => {
  let graph: GraphApi;
  let cluster: Cluster;
  let gateway: ServerProcess;
  let admin: ReturnType<typeof adminClient>;

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    cluster = new Cluster({
      ADMIN_TOKEN,
      WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
      WHATSAPP_APP_SECRET: APP_SECRET,
      WHATSAPP_VERIFY_TOKEN: 'verify',
      WHATSAPP_GRAPH_URL: graph.url,
      WHATSAPP_NUMBERS: `${NUMBER}:default`,
      // The Cloud API's default cap is 80/s; this business has a higher tier.
      BROADCAST_RATE_LIMITS: `whatsapp=${RATE}`,
      DATABASE_POOL_SIZE: '8',
    });
    await cluster.init();
    gateway = await cluster.addGateway();
    await cluster.addWorker();
    await cluster.addWorker();
    admin = adminClient(gateway.url, ADMIN_TOKEN);
  }, 180_000);
  afterAll(async () => {
    await cluster?.stop();
    await graph?.close();
  });

  const say = async (waId: string, text: string) => {
    const payload = doc.variant(doc.textMessage, {
      from: waId,
      suffix: `${waId}-${text}`,
      timestamp: new Date(),
    });
    (payload as unknown as { entry: { changes: { value: { messages: { text: { body: string } }[] } }[] }[] })
      .entry[0]!.changes[0]!.value.messages[0]!.text.body = text;
    const res = await postWhatsAppWebhook(gateway.url, payload, APP_SECRET);
    expect(res.status).toBe(200);
  };
  const progress = async (id: string) =>
    (await admin('GET', `/api/admin/broadcasts/${id}`)).json as BroadcastProgressView;
  /** Template messages of one broadcast (by template name) that reached each number. */
  const reached = (name: string) => {
    const counts = new Map<string, number>();
    for (const r of graph.requests)
      if (r.body.type === 'template' && (r.body.template as { name: string }).name === name)
        counts.set(r.body.to as string, (counts.get(r.body.to as string) ?? 0) + 1);
    return counts;
  };

  it(`sends ${RECIPIENTS} recipients at ${RATE}/s once each, skips opted-out people, and counts right`, async () => {
    const numbers = Array.from(
      { length: RECIPIENTS },
      (_, i) => `1555${String(1_000_000 + i).padStart(7, '0')}`,
    );
    const stopped = [numbers[7]!, numbers[1234]!, numbers[4999]!];
    for (const n of stopped) await say(n, 'STOP');
    await until(
      () => stopped.filter((n) => graph.to(n).some((r) => r.body.type === 'text')).length,
      (n) => n === stopped.length,
      60_000,
    );

    const res = await admin('POST', '/api/admin/broadcasts', {
      bot: 'default',
      channel: 'whatsapp',
      to: numbers.map((n) => `+${n}`),
      template: { name: 'big_sale', language: 'en', parameters: ['20%'] },
      rate_per_second: RATE,
    });
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ total: RECIPIENTS, opted_out: stopped.length, rate_per_second: RATE });

    // Progress only moves forward, and its buckets always add up to the total.
    let last: BroadcastProgressView | undefined;
    const done = await until(
      async () => {
        const p = await progress(res.json.broadcast_id);
        expect(p.queued + p.sent + p.delivered + p.failed + p.opted_out).toBe(p.total);
        expect(p.total).toBe(RECIPIENTS);
        if (last) expect(p.queued).toBeLessThanOrEqual(last.queued);
        last = p;
        return p;
      },
      (p) => p.status === 'completed',
      300_000,
      500,
    );
    expect(done).toMatchObject({
      total: RECIPIENTS,
      queued: 0,
      failed: 0,
      opted_out: stopped.length,
    });
    expect(done.sent + done.delivered).toBe(RECIPIENTS - stopped.length);

    const counts = reached('big_sale');
    expect(counts.size).toBe(RECIPIENTS - stopped.length);
    expect([...counts.values()].every((c) => c === 1)).toBe(true);
    for (const n of stopped) expect(counts.has(n)).toBe(false);
    expect(cluster.crashes()).toEqual([]);
  }, 420_000);

  it('resumes after every worker is killed and a new one starts, sending nobody twice', async () => {
    const numbers = Array.from({ length: 6 }, (_, i) => `1556${String(1_000_000 + i).padStart(7, '0')}`);
    const res = await admin('POST', '/api/admin/broadcasts', {
      bot: 'default',
      channel: 'whatsapp',
      to: numbers,
      template: { name: 'slow_notice', language: 'en' },
      // One recipient every two seconds: between two of them nothing is in flight.
      rate_per_second: 0.5,
    });
    expect(res.status).toBe(202);
    await until(
      () => progress(res.json.broadcast_id),
      (p) => p.sent + p.delivered >= 2,
      60_000,
      50,
    );
    for (const w of [...cluster.workers]) await w.stop('SIGKILL');
    cluster.workers.length = 0;
    const halfway = reached('slow_notice').size;
    expect(halfway).toBeLessThan(numbers.length);
    await cluster.addWorker();
    const done = await until(
      () => progress(res.json.broadcast_id),
      (p) => p.status === 'completed',
      120_000,
      250,
    );
    expect(done).toMatchObject({ total: 6, queued: 0, failed: 0, opted_out: 0 });
    const counts = reached('slow_notice');
    expect(numbers.map((n) => counts.get(n))).toEqual(numbers.map(() => 1));
    expect(cluster.crashes()).toEqual([]);
  }, 240_000);
});
