import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runSwitchboard } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';

/**
 * A Redis in front of the test's that blinks: the first connection made through it is reset at
 * the first command it sends after Redis answered its PING (the command's check that Redis
 * answers). The command's connection is lost once it is under way (the warning `redis.error`),
 * reconnects through it, and the command goes on. Every other connection is passed on.
 */
async function blinkingRedis(): Promise<{ url: string; close(): Promise<void> }> {
  const target = new URL(TEST_REDIS_URL);
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((client) => {
    const blinks = ++connections === 1;
    let answered = false;
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    upstream.on('data', (chunk: Buffer) => {
      if (chunk.includes('+PONG\r\n')) answered = true;
      client.write(chunk);
    });
    client.on('data', (chunk: Buffer) => {
      if (blinks && answered) {
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      upstream.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}${target.pathname}`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The JSON lines of a log, parsed; anything else in it fails the test. */
const logLines = (text: string) =>
  text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { level: number; event: string });

/**
 * Every command but `start` logs to stderr: stdout holds the command's result alone, what a
 * script reads (`--json`), whatever the command logged on the way.
 */
describe('command output: the result on stdout, log lines on stderr', () => {
  let database: TestDatabase;
  let redis: { prefix: string; cleanup: () => Promise<void> };
  let env: Record<string, string>;
  let blinking: Awaited<ReturnType<typeof blinkingRedis>> | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    redis = testRedisPrefix();
    env = { DATABASE_URL: database.url, REDIS_PREFIX: redis.prefix, LOG_FORMAT: 'json' };
    expect((await runSwitchboard(['migrate'], env)).code).toBe(0);
  });
  afterEach(async () => {
    await blinking?.close();
    blinking = undefined;
  });
  afterAll(async () => {
    await redis?.cleanup();
    await database?.drop();
  });

  it('migrate: its one line on stdout, the migrations it logs on stderr', async () => {
    const fresh = await createTestDatabase();
    try {
      const res = await runSwitchboard(['migrate'], { ...env, DATABASE_URL: fresh.url, LOG_LEVEL: 'info' });
      expect(res.code).toBe(0);
      expect(res.stdout).toMatch(/^applied [\w/]+(, [\w/]+)*\n$/);
      const lines = logLines(res.stderr);
      expect(lines.length).toBeGreaterThan(0);
      expect(new Set(lines.map((l) => l.event))).toEqual(new Set(['db.migrated']));
    } finally {
      await fresh.drop();
    }
  });

  it.each([
    [['scheduler', 'failed', '--json']],
    [['queue', 'status', '--json']],
    [['queue', 'failed', '--json']],
  ])('%j while Redis blinks: stdout parses as JSON, the warning is on stderr', async (args) => {
    blinking = await blinkingRedis();
    const res = await runSwitchboard(args, { ...env, REDIS_URL: blinking.url, LOG_LEVEL: 'warn' });
    expect(res.code).toBe(0);
    expect(Array.isArray(JSON.parse(res.stdout))).toBe(true);
    expect(logLines(res.stderr)).toContainEqual(expect.objectContaining({ level: 40, event: 'redis.error' }));
  });
});
