import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import WebSocket from 'ws';
import { clearRedisPrefix } from '../test/helpers/redis.ts';

/**
 * Web channel benchmark: one gateway process (`switchboard start`, a child process on
 * PostgreSQL and Redis) holds many idle widget sessions, connected by a separate client process.
 * The sessions are created first, through another gateway process; the measured gateway's
 * resident memory is read fresh and again once every socket is connected (each bound to its
 * session and subscribed on the bus), which gives what one open connection costs. Then some of
 * the sessions chat, and each message's round trip (send → the reply's message frame) is
 * measured. Loopback only, bounded loops.
 *
 *   node --import tsx bench/websocket.ts            (10,000 idle, 1,000 chatting)
 *   BENCH_WS_IDLE=2000 BENCH_WS_CHATTING=200 node --import tsx bench/websocket.ts
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface WebSocketBenchOptions {
  /** Concurrent idle sessions to open. */
  idle: number;
  /** How many of them then chat. */
  chatting: number;
  /** Messages each chatting session sends, one after another. */
  messagesEach: number;
  /** Sessions being opened at once. */
  connectConcurrency: number;
  databaseUrl: string;
  redisUrl: string;
  log?: (line: string) => void;
}

export interface WebSocketBenchResult {
  idleConnections: number;
  /** Opening the sessions (hello without token, up to the greeting), on a first gateway. */
  createSessionsSeconds: number;
  /** Connecting the idle sockets to the measured gateway (hello with token). */
  connectSeconds: number;
  /** The measured gateway, fresh, with one warm-up connection. */
  serverRssBeforeMiB: number;
  /** With every socket connected and idle. */
  serverRssAfterMiB: number;
  /**
   * (after − before) / connections: what holding one idle connection costs, each read after a
   * full garbage collection (what an idle gateway comes to once V8 collects the connects' garbage).
   */
  rssPerConnectionKiB: number;
  /** The JavaScript heap's share of it (prom-client's nodejs_heap_size_used_bytes). */
  heapPerConnectionKiB: number;
  /** The same, read right after the connects (before 2026-12-06 the only figure): garbage included. */
  rssPerConnectionUncollectedKiB: number;
  heapPerConnectionUncollectedKiB: number;
  chattingSessions: number;
  messages: number;
  roundTripP50Ms: number;
  roundTripP99Ms: number;
  roundTripMaxMs: number;
  /** Messages answered per second during the chat phase (a closed loop: each session waits for its reply). */
  messagesPerSecond: number;
  /** The session engine's mean time per turn (dequeue to commit) during the chat phase. */
  engineTurnMeanMs: number;
}

export const DEFAULT_OPTIONS: WebSocketBenchOptions = {
  idle: Number(process.env.BENCH_WS_IDLE ?? 10_000),
  chatting: Number(process.env.BENCH_WS_CHATTING ?? 1_000),
  messagesEach: Number(process.env.BENCH_WS_MESSAGES ?? 5),
  connectConcurrency: 100,
  databaseUrl:
    process.env.BENCH_DATABASE_URL ??
    process.env.TEST_DATABASE_URL ??
    'postgres://postgres@127.0.0.1:5432/postgres',
  redisUrl: process.env.BENCH_REDIS_URL ?? process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
};

/** Lets the server's memory settle (timers, GC) before it is read. */
const SETTLE_MS = 5_000;
const RSS_SAMPLES = 5;
const MiB = 1024 * 1024;

function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!kb) throw new Error('no VmRSS in /proc (this benchmark reads Linux process memory)');
  return Number(kb[1]) * 1024;
}

/** A sample's value from the hub's /metrics: the sum over its label sets, 0 when it has none yet. */
async function metric(baseUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}
const heapUsedBytes = (baseUrl: string) => metric(baseUrl, 'switchboard_nodejs_heap_size_used_bytes');

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

/**
 * Starts a gateway; with `inspect`, its V8 inspector listens on a free loopback port (for
 * `collectGarbage`), the process otherwise as `switchboard start` runs.
 */
function startServer(
  env: Record<string, string>,
  { inspect = false } = {},
): Promise<{ child: ChildProcess; port: number; inspector?: Promise<string> }> {
  const args = [path.join(ROOT, 'bin/switchboard.js'), 'start'];
  const child = spawn(process.execPath, inspect ? ['--inspect=127.0.0.1:0', ...args] : args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let inspectorFound: (url: string) => void = () => undefined;
  const inspector = new Promise<string>((resolve) => {
    inspectorFound = resolve;
  });
  return new Promise((resolve, reject) => {
    let buffered = '';
    let errors = '';
    child.stderr!.on('data', (d: Buffer) => {
      errors += d.toString();
      const url = /Debugger listening on (ws:\/\/\S+)/.exec(errors)?.[1];
      if (url) inspectorFound(url);
    });
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
        if (line.includes('"hub.started"'))
          resolve({
            child,
            port: (JSON.parse(line) as { port: number }).port,
            ...(inspect ? { inspector } : {}),
          });
      }
      // Only the start line matters; the rest is drained so the pipe never blocks the server.
      if (buffered.length > 1_000_000) buffered = '';
    });
    child.once('exit', (code) =>
      reject(new Error(`the gateway exited (${code}) before it started: ${errors}`)),
    );
  });
}

/**
 * A full garbage collection in the gateway, through its inspector (the DevTools protocol's
 * `HeapProfiler.collectGarbage`): memory read after it is what the process holds, not the
 * garbage of the work just done, which V8 collects whenever it next gets to it (30–40 s after
 * 10,000 connects in a trial).
 */
async function collectGarbage(inspectorUrl: string): Promise<void> {
  const socket = new WebSocket(inspectorUrl);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.on('message', (data) => {
        const answer = JSON.parse(data.toString()) as { id?: number; error?: { message: string } };
        if (answer.id !== 1) return;
        if (answer.error) reject(new Error(`collectGarbage: ${answer.error.message}`));
        else resolve();
      });
      socket.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
    });
  } finally {
    socket.close();
  }
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** RSS once it has settled: the median of a few readings a second apart, after a pause. */
async function settledRss(pid: number): Promise<number> {
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const samples: number[] = [];
  for (let i = 0; i < RSS_SAMPLES; i++) {
    samples.push(rssBytes(pid));
    await new Promise((r) => setTimeout(r, 1_000));
  }
  return samples.sort((a, b) => a - b)[Math.floor(RSS_SAMPLES / 2)]!;
}

/** The client process, driven by request/answer over IPC. */
function startClients(): {
  ask: (command: unknown) => Promise<Record<string, unknown>>;
  child: ChildProcess;
} {
  const child = fork(path.join(ROOT, 'bench/websocket-clients.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let pending: ((m: Record<string, unknown>) => void) | undefined;
  const ready = new Promise<void>((resolve) => {
    pending = () => resolve();
  });
  child.on('message', (m: Record<string, unknown>) => {
    const p = pending;
    pending = undefined;
    p?.(m);
  });
  const ask = async (command: unknown) => {
    await ready;
    const answer = await new Promise<Record<string, unknown>>((resolve) => {
      pending = resolve;
      child.send(command as object);
    });
    if (answer.error) throw new Error(`bench client: ${String(answer.error)}`);
    return answer;
  };
  return { ask, child };
}

export async function runWebSocketBench(
  overrides: Partial<WebSocketBenchOptions> = {},
): Promise<WebSocketBenchResult> {
  const o = { ...DEFAULT_OPTIONS, ...overrides };
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (o.chatting > o.idle) throw new Error('cannot chat with more sessions than are open');

  const dbName = `sbb_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: o.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const dbUrl = new URL(o.databaseUrl);
  dbUrl.pathname = `/${dbName}`;
  const prefix = `sbb:${randomBytes(6).toString('hex')}:`;

  let server: ChildProcess | undefined;
  let clients: ReturnType<typeof startClients> | undefined;
  const gatewayEnv = {
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: dbUrl.toString(),
    DATABASE_POOL_SIZE: '20',
    REDIS_URL: o.redisUrl,
    REDIS_PREFIX: prefix,
    LOG_LEVEL: 'info',
    RATE_LIMIT_PER_MINUTE: '1000',
    // Every benchmark client comes from 127.0.0.1.
    SESSION_CREATE_PER_MINUTE: '1000000',
    WEB_CONNECTIONS_PER_MINUTE: '1000000',
  };
  try {
    clients = startClients();
    // The sessions are made by a first gateway (as a day of visitors would), so that what the
    // measured gateway holds is the connections, not the garbage of creating 10,000 sessions.
    log(`gateway 1: creating ${o.idle} sessions, ${o.connectConcurrency} at a time (PostgreSQL ${dbName})`);
    const maker = await startServer(gatewayEnv);
    server = maker.child;
    const create = await clients.ask({
      cmd: 'create',
      url: `ws://127.0.0.1:${maker.port}/ws`,
      count: o.idle,
      concurrency: o.connectConcurrency,
    });
    await stopServer(server);

    log('gateway 2: starting; one session connects to warm it up');
    const started = await startServer(gatewayEnv, { inspect: true });
    server = started.child;
    const inspectorUrl = await started.inspector!;
    const baseUrl = `http://127.0.0.1:${started.port}`;
    const url = `ws://127.0.0.1:${started.port}/ws`;
    await clients.ask({ cmd: 'connect', url, count: 1, concurrency: 1 });
    await collectGarbage(inspectorUrl);
    const rssBefore = await settledRss(server.pid!);
    const heapBefore = await heapUsedBytes(baseUrl);

    log(`gateway 2: connecting ${o.idle - 1} more sessions and leaving them idle`);
    const connect = await clients.ask({
      cmd: 'connect',
      url,
      count: o.idle - 1,
      concurrency: o.connectConcurrency,
    });
    const rssUncollected = await settledRss(server.pid!);
    const heapUncollected = await heapUsedBytes(baseUrl);
    await collectGarbage(inspectorUrl);
    const rssAfter = await settledRss(server.pid!);
    const heapAfter = await heapUsedBytes(baseUrl);
    const opened = o.idle - 1;
    const kibEach = (after: number, before: number) =>
      Math.round(((after - before) / opened / 1024) * 10) / 10;

    log(`clients: ${o.chatting} sessions send ${o.messagesEach} messages each`);
    const turnsBefore = await metric(baseUrl, 'switchboard_engine_turn_seconds_count');
    const turnSecondsBefore = await metric(baseUrl, 'switchboard_engine_turn_seconds_sum');
    const chatStarted = Date.now();
    const chat = await clients.ask({ cmd: 'chat', sessions: o.chatting, messagesEach: o.messagesEach });
    const chatMs = Date.now() - chatStarted;
    const rtts = (chat.rtts as number[]).sort((a, b) => a - b);
    const turns = (await metric(baseUrl, 'switchboard_engine_turn_seconds_count')) - turnsBefore;
    const turnSeconds = (await metric(baseUrl, 'switchboard_engine_turn_seconds_sum')) - turnSecondsBefore;

    return {
      idleConnections: o.idle,
      createSessionsSeconds: Math.round(Number(create.ms) / 100) / 10,
      connectSeconds: Math.round(Number(connect.ms) / 100) / 10,
      serverRssBeforeMiB: Math.round((rssBefore / MiB) * 10) / 10,
      serverRssAfterMiB: Math.round((rssAfter / MiB) * 10) / 10,
      rssPerConnectionKiB: kibEach(rssAfter, rssBefore),
      heapPerConnectionKiB: kibEach(heapAfter, heapBefore),
      rssPerConnectionUncollectedKiB: kibEach(rssUncollected, rssBefore),
      heapPerConnectionUncollectedKiB: kibEach(heapUncollected, heapBefore),
      chattingSessions: o.chatting,
      messages: rtts.length,
      roundTripP50Ms: Math.round(percentile(rtts, 50) * 10) / 10,
      roundTripP99Ms: Math.round(percentile(rtts, 99) * 10) / 10,
      roundTripMaxMs: Math.round((rtts.at(-1) ?? Number.NaN) * 10) / 10,
      messagesPerSecond: Math.round(rtts.length / (chatMs / 1000)),
      engineTurnMeanMs: Math.round((turnSeconds / turns) * 1000 * 10) / 10,
    };
  } finally {
    if (clients) {
      clients.child.send({ cmd: 'close' });
      await new Promise((r) => clients!.child.once('exit', r));
    }
    if (server) await stopServer(server);
    const cleanup = new pg.Client({ connectionString: o.databaseUrl });
    await cleanup.connect();
    await cleanup.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await cleanup.end();
    await clearRedisPrefix(o.redisUrl, prefix);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await runWebSocketBench();
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
