import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin.ts';
import { Cluster } from '../helpers/cluster.ts';
import { apiClient } from '../helpers/hub.ts';
import type { ServerProcess } from '../helpers/server-process.ts';
import { until } from '../helpers/until.ts';
import {
  type ReceivedEvent,
  SECRET,
  WEBHOOK_SECRET_ENV,
  WebhookReceiver,
  webhookConfigDir,
} from '../helpers/webhook-receiver.ts';

const ADMIN_TOKEN = 'webhook-cluster-admin-token-0123456789abcdef';

/**
 * A gateway and a worker process on PostgreSQL and Redis (BullMQ scheduler). The receiver holds
 * the worker's requests open; the worker is SIGKILLed mid-request; a new worker must deliver every
 * event, in order per session (and per broadcast), once the receiver answers again.
 */
describe('event webhooks across processes', () => {
  const receiver = new WebhookReceiver();
  let cluster: Cluster;
  let gateway: ServerProcess;
  let db: pg.Client;

  beforeAll(async () => {
    await receiver.listen();
    cluster = new Cluster({
      CONFIG_DIR: await webhookConfigDir(receiver.url, {}, [
        'session.started',
        'session.ended',
        'message.received',
        'message.sent',
        'message.delivered',
        'broadcast.started',
        'broadcast.progress',
        'broadcast.dispatched',
        'broadcast.completed',
      ]),
      ADMIN_TOKEN,
      WEBHOOK_BROADCAST_PROGRESS_MS: '500',
      [WEBHOOK_SECRET_ENV]: SECRET,
      WEBHOOK_POLL_MS: '50',
      WEBHOOK_RETRY_BASE_MS: '200',
      WEBHOOK_TIMEOUT_SECONDS: '3',
    });
    await cluster.init();
    gateway = await cluster.addGateway();
    await cluster.addWorker();
    db = new pg.Client({ connectionString: cluster.database?.url });
    await db.connect();
  }, 120_000);
  afterAll(async () => {
    await db?.end();
    await cluster?.stop();
    await receiver.stopListening();
  });

  it('a SIGKILLed worker loses no event, and a hanging receiver never holds a turn', async () => {
    receiver.mode = 'hang';
    const api = apiClient(gateway.url);
    const sessions = [await api.createSession('hooks'), await api.createSession('hooks')];
    for (let i = 0; i < 3; i++)
      for (const s of sessions) {
        const reply = await api.chat(s.token, `message ${i}`);
        expect(reply.status).toBe(200);
      }
    await until(
      () => receiver.hanging,
      (n) => n >= 1,
    );
    await cluster.workers[0]?.stop('SIGKILL');
    receiver.release('up');
    await cluster.addWorker();

    for (const s of sessions) {
      const { rows } = await db.query<{ event_id: string }>(
        'SELECT event_id FROM webhook_outbox WHERE session_id = $1 ORDER BY id',
        [s.session_id],
      );
      expect(rows.length).toBeGreaterThanOrEqual(8); // started, greeting, 3 × (received, sent)
      const got = await until(
        () => (receiver.bySession().get(s.session_id) ?? []).map((e) => e.id),
        (e) => e.length >= rows.length,
        90_000,
      );
      expect(got).toEqual(rows.map((r) => r.event_id));
    }
    expect(receiver.badSignatures).toBe(0);
    expect(receiver.badShapes).toEqual([]);
    expect(cluster.crashes()).toEqual([]);
  }, 150_000);

  it("a broadcast's events survive a SIGKILLed worker: every one arrives, in order, once the receiver answers", async () => {
    receiver.mode = 'hang';
    const api = apiClient(gateway.url);
    const sessions = [];
    for (let i = 0; i < 4; i++) sessions.push(await api.createSession('hooks'));
    const res = await adminClient(gateway.url, ADMIN_TOKEN)('POST', '/api/admin/broadcasts', {
      bot: 'hooks',
      channel: 'api',
      to: sessions.map((s) => s.session_id),
      text: 'We are closed on Monday',
      rate_per_second: 2,
    });
    expect(res.status).toBe(202);
    const id = res.json.broadcast_id as string;
    const lane = `broadcast:${id}`;
    // The worker holds the broadcast's first event open at the receiver, mid-run: kill it there.
    await until(
      async () => (await db.query('SELECT 1 FROM webhook_lanes WHERE lane = $1', [lane])).rows.length,
      (n) => n === 1,
    );
    await cluster.workers.at(-1)?.stop('SIGKILL');
    receiver.release('up');
    await cluster.addWorker();

    await until(
      async () =>
        (await db.query('SELECT completed_at FROM broadcasts WHERE id = $1', [id])).rows[0]?.completed_at,
      (at) => Boolean(at),
      90_000,
    ).catch(async (err: unknown) => {
      // What a stalled broadcast left behind: where it stopped is in these.
      console.error(await broadcastDump(db, id, lane, cluster));
      throw err;
    });
    const { rows } = await db.query<{ event_id: string }>(
      'SELECT event_id FROM webhook_outbox WHERE ordering_key = $1 ORDER BY id',
      [lane],
    );
    const ofBroadcast = () =>
      receiver.firstArrivals().filter((e: ReceivedEvent) => e.data.broadcast_id === id);
    const got = await until(
      () => ofBroadcast().map((e) => e.id),
      (e) => e.length >= rows.length,
      90_000,
    );
    expect(got).toEqual(rows.map((r) => r.event_id));
    expect(
      ofBroadcast()
        .map((e) => e.type)
        .join(' '),
    ).toMatch(
      /^broadcast\.started( broadcast\.progress)* broadcast\.dispatched( broadcast\.progress)* broadcast\.completed$/,
    );
    expect(receiver.badSignatures).toBe(0);
    expect(receiver.badShapes).toEqual([]);
    expect(cluster.crashes()).toEqual([]);
  }, 150_000);
});

/** The broadcast's rows, its recipients' states, its webhook lane and outbox, and the workers' logs. */
async function broadcastDump(db: pg.Client, id: string, lane: string, cluster: Cluster): Promise<string> {
  const q = async (sql: string, params: unknown[]) =>
    JSON.stringify((await db.query(sql, params)).rows, null, 1);
  return [
    `broadcast ${id}: ${await q('SELECT * FROM broadcasts WHERE id = $1', [id])}`,
    `recipients: ${await q('SELECT * FROM outbound_messages WHERE broadcast_id = $1', [id])}`,
    `webhook_lanes: ${await q('SELECT * FROM webhook_lanes', [])}`,
    `outbox of ${lane}: ${await q('SELECT * FROM webhook_outbox WHERE ordering_key = $1 ORDER BY id', [lane])}`,
    `scheduler (Redis): ${await schedulerDump(cluster, `broadcast:${id}`)}`,
    ...cluster.workers.map(
      (w, i) =>
        `worker ${i} (${w.crashed ?? 'alive or killed'}):\n${w.output
          .join('')
          .split('\n')
          .filter((l) => !l.includes('"webhook.delivered"'))
          .slice(-150)
          .join('\n')}`,
    ),
  ].join('\n');
}

/** Where the scheduler's job for `id` is: the id map's entry, the job's hash, the lists holding it. */
async function schedulerDump(cluster: Cluster, id: string): Promise<string> {
  const redis = new Redis(cluster.env.REDIS_URL!);
  try {
    const prefix = cluster.env.REDIS_PREFIX!;
    const q = `${prefix}bull:scheduled:`;
    const jobId = await redis.hget(`${prefix}scheduler:ids`, id);
    const keys = (await redis.keys(`${q}${encodeURIComponent(id)}*`)).filter((k) => !k.endsWith(':logs'));
    const jobs: Record<string, unknown> = {};
    for (const k of keys)
      jobs[k.slice(q.length)] =
        (await redis.type(k)) === 'hash' ? await redis.hgetall(k) : await redis.pttl(k);
    const where: Record<string, unknown> = {};
    for (const list of ['wait', 'active', 'paused']) where[list] = await redis.lrange(`${q}${list}`, 0, -1);
    for (const z of ['delayed', 'failed', 'completed', 'prioritized'])
      where[z] = await redis.call('ZRANGE', `${q}${z}`, '0', '-1', 'WITHSCORES');
    where.stalled = await redis.smembers(`${q}stalled`);
    where.stalledCheckTtl = await redis.pttl(`${q}stalled-check`);
    return JSON.stringify({ now: Date.now(), ids: jobId, jobs, where }, null, 1);
  } finally {
    redis.disconnect();
  }
}
