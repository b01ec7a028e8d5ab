/**
 * Outbound steps of `npm run bench` (issue 22): `broadcast` and `schedule`.
 *
 * - broadcast: a gateway and BENCH_WORKERS worker processes (PostgreSQL, Redis) send a template
 *   broadcast through a local Graph API. Unpaced: BENCH_BROADCAST_RECIPIENTS recipients as fast as
 *   the hub goes (recipients/s from the POST to the last one sent). Paced: BENCH_BROADCAST_RATE/s for
 *   BENCH_BROADCAST_PACED_SECONDS, and the pace the Graph API saw (first to last arrival).
 * - schedule: BENCH_SCHEDULE_COUNT messages with `send_at` spread over 5 s into API sessions, on
 *   both scheduler drivers (BullMQ on Redis with that cluster; the table on PostgreSQL, one process,
 *   default SCHEDULER_POLL_MS); lateness = history row written − send_at (p50/p95/p99/max).
 *
 *   npm run bench -- broadcast schedule
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { adminClient } from '../test/helpers/admin.ts';
import { startGraphApi } from '../test/helpers/graph-api.ts';
import { clearRedisPrefix } from '../test/helpers/redis.ts';
import { ServerProcess } from '../test/helpers/server-process.ts';
import { withDatabase } from './database.ts';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const REDIS_URL = process.env.BENCH_REDIS_URL ?? process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const RECIPIENTS = Number(process.env.BENCH_BROADCAST_RECIPIENTS ?? 5_000);
const RATE = Number(process.env.BENCH_BROADCAST_RATE ?? 200);
const PACED_SECONDS = Number(process.env.BENCH_BROADCAST_PACED_SECONDS ?? 10);
const SCHEDULED = Number(process.env.BENCH_SCHEDULE_COUNT ?? 100);
const SCHEDULE_SPREAD_MS = 5_000;
const ADMIN_TOKEN = `bench-${randomBytes(24).toString('hex')}`;
const ACCESS_TOKEN = 'EAAJB-bench-token';
const NUMBER = '106540352242922';

export interface BroadcastFigures {
  recipients: number;
  /** Recipients sent per second, from the POST to the last one sent (unpaced). */
  perSecond: number;
  /** Recipients handed to their sessions' lanes per second (the broadcast run alone). */
  handedOverPerSecond: number;
  pacedAsked: number;
  /** The pace the Graph API saw for the paced run (first to last arrival). */
  pacedSeen: number;
}

export interface ScheduleFigures {
  driver: string;
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until every recipient is sent; how long handing them all to their lanes took, s. */
async function waitCompleted(admin: ReturnType<typeof adminClient>, id: string): Promise<number> {
  for (;;) {
    const p = (await admin('GET', `/api/admin/broadcasts/${id}`)).json;
    if (p.status === 'completed') return (Date.parse(p.dispatched_at) - Date.parse(p.created_at)) / 1000;
    await sleep(100);
  }
}

async function broadcastRuns(gatewayUrl: string, graph: Awaited<ReturnType<typeof startGraphApi>>) {
  const admin = adminClient(gatewayUrl, ADMIN_TOKEN);
  const run = async (name: string, count: number, rate: number, offset: number) => {
    const to = Array.from({ length: count }, (_, i) => `+1555${String(offset + i).padStart(7, '0')}`);
    const started = Date.now();
    const res = await admin('POST', '/api/admin/broadcasts', {
      bot: 'default',
      channel: 'whatsapp',
      to,
      template: { name, language: 'en' },
      rate_per_second: rate,
    });
    if (res.status !== 202) throw new Error(`POST /api/admin/broadcasts: ${res.status} ${res.text}`);
    const dispatchSeconds = await waitCompleted(admin, res.json.broadcast_id);
    const seconds = (Date.now() - started) / 1000;
    const arrivals = graph.requests
      .filter((r) => r.body.type === 'template' && (r.body.template as { name: string }).name === name)
      .map((r) => r.at);
    return { seconds, dispatchSeconds, arrivals };
  };
  const unpaced = await run('bench_unpaced', RECIPIENTS, 10_000, 1_000_000);
  const pacedCount = Math.max(2, Math.round(RATE * PACED_SECONDS));
  const paced = await run('bench_paced', pacedCount, RATE, 3_000_000);
  const span = (Math.max(...paced.arrivals) - Math.min(...paced.arrivals)) / 1000;
  return {
    recipients: RECIPIENTS,
    perSecond: RECIPIENTS / unpaced.seconds,
    handedOverPerSecond: RECIPIENTS / unpaced.dispatchSeconds,
    pacedAsked: RATE,
    // n arrivals span n - 1 intervals.
    pacedSeen: span > 0 ? (paced.arrivals.length - 1) / span : Number.NaN,
  };
}

/** Schedules SCHEDULED messages into API sessions and measures how late each was written. */
async function scheduleRun(url: string, databaseUrl: string, driver: string): Promise<ScheduleFigures> {
  const admin = adminClient(url, ADMIN_TOKEN);
  const sessions: string[] = [];
  for (let i = 0; i < SCHEDULED; i++) {
    const res = await fetch(`${url}/api/session`, { method: 'POST' });
    sessions.push(((await res.json()) as { session_id: string }).session_id);
  }
  const base = Date.now() + 3_000;
  const ids: string[] = [];
  for (const [i, session] of sessions.entries()) {
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'api',
      to: session,
      text: `reminder ${i}`,
      send_at: new Date(base + Math.round((i * SCHEDULE_SPREAD_MS) / SCHEDULED)).toISOString(),
    });
    if (res.status !== 202) throw new Error(`POST /api/admin/messages: ${res.status} ${res.text}`);
    ids.push(res.json.message_id);
  }
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    for (;;) {
      const { rows } = await db.query(
        `SELECT EXTRACT(EPOCH FROM (m.created_at - o.send_at)) * 1000 AS late
         FROM outbound_messages o JOIN messages m ON m.envelope_id = 'outbound:operator:' || o.id::text
         WHERE o.id = ANY($1::uuid[])`,
        [ids],
      );
      if (rows.length === ids.length) {
        const late = rows.map((r) => Number(r.late)).sort((a, b) => a - b);
        const at = (p: number) => late[Math.min(late.length - 1, Math.floor((late.length * p) / 100))]!;
        return { driver, count: late.length, p50: at(50), p95: at(95), p99: at(99), max: late.at(-1)! };
      }
      await sleep(200);
    }
  } finally {
    await db.end();
  }
}

export async function runOutboundBench(parts: { broadcast: boolean; schedule: boolean }): Promise<{
  broadcast?: BroadcastFigures;
  schedule: ScheduleFigures[];
}> {
  const out: { broadcast?: BroadcastFigures; schedule: ScheduleFigures[] } = { schedule: [] };
  const graph = await startGraphApi(ACCESS_TOKEN);
  try {
    await withDatabase(async (databaseUrl) => {
      const prefix = `sbb:${randomBytes(4).toString('hex')}:`;
      const env: Record<string, string> = {
        PORT: '0',
        DATABASE_URL: databaseUrl,
        REDIS_URL,
        REDIS_PREFIX: prefix,
        LOG_LEVEL: 'info',
        CONFIG_DIR: path.join(REPO, 'config'),
        ADMIN_TOKEN,
        WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
        WHATSAPP_APP_SECRET: 'bench-app-secret',
        WHATSAPP_VERIFY_TOKEN: 'bench',
        WHATSAPP_GRAPH_URL: graph.url,
        WHATSAPP_NUMBERS: `${NUMBER}:default`,
        BROADCAST_RATE_LIMITS: 'whatsapp=10000',
        DATABASE_POOL_SIZE: '8',
      };
      const processes = [new ServerProcess(env, ['start', '--role', 'gateway'])];
      for (let i = 0; i < WORKERS; i++) processes.push(new ServerProcess(env, ['start', '--role', 'worker']));
      try {
        await Promise.all(processes.map((p) => p.start()));
        const gateway = processes[0]!;
        if (parts.broadcast) out.broadcast = await broadcastRuns(gateway.url, graph);
        if (parts.schedule)
          out.schedule.push(
            await scheduleRun(gateway.url, databaseUrl, `BullMQ, gateway + ${WORKERS} workers`),
          );
      } finally {
        await Promise.all(processes.map((p) => p.stop()));
        await clearRedisPrefix(REDIS_URL, prefix);
      }
    });
    if (parts.schedule)
      await withDatabase(async (databaseUrl) => {
        const hub = new ServerProcess({
          PORT: '0',
          DATABASE_URL: databaseUrl,
          LOG_LEVEL: 'info',
          CONFIG_DIR: path.join(REPO, 'config'),
          ADMIN_TOKEN,
        });
        await hub.start();
        try {
          out.schedule.push(
            await scheduleRun(hub.url, databaseUrl, 'table (PostgreSQL, no Redis), one process'),
          );
        } finally {
          await hub.stop();
        }
      });
  } finally {
    await graph.close();
  }
  return out;
}

export function outboundLines(figures: Awaited<ReturnType<typeof runOutboundBench>>): string[] {
  const lines: string[] = [];
  const n = (v: number, d = 0) =>
    v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const b = figures.broadcast;
  if (b) {
    lines.push(
      `broadcast throughput: ${n(b.recipients)} recipients at ${n(b.perSecond)}/s (gateway + ${WORKERS} workers, POST to last sent); handed to their lanes at ${n(b.handedOverPerSecond)}/s`,
    );
    lines.push(
      `broadcast pace: asked ${n(b.pacedAsked)}/s, the platform saw ${n(b.pacedSeen, 1)}/s (${n(((b.pacedSeen - b.pacedAsked) / b.pacedAsked) * 100, 1)}%)`,
    );
  }
  for (const s of figures.schedule)
    lines.push(
      `scheduling accuracy, ${s.driver}: ${s.count} sends late by p50 ${n(s.p50)} ms, p95 ${n(s.p95)} ms, p99 ${n(s.p99)} ms, max ${n(s.max)} ms`,
    );
  return lines;
}
