import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase, tempDir } from '../helpers/database.ts';
import { freePort } from '../helpers/free-port.ts';
import { apiClient, REPO_ROOT } from '../helpers/hub.ts';
import { ServerProcess } from '../helpers/server-process.ts';
import { until } from '../helpers/until.ts';

/** The `slow` bot: `hold` lasts until the test writes `$SLOW_BOT_DIR/release`. */
const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/shutdown');
/**
 * Slack for a process's exit after its deadline or a signal, as this process sees it (a loaded
 * machine, 2 cores shared by several test files): far below the bounds the tests tell apart.
 */
const EXIT_SLACK_MS = 5_000;

/** A TCP server that takes connections and never answers: a Redis that hangs. */
async function silentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}/0`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** `switchboard <args>` with `env`; killed (and the test failed) if it runs longer than `limitMs`. */
function runCli(args: string[], env: Record<string, string>, limitMs = 30_000) {
  const started = Date.now();
  return new Promise<{ code: number | null; out: string; err: string; ms: number }>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/switchboard.js'), ...args], {
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`switchboard ${args.join(' ')} still ran after ${limitMs} ms:\n${out}${err}`));
    }, limitMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err, ms: Date.now() - started });
    });
  });
}

/** Until the process on `port` answers `/healthz` (it listens before it waits for its dependencies). */
const untilListening = (port: number) =>
  until(
    () =>
      fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.status,
        () => 0,
      ),
    (status) => status === 200,
  );

describe('a hub stops within its deadline, and fails its start rather than wait for ever (child processes)', () => {
  let database: TestDatabase;
  let slowBotDir: string;
  const servers: ServerProcess[] = [];
  const hub = (env: Record<string, string> = {}) => {
    const server = new ServerProcess({
      PORT: '0',
      DATABASE_URL: database.url,
      CONFIG_DIR,
      SLOW_BOT_DIR: slowBotDir,
      // Long enough that only the stop ends a chat's wait.
      CHAT_WAIT_MS: '120000',
      ...env,
    });
    servers.push(server);
    return server;
  };
  /** A session of the slow bot whose `hold` turn is running; the chat waiting for its replies. */
  const holdTurn = async (server: ServerProcess) => {
    const api = apiClient(server.url);
    const session = await api.createSession('slow');
    const chat = api.chat(session.token, 'hold');
    await until(
      () => existsSync(path.join(slowBotDir, `${session.session_id}.started`)),
      (started) => started,
    );
    return { api, session, chat };
  };
  const events = (server: ServerProcess, event: string) =>
    server.logLines().filter((line) => line.event === event);

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  beforeEach(async () => {
    slowBotDir = await tempDir('sbt-slow-bot-');
  });
  afterEach(async () => {
    // A test that failed leaves its process behind: end it.
    for (const server of servers.splice(0)) await server.stop('SIGKILL');
    await fs.rm(slowBotDir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('a start whose Redis does not answer fails after DEPENDENCY_TIMEOUT_SECONDS, naming REDIS_URL', async () => {
    const redisPort = await freePort(); // nothing listens there
    const httpPort = await freePort();
    const server = hub({
      PORT: String(httpPort),
      REDIS_URL: `redis://127.0.0.1:${redisPort}/0`,
      DEPENDENCY_TIMEOUT_SECONDS: '2',
    });
    const start = server.start().catch((err: Error) => err);
    // The server listens before it waits for PostgreSQL and Redis: the bound runs from then on.
    await untilListening(httpPort);
    const listening = Date.now();
    const exit = await server.exited!;
    expect(exit.code).toBe(1);
    // It waited for Redis (tried again and again), then gave up at the bound.
    expect(exit.at - listening).toBeGreaterThan(1_000);
    expect(exit.at - listening).toBeLessThan(2_000 + EXIT_SLACK_MS);
    const { message } = (await start) as Error;
    expect(message).toContain(
      `switchboard: Redis at redis://127.0.0.1:${redisPort}/0 did not answer within 2 s (REDIS_URL): connect ECONNREFUSED 127.0.0.1:${redisPort}`,
    );
    expect(events(server, 'hub.start_failed')).toHaveLength(1);
    expect(events(server, 'hub.started')).toEqual([]);
  });

  it('a SIGTERM while the start waits for Redis stops the hub at once', async () => {
    const httpPort = await freePort();
    const server = hub({
      PORT: String(httpPort),
      REDIS_URL: `redis://127.0.0.1:${await freePort()}/0`,
      DEPENDENCY_TIMEOUT_SECONDS: '600',
      SHUTDOWN_TIMEOUT_SECONDS: '600',
    });
    const start = server.start().catch((err: Error) => err);
    await untilListening(httpPort);
    const signalled = Date.now();
    server.kill('SIGTERM');
    const exit = await server.exited!;
    expect(exit.code).toBe(0);
    expect(exit.at - signalled).toBeLessThan(EXIT_SLACK_MS);
    expect((await start) as Error).toBeInstanceOf(Error);
    expect(events(server, 'hub.stopped')).toHaveLength(1);
  });

  it('a turn in flight past SHUTDOWN_TIMEOUT_SECONDS: the chat waiting for it is answered 202, the process exits 1 at the deadline naming the queue, and the message is answered after the restart', async () => {
    const server = hub({ SHUTDOWN_TIMEOUT_SECONDS: '2' });
    await server.start();
    const { session, chat } = await holdTurn(server);

    const signalled = Date.now();
    server.kill('SIGTERM');
    // Answered, not cut: the message is queued, its replies will be in the history.
    const answer = await chat;
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ status: 'queued' });
    expect(answer.headers.get('connection')).toBe('close');
    const exit = await server.exited!;
    expect(exit.code).toBe(1);
    expect(exit.at - signalled).toBeGreaterThan(1_900);
    expect(exit.at - signalled).toBeLessThan(2_000 + EXIT_SLACK_MS);
    expect(events(server, 'hub.stop_timeout')).toMatchObject([
      { step: 'queue: turns in flight', timeoutSeconds: 2 },
    ]);

    // Nothing was lost: the next start runs the turn again (the queue is at-least-once).
    await fs.writeFile(path.join(slowBotDir, 'release'), '');
    await server.start();
    const history = await until(
      () => apiClient(server.url).history(session.token),
      (h) => h.json.messages.some((m: { text: string }) => m.text === 'released'),
    );
    const said = history.json.messages.map((m: { role: string; text: string }) => `${m.role}:${m.text}`);
    // Once, and answered once (after the bot's greeting).
    expect(said.slice(said.indexOf('user:hold'))).toEqual(['user:hold', 'assistant:released']);
  });

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('a second %s while the stop waits for a turn exits at once (%i)', async (signal, code) => {
    const server = hub({ SHUTDOWN_TIMEOUT_SECONDS: '600' });
    await server.start();
    const { chat } = await holdTurn(server);
    server.kill(signal);
    // The stop is under way: it answered the chat, and waits for the turn (for up to 600 s).
    expect((await chat).status).toBe(202);
    await until(
      () => events(server, 'hub.stopping').length,
      (n) => n === 1,
    );
    const again = Date.now();
    server.kill(signal);
    const exit = await server.exited!;
    expect(exit.code).toBe(code);
    expect(exit.at - again).toBeLessThan(EXIT_SLACK_MS);
    // It names where the stop was (the HTTP step may still be closing the chat's connection).
    expect(events(server, 'process.forced_exit')).toMatchObject([{ signal, step: expect.any(String) }]);
  });

  describe('operator commands against a Redis that does not answer', () => {
    const env = () => ({ DATABASE_URL: database.url, DEPENDENCY_TIMEOUT_SECONDS: '1' });

    it.each([
      ['scheduler', 'failed'],
      ['queue', 'status'],
      ['queue', 'failed'],
    ])('%s %s with nothing at REDIS_URL fails at once, naming it', async (...args) => {
      const port = await freePort();
      const run = await runCli(args, { ...env(), REDIS_URL: `redis://127.0.0.1:${port}/0` });
      expect(run.code).toBe(1);
      expect(run.err).toBe(
        `switchboard: Redis at redis://127.0.0.1:${port}/0 did not answer (REDIS_URL): connect ECONNREFUSED 127.0.0.1:${port}\n`,
      );
    });

    it('scheduler failed with a Redis that takes the connection and never answers fails after DEPENDENCY_TIMEOUT_SECONDS', async () => {
      const silent = await silentServer();
      try {
        const run = await runCli(['scheduler', 'failed'], { ...env(), REDIS_URL: silent.url });
        expect(run.code).toBe(1);
        expect(run.err).toBe(`switchboard: Redis at ${silent.url} did not answer within 1 s (REDIS_URL)\n`);
        expect(run.ms).toBeLessThan(1_000 + 5_000);
      } finally {
        await silent.close();
      }
    });
  });
});
