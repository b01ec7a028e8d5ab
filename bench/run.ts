/**
 * `npm run bench`: Switchboard's pipeline against a bare BullMQ baseline, on this machine.
 *
 *   (a) embedded: PGlite and the in-process queue, the hub in a process of its own (bench/embedded-hub.ts, compiled);
 *   (b) Redis + PostgreSQL: this process as the gateway, N worker processes (`--role worker`);
 *   (c) bare baseline: BullMQ add → worker process → one two-row INSERT per message.
 *
 * Workload: 1,000 sessions × 20 messages, each session's messages sent in order, all sessions at
 * once. Printed for each: messages/s, latency from accepted to reply persisted (p50/p95/p99),
 * peak RSS per process; then (b)/(c), against the faster of two full (c) runs (one before (b),
 * one after), and (b)'s latency at 1,000 messages/s offered; then
 * 10,000 idle web sockets on one gateway (RSS per connection) and the round trip with 1,000 chatting.
 * Also: `startup` (`switchboard start` → /readyz and idle RSS, new and existing data directory) and
 * `size` ((b) again on a database preloaded with 100,000 sessions and 1,000,000 messages,
 * bench/preload.ts). The end prints each of issue 19's targets beside its figure.
 * And `tracing`: BENCH_TRACING_ROUNDS (4) pairs of (b)'s full workload, with tracing on in every
 * process (OTLP/protobuf to a local endpoint that discards what it receives) and off, back to back,
 * which comes first alternating; the median of the pairs' throughput ratios; before them, BENCH_TRACING_WARMUP (1) pairs, not counted, unless (b)
 * ran before in this process (the gateway is this process: its first runs warm it). With
 * BENCH_TRACING_WORKER_WARMUP (0) > 0, each run of a pair first drives that many full passes over
 * other sessions, not counted: the workers, fresh processes in every run, measured warm.
 * Outbound (bench/outbound.ts): `broadcast` (throughput, and the pace a platform sees) and
 * `schedule` (how late scheduled sends fire, on both scheduler drivers).
 * And `dashboard`: the operator dashboard's queries on the same preloaded data (bench/dashboard.ts).
 * And `files`: memory while a 50 MB file streams into and out of the file store (bench/files.ts).
 * And `webhooks`: what the event webhooks' trigger costs a message insert (bench/webhooks.ts).
 * `npm run bench -- startup embedded distributed baseline size websocket tracing broadcast schedule dashboard files webhooks` picks parts.
 * Environment: BENCH_SESSIONS, BENCH_MESSAGES, BENCH_WORKERS, BENCH_PACED_SECONDS, BENCH_TRACING_ROUNDS, BENCH_TRACING_WARMUP,
 * BENCH_PACED_RATES (comma-separated, default 1000,2000), BENCH_PRELOAD_SESSIONS, BENCH_PRELOAD_MESSAGES;
 * BENCH_HUB_NODE_FLAGS: node flags for (a)'s hub process (`--trace-gc`, …); BENCH_WORKER_NODE_ARGS: (b)'s
 * workers' (`--cpu-prof --cpu-prof-dir=…`); BENCH_WORKER_OUT: a directory for each worker's stdout
 * (`<pid>.txt`: what `--trace-opt` and `--trace-deopt` print); BENCH_LATENCY_OUT: a directory for each paced
 * step's latencies (CSV: accept time, latency), to place a stall in time.
 */
import { fork, spawn } from 'node:child_process';
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
import { createHub } from '../src/hub.ts';
import { createLogger } from '../src/logger.ts';
import { startTracing } from '../src/telemetry/tracing.ts';
import { clearRedisPrefix } from '../test/helpers/redis.ts';
import { ServerProcess } from '../test/helpers/server-process.ts';
import { dashboardLines, runDashboardBench } from './dashboard.ts';
import { withDatabase } from './database.ts';
import type { HubCommand, HubNotice } from './embedded-hub.ts';
import { benchEnvelope as envelope } from './envelope.ts';
import { runFilesBench } from './files.ts';
import { outboundLines, runOutboundBench } from './outbound.ts';
import { preload } from './preload.ts';
import { runStartupBench, type StartupResult, startupLines } from './startup.ts';
import { runTracingPathBench, tracingPathLines } from './tracing-path.ts';
import { median, tracingSummaryLines } from './tracing-summary.ts';
import { runWebhookTriggerBench, webhookTriggerLines } from './webhooks.ts';
import { runWebSocketBench, type WebSocketBenchResult } from './websocket.ts';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 1000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const PACED_SECONDS = Number(process.env.BENCH_PACED_SECONDS ?? 10);
/** `tracing`: how many pairs of full runs, tracing on then off, to compare (the median is printed). */
const TRACING_ROUNDS = Number(process.env.BENCH_TRACING_ROUNDS ?? 4);
/** `tracing`: full passes over other sessions in each run before the measured one (0: cold workers). */
const TRACING_WORKER_WARMUP = Number(process.env.BENCH_TRACING_WORKER_WARMUP ?? 0);
/** `tracing`: pairs before the pairs, not counted, when no (b) run came before in this process (0: none). */
const TRACING_WARMUP = Number(process.env.BENCH_TRACING_WARMUP ?? 1);
const PACED_RATES = (process.env.BENCH_PACED_RATES ?? process.env.BENCH_PACED_RATE ?? '1000,2000')
  .split(',')
  .map(Number);
/** A directory for each paced step's latencies (CSV), or undefined. */
const LATENCY_OUT = process.env.BENCH_LATENCY_OUT || undefined;
const PRELOAD_SESSIONS = Number(process.env.BENCH_PRELOAD_SESSIONS ?? 100_000);
const PRELOAD_MESSAGES = Number(process.env.BENCH_PRELOAD_MESSAGES ?? 1_000_000);
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
  /** CPU time per message, by process (ms), where measured. */
  cpuMsPerMessage?: Record<string, number>;
  /** Redis commands per message (INFO commandstats), where measured. */
  redisPerMessage?: RedisPerMessage;
  /** PostgreSQL's work per message (the bench database's backends and statistics), where measured. */
  pgPerMessage?: PgPerMessage;
  /** A paced step's slowest message: its latency, and when it was accepted (s into the step). */
  slowest?: { ms: number; atSeconds: number };
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

const CLOCK_TICKS = 100;
/** CPU time (user + system) a process has used, ms. */
async function cpuMs(pid: number): Promise<number> {
  if (pid === process.pid) {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  }
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** Redis's own CPU time and its command counts so far. */
async function redisStats(
  redis: Redis,
): Promise<{ cpuMs: number; commands: number; scripts: number; byName: Map<string, number> }> {
  const cpu = await redis.info('cpu');
  const stats = await redis.info('commandstats');
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(cpu)?.[1] ?? 0);
  let commands = 0;
  let scripts = 0;
  const byName = new Map<string, number>();
  for (const [, name, calls] of stats.matchAll(/cmdstat_(\w+):calls=(\d+)/g)) {
    if (name === 'info' || !name) continue;
    commands += Number(calls);
    byName.set(name, Number(calls));
    if (name === 'evalsha' || name === 'eval' || name === 'fcall') scripts += Number(calls);
  }
  return { cpuMs: (field('used_cpu_user') + field('used_cpu_sys')) * 1000, commands, scripts, byName };
}

/** PostgreSQL's work per message: transactions (each statement outside one is one), rows written, backend CPU. */
interface PgPerMessage {
  transactions: number;
  rowsWritten: number;
}

/** The bench database's committed transactions and rows written so far, and its backends' CPU time by pid. */
async function pgStats(
  client: pg.Client,
): Promise<{ xacts: number; rows: number; cpu: Map<number, number> }> {
  const { rows } = await client.query<{ xacts: string; written: string }>(
    `SELECT xact_commit + xact_rollback AS xacts, tup_inserted + tup_updated + tup_deleted AS written
       FROM pg_stat_database WHERE datname = current_database()`,
  );
  const backends = await client.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
  );
  const cpu = new Map<number, number>();
  for (const { pid } of backends.rows) {
    // A backend that ended meanwhile is simply not counted.
    const ms = await cpuMs(pid).catch(() => undefined);
    if (ms !== undefined) cpu.set(pid, ms);
  }
  return { xacts: Number(rows[0]?.xacts ?? 0), rows: Number(rows[0]?.written ?? 0), cpu };
}

/**
 * How long PostgreSQL 15 may keep a backend's counts from the shared statistics: a backend that
 * goes idle within a second of its last report waits 10 s (PGSTAT_IDLE_INTERVAL) to report
 * again. A wait of 1.1 s read half to three quarters of a full run's rows, and fewer the more
 * its last second wrote (1.3–1.9 rows a message where the run wrote 2.6); read once more after
 * this, they are whole (the messages table's count and its inserted rows agree).
 */
const PG_STATS_FLUSH_MS = 10_500;

/** Redis's work per message; `top`: the most frequent commands (Lua scripts are `evalsha`). */
interface RedisPerMessage {
  commands: number;
  scripts: number;
  /** BullMQ jobs added (the hub's wake jobs; the baseline's one job per message). */
  bullJobs: number;
  top: [string, number][];
}

/**
 * Measures CPU per process and Redis commands over a piece of work, per message. Redis counts
 * every client's commands: on a machine where something else uses the same Redis, they count too.
 */
async function perMessage(
  pids: Record<string, number>,
  redis: Redis,
  database: pg.Client,
  /** Counters of BullMQ jobs added: the lanes' `wake-seq`, or a plain queue's job id counter (`<queue>:id`). */
  jobCounters: string[],
  work: () => Promise<number>,
): Promise<{
  cpuMsPerMessage: Record<string, number>;
  redisPerMessage: RedisPerMessage;
  pgPerMessage: PgPerMessage;
}> {
  const before = Object.fromEntries(
    await Promise.all(Object.entries(pids).map(async ([k, pid]) => [k, await cpuMs(pid)] as const)),
  );
  const jobs = async () => {
    let n = 0;
    for (const key of jobCounters) n += Number((await redis.get(key)) ?? 0);
    return n;
  };
  const jobsBefore = await jobs();
  const redisBefore = await redisStats(redis);
  const pgBefore = await pgStats(database);
  const messages = await work();
  const redisAfter = await redisStats(redis);
  const jobsAfter = await jobs();
  const cpuMsPerMessage: Record<string, number> = {};
  for (const [k, pid] of Object.entries(pids))
    cpuMsPerMessage[k] = ((await cpuMs(pid)) - before[k]!) / messages;
  cpuMsPerMessage.redis = (redisAfter.cpuMs - redisBefore.cpuMs) / messages;
  const pgCpuAfter = (await pgStats(database)).cpu;
  let pgCpu = 0;
  // A backend opened during the work counts from zero.
  for (const [pid, ms] of pgCpuAfter) pgCpu += ms - (pgBefore.cpu.get(pid) ?? 0);
  cpuMsPerMessage.postgres = pgCpu / messages;
  await new Promise((r) => setTimeout(r, PG_STATS_FLUSH_MS));
  const pgAfter = await pgStats(database);
  return {
    cpuMsPerMessage,
    pgPerMessage: {
      transactions: (pgAfter.xacts - pgBefore.xacts) / messages,
      rowsWritten: (pgAfter.rows - pgBefore.rows) / messages,
    },
    redisPerMessage: {
      commands: (redisAfter.commands - redisBefore.commands) / messages,
      scripts: (redisAfter.scripts - redisBefore.scripts) / messages,
      bullJobs: (jobsAfter - jobsBefore) / messages,
      top: [...redisAfter.byName]
        .map(([name, calls]): [string, number] => [
          name,
          (calls - (redisBefore.byName.get(name) ?? 0)) / messages,
        ])
        .filter(([, n]) => n > 0)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 12),
    },
  };
}

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
  rate: number,
  send: (i: number) => Promise<string>,
  completions: Map<string, number>,
  rss: Record<string, number>,
): Promise<Result> {
  const acceptedAt = new Map<string, number>();
  const total = rate * PACED_SECONDS;
  const started = performance.now();
  let sent = 0;
  const accepting: Promise<void>[] = [];
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
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
  const result = summarize(
    `${run} at ${rate} messages/s offered, ${PACED_SECONDS} s`,
    latencies,
    PACED_SECONDS,
    rss,
  );
  const accepted = [...acceptedAt.values()];
  let slowest = 0;
  for (let i = 1; i < latencies.length; i++) if (!(latencies[i]! <= latencies[slowest]!)) slowest = i;
  if (latencies.length > 0)
    result.slowest = { ms: latencies[slowest]!, atSeconds: (accepted[slowest]! - started) / 1000 };
  if (LATENCY_OUT) await writeLatencies(`${run}-${rate}`, accepted, latencies);
  return result;
}

/**
 * BENCH_LATENCY_OUT: each paced message's accept (epoch ms) and latency, one CSV per step, to
 * place a stall in time against the workers' and the databases' own logs.
 */
async function writeLatencies(step: string, accepted: number[], latencies: number[]): Promise<void> {
  await fs.mkdir(LATENCY_OUT!, { recursive: true });
  const file = path.join(LATENCY_OUT!, `${step.replace(/[^\w.-]+/g, '_')}-${Date.now()}.csv`);
  const rows = accepted.map(
    (at, i) => `${(performance.timeOrigin + at).toFixed(1)},${latencies[i]!.toFixed(1)}`,
  );
  await fs.writeFile(file, `accepted_epoch_ms,latency_ms\n${rows.join('\n')}\n`);
  console.error(`latencies: ${file}`);
}

function turnListener(completions: Map<string, number>, signal: { resolve?: () => void }) {
  return (message: unknown) => {
    const turn = message as TurnCompleted;
    if (turn.type !== 'turn.completed') return;
    completions.set(turn.envelopeId, performance.now());
    signal.resolve?.();
  };
}

/**
 * (a): the hub in a child process of its own (bench/embedded-hub.ts as the build compiles it, as
 * `npm start` runs it), driven over IPC from this process: the peak RSS printed for the hub is
 * the hub's alone, not the load generator's (this process, with tsx and every bench module, is
 * printed beside it as the driver). The hub's process feeds its ingress itself (each session's
 * messages in order, all sessions at once, as before) and reports each acceptance and reply over
 * IPC; latencies are read on the hub's clock at both ends.
 */
async function benchEmbedded(): Promise<Result> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sb-bench-'));
  const child = fork(path.join(REPO, 'dist/bench/embedded-hub.js'), [dataDir, path.join(REPO, 'config')], {
    execArgv: (process.env.BENCH_HUB_NODE_FLAGS ?? '').split(' ').filter(Boolean),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    const acceptedAt = new Map<string, number>();
    const completedAt = new Map<string, number>();
    const total = SESSIONS * MESSAGES;
    let started = 0;
    let cpuBefore: Promise<number> | undefined;
    const seconds = await new Promise<number>((resolve, reject) => {
      void exited.then((code) => reject(new Error(`the embedded hub exited (${code})`)));
      child.on('message', (message: HubNotice) => {
        if (message.type === 'ready') {
          started = performance.now();
          cpuBefore = cpuMs(child.pid!);
          child.send({ type: 'run', sessions: SESSIONS, messages: MESSAGES } satisfies HubCommand);
        } else if (message.type === 'accepted') {
          for (const [id, at] of message.items) acceptedAt.set(id, at);
        } else if (message.type === 'completed') {
          for (const [id, at] of message.items) completedAt.set(id, at);
          if (completedAt.size >= total) resolve((performance.now() - started) / 1000);
        } else if (message.type === 'error') reject(new Error(`the embedded hub: ${message.message}`));
      });
    });
    // The hub's CPU per message: comparable across runs on a machine others load, where messages/s is not.
    const hubCpuMs = (await cpuMs(child.pid!)) - (await cpuBefore!);
    const hubPeak = await peakRssMb(child.pid!);
    const latencies = [...acceptedAt].map(([id, at]) => (completedAt.get(id) ?? NaN) - at);
    return {
      ...summarize(
        '(a) embedded: PGlite + in-process queue, 1 hub process (driven over IPC by the bench process)',
        latencies,
        seconds,
        { hub: hubPeak, driver: ownRssMb() },
      ),
      cpuMsPerMessage: { hub: hubCpuMs / total },
    };
  } finally {
    if (child.exitCode === null) child.send({ type: 'stop' } satisfies HubCommand);
    await exited;
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

interface DistributedResult {
  full: Result;
  paced: Result[];
}

/**
 * The OTLP endpoint of the `tracing` run: answers every export and discards it. In a process of
 * its own, as a collector would be: what receiving the exports costs is not counted as the
 * gateway's (this process's) CPU. It prints its port, then, when its stdin closes, its count.
 */
const OTLP_SINK = `
const http = require('node:http');
let requests = 0;
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    requests++;
    res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
process.stdin.on('end', () => { process.stdout.write(requests + '\\n'); process.exit(0); });
process.stdin.resume();
`;

async function startOtlpSink(): Promise<{ url: string; close: () => Promise<number> }> {
  const child = spawn(process.execPath, ['-e', OTLP_SINK], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      const next = waiting.shift();
      if (next) next(line);
      else lines.push(line);
    }
  });
  const nextLine = () =>
    new Promise<string>((resolve) => {
      const line = lines.shift();
      if (line !== undefined) resolve(line);
      else waiting.push(resolve);
    });
  const port = Number(await nextLine());
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      const count = nextLine();
      child.stdin.end();
      return Number(await count);
    },
  };
}

interface DistributedOptions {
  preload?: boolean;
  /** Every process exports its spans (OTLP/protobuf) to a local sink. */
  tracing?: boolean;
  /** `false`: the full workload only. */
  paced?: boolean;
  /** Full passes over other sessions before the measured one (the workers warmed up, not counted). */
  warmup?: number;
}

async function benchDistributed(options: DistributedOptions = {}): Promise<DistributedResult> {
  const sink = options.tracing ? await startOtlpSink() : undefined;
  // The gateway is this process: its SDK starts here, the workers' in theirs (same variables).
  const tracing = sink
    ? await startTracing({ role: 'gateway', env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: sink.url } })
    : undefined;
  try {
    return await runDistributed(options, sink?.url);
  } finally {
    await tracing?.shutdown();
    if (sink) console.error(`tracing sink: ${await sink.close()} OTLP requests received`);
  }
}

async function runDistributed(
  options: DistributedOptions,
  otlpEndpoint: string | undefined,
): Promise<DistributedResult> {
  return withDatabase(async (databaseUrl) => {
    const label = options.preload
      ? `, preloaded ${PRELOAD_SESSIONS.toLocaleString('en-US')} sessions / ${PRELOAD_MESSAGES.toLocaleString('en-US')} messages`
      : options.tracing
        ? ', tracing on (OTLP)'
        : '';
    if (options.preload) {
      const { migrate } = await import('../src/store/migrate.ts');
      const { openPostgres } = await import('../src/store/postgres.ts');
      const db = openPostgres({ url: databaseUrl, poolSize: 2, logger: silent });
      await migrate(db, silent);
      const loaded = await preload(db, { sessions: PRELOAD_SESSIONS, messages: PRELOAD_MESSAGES });
      console.error(
        `preload: ${loaded.sessions} sessions, ${loaded.messages} messages in ${loaded.seconds.toFixed(1)} s`,
      );
      await db.close();
    }
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
    // DB_ANALYZE_SECONDS=0: the hub's own ANALYZE of stale tables off (src/store/analyze.ts), for A/B.
    if (process.env.DB_ANALYZE_SECONDS) env.DB_ANALYZE_SECONDS = process.env.DB_ANALYZE_SECONDS;
    if (otlpEndpoint) {
      env.OTEL_EXPORTER_OTLP_ENDPOINT = otlpEndpoint;
      // The standard variables of this environment (a sampler, batch sizes) and the hub's own
      // (SWITCHBOARD_TRACE_CONTENT, …) reach the workers too.
      for (const [key, value] of Object.entries(process.env))
        if (
          (key.startsWith('OTEL_') || key.startsWith('SWITCHBOARD_TRACE_')) &&
          key !== 'OTEL_EXPORTER_OTLP_ENDPOINT' &&
          value
        )
          env[key] = value;
    }
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
    const stats = new Redis(REDIS_URL);
    const database = new pg.Client({ connectionString: databaseUrl });
    await database.connect();
    const wakeCounters = [`${prefix}inbound:wake-seq`, `${prefix}outbound:wake-seq`];
    const pids: Record<string, number> = { gateway: process.pid };
    for (const [i, w] of workers.entries()) pids[`worker ${i + 1}`] = w.pid!;
    try {
      for (let pass = 1; pass <= (options.warmup ?? 0); pass++) {
        await drive(
          async (s, n) => {
            const e = envelope(s + pass * SESSIONS, n);
            await gateway.ingress.accept(e);
            return e.id;
          },
          completions,
          signal,
        );
        completions.clear();
      }
      // The warm-up's writes are in PostgreSQL's counters before the measured run reads them.
      if ((options.warmup ?? 0) > 0) await new Promise((r) => setTimeout(r, PG_STATS_FLUSH_MS));
      let driven: { latencies: number[]; seconds: number } | undefined;
      const fullCost = await perMessage(pids, stats, database, wakeCounters, async () => {
        driven = await drive(
          async (s, n) => {
            const e = envelope(s, n);
            await gateway.ingress.accept(e);
            return e.id;
          },
          completions,
          signal,
        );
        return driven.latencies.length;
      });
      const rss: Record<string, number> = { gateway: ownRssMb() };
      for (const [i, w] of workers.entries()) rss[`worker ${i + 1}`] = await peakRssMb(w.pid!);
      const full = {
        ...summarize(
          `(b) Redis + PostgreSQL: 1 gateway + ${WORKERS} workers${label}`,
          driven!.latencies,
          driven!.seconds,
          rss,
        ),
        ...fullCost,
      };
      if (options.paced === false) return { full, paced: [] };

      const paced: Result[] = [];
      let offered = 0;
      for (const rate of PACED_RATES) {
        let result: Result | undefined;
        const cost = await perMessage(pids, stats, database, wakeCounters, async () => {
          const base = offered;
          result = await drivePaced(
            `(b)${label}`,
            rate,
            async (i) => {
              const k = base + i;
              const e = envelope(k % SESSIONS, MESSAGES + Math.floor(k / SESSIONS));
              await gateway.ingress.accept(e);
              return e.id;
            },
            completions,
            rss,
          );
          offered += result.messages;
          return result.messages;
        });
        paced.push({ ...result!, ...cost });
      }
      return { full, paced };
    } finally {
      stats.disconnect();
      await database.end();
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
    const stats = new Redis(REDIS_URL);
    const database = new pg.Client({ connectionString: databaseUrl });
    await database.connect();
    const pids: Record<string, number> = { producer: process.pid };
    for (const [i, w] of workers.entries()) pids[`worker ${i + 1}`] = w.pid!;
    try {
      let driven: { latencies: number[]; seconds: number } | undefined;
      const cost = await perMessage(pids, stats, database, [`${prefix}:baseline:id`], async () => {
        driven = await drive(
          async (s, n) => {
            const id = `b.${s}.${n}`;
            await queue.add('m', { s: String(s), t: `m${n}`, id });
            return id;
          },
          completions,
          signal,
        );
        return driven.latencies.length;
      });
      const rss: Record<string, number> = { producer: ownRssMb() };
      for (const [i, w] of workers.entries()) rss[`worker ${i + 1}`] = await peakRssMb(w.pid!);
      const full = {
        ...summarize(
          `(c) bare baseline: BullMQ + one INSERT, ${WORKERS} workers`,
          driven!.latencies,
          driven!.seconds,
          rss,
        ),
        ...cost,
      };
      if (!options.paced) return { full };
      const paced = await drivePaced(
        '(c)',
        PACED_RATES[0] ?? 1000,
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
      stats.disconnect();
      await database.end();
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
    `\nSwitchboard benchmark — ${SESSIONS} sessions × ${MESSAGES} messages, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`,
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
  for (const r of results.filter((r) => r.slowest))
    console.log(
      `- ${r.name}: slowest message ${ms(r.slowest!.ms)}, accepted ${r.slowest!.atSeconds.toFixed(2)} s into the step`,
    );
  const costed = results.filter((r) => r.cpuMsPerMessage);
  if (costed.length > 0) {
    console.log(
      "\nPer message: CPU ms by process (PostgreSQL: the bench database's backends); Redis commands (of them Lua scripts, counting the commands scripts run), BullMQ jobs added; PostgreSQL transactions and rows written:\n",
    );
    for (const r of costed) {
      const cpu = Object.entries(r.cpuMsPerMessage!)
        .map(([k, v]) => `${k} ${v.toFixed(3)}`)
        .join(', ');
      const total = Object.values(r.cpuMsPerMessage!).reduce((a, b) => a + b, 0);
      // The embedded run has no Redis and no PostgreSQL server: its hub's CPU only.
      const redis = r.redisPerMessage;
      const pgWork = r.pgPerMessage;
      console.log(
        `- ${r.name}: CPU ${cpu} (total ${total.toFixed(3)})` +
          (redis
            ? `; Redis ${redis.commands.toFixed(1)} commands (${redis.scripts.toFixed(2)} scripts), BullMQ jobs ${redis.bullJobs.toFixed(3)}`
            : '') +
          (pgWork
            ? `; PostgreSQL ${pgWork.transactions.toFixed(2)} transactions, ${pgWork.rowsWritten.toFixed(1)} rows written`
            : '') +
          (redis
            ? `; top Redis commands: ${redis.top.map(([name, n]) => `${name} ${n.toFixed(2)}`).join(', ')}`
            : ''),
      );
    }
  }
}

/** Issue 19's targets, each beside this run's figure. */
function printTargets(figures: {
  startup?: StartupResult;
  embedded?: Result;
  distributed?: DistributedResult;
  size?: DistributedResult;
  fastestBaseline?: number;
  websocket?: WebSocketBenchResult;
}) {
  const lines: string[] = [];
  const mark = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const n = (v: number, d = 0) =>
    v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  if (figures.startup) {
    const { fresh, existing } = figures.startup;
    lines.push(...startupLines(figures.startup));
    lines.push(
      `  → ready ≤ 1 s existing: ${mark(existing.readyMs <= 1000)}; ≤ 2 s new: ${mark(fresh.readyMs <= 2000)}; idle ≤ 250 MB: ${mark(existing.idleRssMb <= 250)}; first start ≤ 400 MB: ${mark(fresh.peakRssMb <= 400)}`,
    );
  }
  if (figures.embedded) {
    const e = figures.embedded;
    const peak = Object.values(e.rssMb)[0] ?? 0;
    lines.push(
      `embedded throughput: ${n(e.perSecond)} messages/s (target ≥ 2,500): ${mark(e.perSecond >= 2500)}`,
    );
    lines.push(
      `embedded peak RSS after its run: ${peak} MB (target ≤ 400 MB; the hub's process, the driver in another): ${mark(peak <= 400)}`,
    );
  }
  if (figures.distributed && figures.fastestBaseline) {
    const ratio = figures.distributed.full.perSecond / figures.fastestBaseline;
    lines.push(`distributed (b)/(c): ${ratio.toFixed(2)}× (target ≥ 1.5×): ${mark(ratio >= 1.5)}`);
  }
  for (const p of figures.distributed?.paced ?? []) {
    const at = /at (\d+) messages/.exec(p.name)?.[1];
    const target = at === '1000' ? 20 : at === '2000' ? 50 : undefined;
    const strict = at === '2000';
    lines.push(
      `p99 at ${at} messages/s offered: ${p.p99.toFixed(1)} ms` +
        (target === undefined
          ? ''
          : ` (target ${strict ? '<' : '≤'} ${target} ms): ${mark(strict ? p.p99 < target : p.p99 <= target)}`),
    );
  }
  if (figures.distributed) {
    const cpu = figures.distributed.paced[0]?.cpuMsPerMessage ?? figures.distributed.full.cpuMsPerMessage;
    if (cpu)
      lines.push(
        `CPU ms per message at ${PACED_RATES[0]}/s: ${Object.entries(cpu)
          .map(([k, v]) => `${k} ${v.toFixed(2)}`)
          .join(', ')}`,
      );
  }
  if (figures.size && figures.distributed) {
    const empty = figures.distributed;
    const full = figures.size;
    const tput = full.full.perSecond / empty.full.perSecond;
    lines.push(
      `size: ${n(full.full.perSecond)} vs ${n(empty.full.perSecond)} messages/s empty (${((tput - 1) * 100).toFixed(1)}%, target: at most 10% slower): ${mark(tput >= 0.9)}`,
    );
    for (const [i, p] of full.paced.entries()) {
      const e = empty.paced[i];
      if (!e) continue;
      const ratio = p.p99 / e.p99;
      lines.push(
        `size: p99 at ${PACED_RATES[i]}/s ${p.p99.toFixed(1)} vs ${e.p99.toFixed(1)} ms empty (${((ratio - 1) * 100).toFixed(1)}%, target: at most 10% higher): ${mark(ratio <= 1.1)}`,
      );
    }
  }
  if (figures.websocket) {
    const kib = figures.websocket.rssPerConnectionKiB;
    lines.push(
      `idle web sockets: ${n(kib, 1)} KiB RSS each over ${n(figures.websocket.idleConnections)}, read after a full collection (${n(figures.websocket.rssPerConnectionUncollectedKiB, 1)} right after the connects, their garbage included) (target ≤ 10 KiB): ${mark(kib <= 10)}`,
    );
  }
  if (lines.length === 0) return;
  console.log('\nTargets (issue 19; the README takes the median of three runs):\n');
  for (const line of lines) console.log(`- ${line}`);
}

const only = process.argv.slice(2);
// The hub in this process knows its channels as the CLI's does.
registerChannels();
// `size` and `startup` are asked for by name or run with everything.
const want = (k: string) => only.length === 0 || only.includes(k);
const results: Result[] = [];
let startup: StartupResult | undefined;
let embedded: Result | undefined;
let distributed: DistributedResult | undefined;
let size: DistributedResult | undefined;
/** The `tracing` part's pairs: a full run with tracing on, then one with it off, back to back. */
const tracingPairs: { on: Result; off: Result }[] = [];
let baseline: { full: Result; paced?: Result } | undefined;
let websocket: WebSocketBenchResult | undefined;
// When (b) and (c) are compared, (c)'s full run also runs before (b): the ratio is taken against
// the faster of its two runs, so that the order of the runs cannot favour (b).
let baselineBefore: Result | undefined;
if (want('startup')) startup = await runStartupBench();
if (want('embedded')) {
  embedded = await benchEmbedded();
  results.push(embedded);
}
if (want('distributed') && want('baseline')) {
  baselineBefore = (await benchBaseline({ paced: false })).full;
  baselineBefore.name = `${baselineBefore.name}, run before (b)`;
}
if (want('distributed') || want('size')) {
  distributed = await benchDistributed();
  results.push(distributed.full, ...distributed.paced);
}
if (want('size')) {
  size = await benchDistributed({ preload: true });
  results.push(size.full, ...size.paced);
}
if (want('tracing')) {
  // After (b): the SDK this process registers for it stays registered (switched off) afterwards.
  // Each traced run is compared with an untraced full run right after it, not with (b)'s, which
  // ran before the paced steps: the machine's state (PostgreSQL's checkpoints and vacuum after
  // tens of thousands of writes, its speed, which moves by 15% here) differs between runs
  // minutes apart, and pairs alternating on and off share it.
  // The gateway is this process, and a pair's traced run comes first: without a run before, the
  // first pair's traced run paid the process's warm-up (its JIT, its heap's growth), ~0.01 ms a
  // message of the gateway's CPU put on tracing; after a traced run alone, the first untraced run
  // paid the untraced path's (README "Tracing"). A pair, not counted, warms both.
  if (!distributed && !size)
    for (let i = 0; i < TRACING_WARMUP; i++) {
      const on = (await benchDistributed({ tracing: true, paced: false })).full;
      const off = (await benchDistributed({ paced: false })).full;
      console.error(
        `tracing: warm-up pair ${i + 1} (not counted): ${on.perSecond.toFixed(0)} / ${off.perSecond.toFixed(0)} messages/s`,
      );
    }
  // Which run of a pair comes first alternates: the process keeps warming (its CPU a message
  // falls by ~0.002 ms from one run to the next), and that drift must not favour either side.
  for (let round = 0; round < TRACING_ROUNDS; round++) {
    const onFirst = round % 2 === 0;
    const warmup = TRACING_WORKER_WARMUP;
    const first = (
      await benchDistributed(onFirst ? { tracing: true, paced: false, warmup } : { paced: false, warmup })
    ).full;
    const second = (
      await benchDistributed(onFirst ? { paced: false, warmup } : { tracing: true, paced: false, warmup })
    ).full;
    const [on, off] = onFirst ? [first, second] : [second, first];
    off.name = `${off.name}, tracing off (pair ${round + 1}, ${onFirst ? 'second' : 'first'})`;
    on.name = `${on.name} (pair ${round + 1}, ${onFirst ? 'first' : 'second'})`;
    tracingPairs.push({ on, off });
    results.push(on, off);
  }
}
if (want('baseline')) {
  baseline = await benchBaseline();
  if (baselineBefore) results.push(baselineBefore);
  results.push(baseline.full);
  if (baseline.paced) results.push(baseline.paced);
}
if (startup) {
  console.log('\n`switchboard start`, embedded, nothing configured:\n');
  for (const line of startupLines(startup)) console.log(line);
}
if (results.length > 0) print(results);
const fastestBaseline = baseline
  ? Math.max(baseline.full.perSecond, baselineBefore?.perSecond ?? 0)
  : undefined;
if (distributed && fastestBaseline) {
  console.log(
    `\n(b) / (c) throughput: ${(distributed.full.perSecond / fastestBaseline).toFixed(2)}× (against the faster (c) run, ${fastestBaseline.toFixed(0)} messages/s)`,
  );
}
if (tracingPairs.length > 0) {
  const ratios = tracingPairs.map(({ on, off }) => on.perSecond / off.perSecond);
  console.log(
    `\ntracing on / off, (b) throughput: ${median(ratios).toFixed(2)}× (target ≥ 0.90; median of ${ratios.length} pairs of a traced and an untraced full run, back to back, the traced one first in every other pair: ${tracingPairs
      .map(
        ({ on, off }, i) =>
          `${ratios[i]!.toFixed(2)} = ${on.perSecond.toFixed(0)} / ${off.perSecond.toFixed(0)}`,
      )
      .join('; ')})`,
  );
  for (const line of tracingSummaryLines(tracingPairs)) console.log(line);
}
if (want('websocket')) {
  websocket = await runWebSocketBench();
  console.log('\nWeb sockets on one gateway process:');
  console.log(JSON.stringify(websocket, null, 2));
}
if (want('broadcast') || want('schedule')) {
  const outbound = await runOutboundBench({ broadcast: want('broadcast'), schedule: want('schedule') });
  console.log('\nOutbound (issue 22):\n');
  for (const line of outboundLines(outbound)) console.log(`- ${line}`);
}
if (want('dashboard')) {
  const timings = await runDashboardBench();
  console.log(
    `\nDashboard queries (issue 25), preloaded ${PRELOAD_SESSIONS.toLocaleString('en-US')} sessions / ${PRELOAD_MESSAGES.toLocaleString('en-US')} messages:\n`,
  );
  for (const line of dashboardLines(timings)) console.log(line);
}
if (want('files')) {
  console.log(
    '\nFile store (issue 24): a file streamed in and out of an embedded hub, each size in a process of its own:',
  );
  for (const files of await runFilesBench()) {
    const { upload: up, download: down } = files;
    console.log(
      `- ${files.fileMb} MB (baseline ${files.baselineRssMb} MB RSS): in at ${up.mbPerSecond} MB/s, peak RSS +${up.rssGrowthMb} MB, heap peak ${up.peakHeapMb} MB; out at ${down.mbPerSecond} MB/s, peak RSS +${down.rssGrowthMb} MB, heap peak ${down.peakHeapMb} MB`,
    );
  }
}
if (want('webhooks')) {
  console.log('\nEvent webhook trigger on messages (issue 26), one session, rolled back each run:\n');
  for (const line of webhookTriggerLines(await runWebhookTriggerBench())) console.log(line);
}
// Asked for by name only: `npm run bench -- tracing-path`.
if (only.includes('tracing-path')) {
  const sink = await startOtlpSink();
  try {
    const result = await runTracingPathBench(sink.url);
    console.log("\nTracing's per-message path (issue 26), in fresh processes:\n");
    for (const line of tracingPathLines(result)) console.log(`- ${line}`);
  } finally {
    console.error(`tracing sink: ${await sink.close()} OTLP requests received`);
  }
}
printTargets({ startup, embedded, distributed, size, fastestBaseline, websocket });
process.exit(0);
