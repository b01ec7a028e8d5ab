/**
 * `npm run bench`: Switchboard's pipeline against a bare BullMQ baseline, on this machine.
 *
 *   (a) embedded, all in one process: PGlite and the in-process queue;
 *   (b) Redis + PostgreSQL: this process as the gateway, N worker processes (`--role worker`);
 *   (c) bare baseline: BullMQ add → worker process → one two-row INSERT per message.
 *
 * Workload: 1,000 sessions × 20 messages, each session's messages sent in order, all sessions at
 * once. Printed for each: messages/s, latency from accepted to reply persisted (p50/p95/p99),
 * peak RSS per process; then (b)/(c), against the faster of two full (c) runs (one before (b),
 * one after), and (b)'s latency at 1,000 messages/s offered; then
 * 10,000 idle web sockets on one gateway (RSS per connection) and the round trip with 1,000 chatting.
 * `npm run bench -- embedded distributed baseline websocket` picks parts.
 * Environment: BENCH_SESSIONS, BENCH_MESSAGES, BENCH_WORKERS, BENCH_PACED_SECONDS.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { registerChannels } from '../adapters/index.ts';
import type { TurnCompleted } from '../src/bus/bus.ts';
import { loadConfig } from '../src/config/env.ts';
import type { EnvelopeInput } from '../src/envelope.ts';
import { createHub, type Hub } from '../src/hub.ts';
import { createLogger } from '../src/logger.ts';
import { clearRedisPrefix } from '../test/helpers/redis.ts';
import { ServerProcess } from '../test/helpers/server-process.ts';
import { runWebSocketBench } from './websocket.ts';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 1000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const PACED_SECONDS = Number(process.env.BENCH_PACED_SECONDS ?? 10);
const PACED_RATE = Number(process.env.BENCH_PACED_RATE ?? 1000);
const ADMIN_URL =
  process.env.BENCH_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const silent = createLogger('silent');

interface Result {
  name: string;
  messages: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  rssMb: Record<string, number>;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

function summarize(
  name: string,
  latencies: number[],
  seconds: number,
  rssMb: Record<string, number>,
): Result {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    name,
    messages: latencies.length,
    seconds,
    perSecond: latencies.length / seconds,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    rssMb,
  };
}

async function peakRssMb(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

const ownRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);

async function withDatabase<T>(work: (url: string) => Promise<T>): Promise<T> {
  const name = `sbt_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  try {
    return await work(url.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

const envelope = (session: number, n: number): EnvelopeInput => ({
  id: `whatsapp:bench.${session}.${n}`,
  channel: 'whatsapp',
  bot: 'default',
  from: { id: `+1555${String(session).padStart(7, '0')}` },
  text: `m${n}`,
  receivedAt: new Date().toISOString(),
});

/** Each session's messages in order, all sessions at once; resolves when every reply is persisted. */
async function drive(
  send: (session: number, n: number) => Promise<string>,
  completions: Map<string, number>,
  onComplete: { resolve?: () => void },
): Promise<{ latencies: number[]; seconds: number }> {
  const acceptedAt = new Map<string, number>();
  const total = SESSIONS * MESSAGES;
  const done = new Promise<void>((resolve) => {
    onComplete.resolve = () => {
      if (completions.size >= total) resolve();
    };
  });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, s) => {
      for (let n = 0; n < MESSAGES; n++) {
        const id = await send(s, n);
        acceptedAt.set(id, performance.now());
      }
    }),
  );
  await done;
  const seconds = (performance.now() - started) / 1000;
  const latencies = [...acceptedAt].map(([id, at]) => (completions.get(id) ?? NaN) - at);
  return { latencies, seconds };
}

/** Offers PACED_RATE messages a second for PACED_SECONDS, round robin over the sessions; summarizes their latencies. */
async function drivePaced(
  run: string,
  send: (i: number) => Promise<string>,
  completions: Map<string, number>,
  rss: Record<string, number>,
): Promise<Result> {
  const acceptedAt = new Map<string, number>();
  const total = PACED_RATE * PACED_SECONDS;
  const started = performance.now();
  let sent = 0;
  const accepting: Promise<void>[] = [];
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * PACED_RATE));
      for (; sent < due; sent++)
        accepting.push(send(sent).then((id) => void acceptedAt.set(id, performance.now())));
      if (sent >= total) {
        clearInterval(tick);
        resolve();
      }
    }, 5);
  });
  // Every message offered is counted: wait until the last is accepted, then until all are answered.
  await Promise.all(accepting);
  const deadline = Date.now() + 120_000;
  while ([...acceptedAt.keys()].some((id) => !completions.has(id)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const latencies = [...acceptedAt].map(([id, at]) => (completions.get(id) ?? NaN) - at);
  return summarize(
    `${run} at ${PACED_RATE} messages/s offered, ${PACED_SECONDS} s`,
    latencies,
    PACED_SECONDS,
    rss,
  );
}

function turnListener(completions: Map<string, number>, signal: { resolve?: () => void }) {
  return (message: unknown) => {
    const turn = message as TurnCompleted;
    if (turn.type !== 'turn.completed') return;
    completions.set(turn.envelopeId, performance.now());
    signal.resolve?.();
  };
}

async function benchEmbedded(): Promise<Result> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sb-bench-'));
  const config = {
    ...loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      CONFIG_DIR: path.join(REPO, 'config'),
    }),
  };
  const hub = await createHub({ config, logger: silent });
  await hub.start();
  const completions = new Map<string, number>();
  const signal: { resolve?: () => void } = {};
  const patch = patchBus(hub, turnListener(completions, signal));
  const { latencies, seconds } = await drive(
    async (s, n) => {
      const e = envelope(s, n);
      await hub.ingress.accept(e);
      return e.id;
    },
    completions,
    signal,
  );
  patch();
  await hub.stop();
  await fs.rm(dataDir, { recursive: true, force: true });
  return summarize('(a) embedded: PGlite + in-process queue, 1 process', latencies, seconds, {
    'all-in-one': ownRssMb(),
  });
}

/** Listens to every session's turn notices on the hub's bus. */
function patchBus(hub: Hub, listener: (m: unknown) => void): () => void {
  const original = hub.bus.publish.bind(hub.bus);
  hub.bus.publish = async (topic, message) => {
    listener(message);
    return original(topic, message);
  };
  return () => {
    hub.bus.publish = original;
  };
}

async function benchDistributed(): Promise<{ full: Result; paced: Result }> {
  return withDatabase(async (databaseUrl) => {
    const prefix = `sbb:${randomBytes(4).toString('hex')}:`;
    const env: Record<string, string> = {
      PORT: '0',
      DATABASE_URL: databaseUrl,
      REDIS_URL,
      REDIS_PREFIX: prefix,
      LOG_LEVEL: 'info',
      CONFIG_DIR: path.join(REPO, 'config'),
    };
    if (process.env.QUEUE_CONCURRENCY) env.QUEUE_CONCURRENCY = process.env.QUEUE_CONCURRENCY;
    // For profiling a worker: BENCH_WORKER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'.
    if (process.env.BENCH_WORKER_NODE_ARGS) env.NODE_ARGS = process.env.BENCH_WORKER_NODE_ARGS;
    const config = loadConfig({ ...env, HOST: '127.0.0.1' });
    const gateway = await createHub({ config, role: 'gateway', logger: silent });
    await gateway.start();
    const workers = Array.from(
      { length: WORKERS },
      () => new ServerProcess(env, ['start', '--role', 'worker']),
    );
    await Promise.all(workers.map((w) => w.start()));
    const subscriber = new Redis(REDIS_URL);
    const completions = new Map<string, number>();
    const signal: { resolve?: () => void } = {};
    const listen = turnListener(completions, signal);
    subscriber.on('pmessage', (_p, _c, raw: string) => listen(JSON.parse(raw)));
    await subscriber.psubscribe(`${prefix}bus:session:*`);
    try {
      const { latencies, seconds } = await drive(
        async (s, n) => {
          const e = envelope(s, n);
          await gateway.ingress.accept(e);
          return e.id;
        },
        completions,
        signal,
      );
      const rss: Record<string, number> = { gateway: ownRssMb() };
      for (const [i, w] of workers.entries()) rss[`worker ${i + 1}`] = await peakRssMb(w.pid!);
      const full = summarize(
        `(b) Redis + PostgreSQL: 1 gateway + ${WORKERS} workers`,
        latencies,
        seconds,
        rss,
      );

      const paced = await drivePaced(
        '(b)',
        async (i) => {
          const e = envelope(i % SESSIONS, MESSAGES + Math.floor(i / SESSIONS));
          await gateway.ingress.accept(e);
          return e.id;
        },
        completions,
        rss,
      );
      return { full, paced };
    } finally {
      subscriber.disconnect();
      await Promise.all(workers.map((w) => w.stop('SIGTERM')));
      await gateway.stop();
      await clearRedisPrefix(REDIS_URL, prefix);
    }
  });
}

async function benchBaseline(options: { paced: boolean } = { paced: true }): Promise<{
  full: Result;
  paced?: Result;
}> {
  return withDatabase(async (databaseUrl) => {
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    await admin.query(
      'CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, session text NOT NULL, role text NOT NULL, content text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())',
    );
    await admin.end();
    const prefix = `sbb:${randomBytes(4).toString('hex')}:`;
    const env = { DATABASE_URL: databaseUrl, REDIS_URL, PREFIX: prefix, CONCURRENCY: '64' };
    const workers = Array.from({ length: WORKERS }, () => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', path.join(REPO, 'bench/baseline-worker.ts')],
        {
          cwd: REPO,
          env: { ...process.env, ...env },
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      return child;
    });
    await Promise.all(workers.map((w) => new Promise((r) => w.stdout!.once('data', r))));
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue('baseline', {
      connection: redis,
      prefix,
      defaultJobOptions: { removeOnComplete: true },
    });
    const subscriber = new Redis(REDIS_URL);
    const completions = new Map<string, number>();
    const signal: { resolve?: () => void } = {};
    subscriber.on('message', (_c, id: string) => {
      completions.set(id, performance.now());
      signal.resolve?.();
    });
    await subscriber.subscribe(`${prefix}done`);
    try {
      const { latencies, seconds } = await drive(
        async (s, n) => {
          const id = `b.${s}.${n}`;
          await queue.add('m', { s: String(s), t: `m${n}`, id });
          return id;
        },
        completions,
        signal,
      );
      const rss: Record<string, number> = { producer: ownRssMb() };
      for (const [i, w] of workers.entries()) rss[`worker ${i + 1}`] = await peakRssMb(w.pid!);
      const full = summarize(
        `(c) bare baseline: BullMQ + one INSERT, ${WORKERS} workers`,
        latencies,
        seconds,
        rss,
      );
      if (!options.paced) return { full };
      const paced = await drivePaced(
        '(c)',
        async (i) => {
          const id = `p.${i}`;
          await queue.add('m', { s: String(i % SESSIONS), t: `p${i}`, id });
          return id;
        },
        completions,
        rss,
      );
      return { full, paced };
    } finally {
      subscriber.disconnect();
      await queue.close();
      redis.disconnect();
      for (const w of workers) w.kill('SIGTERM');
      await clearRedisPrefix(REDIS_URL, prefix);
    }
  });
}

function print(results: Result[]) {
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  console.log(
    `\nSwitchboard benchmark — ${SESSIONS} sessions × ${MESSAGES} messages, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}\n`,
  );
  console.log('| run | messages | messages/s | p50 | p95 | p99 | peak RSS (MB) |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of results) {
    const rss = Object.entries(r.rssMb)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    console.log(
      `| ${r.name} | ${r.messages} | ${r.perSecond.toFixed(0)} | ${ms(r.p50)} | ${ms(r.p95)} | ${ms(r.p99)} | ${rss} |`,
    );
  }
}

const only = process.argv.slice(2);
// The hub in this process knows its channels as the CLI's does.
registerChannels();
const want = (k: string) => only.length === 0 || only.includes(k);
const results: Result[] = [];
let distributed: { full: Result; paced: Result } | undefined;
let baseline: { full: Result; paced?: Result } | undefined;
// When (b) and (c) are compared, (c)'s full run also runs before (b): the ratio is taken against
// the faster of its two runs, so that the order of the runs cannot favour (b).
let baselineBefore: Result | undefined;
if (want('embedded')) results.push(await benchEmbedded());
if (want('distributed') && want('baseline')) {
  baselineBefore = (await benchBaseline({ paced: false })).full;
  baselineBefore.name = `${baselineBefore.name}, run before (b)`;
}
if (want('distributed')) {
  distributed = await benchDistributed();
  results.push(distributed.full, distributed.paced);
}
if (want('baseline')) {
  baseline = await benchBaseline();
  if (baselineBefore) results.push(baselineBefore);
  results.push(baseline.full);
  if (baseline.paced) results.push(baseline.paced);
}
print(results);
if (distributed && baseline) {
  const fastest = Math.max(baseline.full.perSecond, baselineBefore?.perSecond ?? 0);
  console.log(
    `\n(b) / (c) throughput: ${(distributed.full.perSecond / fastest).toFixed(2)}× (against the faster (c) run, ${fastest.toFixed(0)} messages/s)`,
  );
}
if (want('websocket')) {
  const ws = await runWebSocketBench();
  console.log('\nWeb sockets on one gateway process:');
  console.log(JSON.stringify(ws, null, 2));
}
process.exit(0);
