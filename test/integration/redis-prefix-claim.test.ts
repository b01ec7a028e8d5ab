import fs from 'node:fs/promises';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/env.ts';
import { DATABASE_ID_KEY } from '../../src/hub/redis-claim.ts';
import { createHub } from '../../src/hub.ts';
import { createTestDatabase, silentLogger, type TestDatabase, tempDir } from '../helpers/database.ts';
import { type RunningHub, startTestHub, testConfig } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';

/**
 * Every key under a Redis prefix (the queues' lanes, the cache, the bus, the scheduled jobs)
 * belongs to one database. Two hubs on two databases sharing a prefix would drain each other's
 * messages into the wrong database: the second to start refuses.
 */
describe('one Redis prefix, one database', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });
  const database = async (): Promise<TestDatabase> => {
    const d = await createTestDatabase();
    cleanups.push(() => d.drop());
    return d;
  };
  const prefix = () => {
    const p = testRedisPrefix();
    cleanups.push(p.cleanup);
    return p.prefix;
  };
  const start = async (...args: Parameters<typeof startTestHub>): Promise<RunningHub> => {
    const running = await startTestHub(...args);
    cleanups.push(() => running.stop());
    return running;
  };
  const claimed = async (key: string) => {
    const redis = new Redis(TEST_REDIS_URL);
    try {
      return await redis.get(key);
    } finally {
      redis.disconnect();
    }
  };

  it('PostgreSQL: a hub on a second database refuses a prefix the first one uses, naming REDIS_PREFIX', async () => {
    const [a, b, shared] = [await database(), await database(), prefix()];
    const first = await start({ databaseUrl: a.url, redisUrl: TEST_REDIS_URL, redisPrefix: shared });
    const id = await claimed(`${shared}${DATABASE_ID_KEY}`);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const refused = startTestHub({ databaseUrl: b.url, redisUrl: TEST_REDIS_URL, redisPrefix: shared });
    await expect(refused).rejects.toThrow(ConfigError);
    await expect(
      startTestHub({ databaseUrl: b.url, redisUrl: TEST_REDIS_URL, redisPrefix: shared }),
    ).rejects.toThrow(`REDIS_URL/REDIS_PREFIX "${shared}" is already used by another database (${id};`);
    expect(await claimed(`${shared}${DATABASE_ID_KEY}`)).toBe(id);

    // More processes of the first hub (its database) share the prefix, as they must.
    const worker = await start(
      { databaseUrl: a.url, redisUrl: TEST_REDIS_URL, redisPrefix: shared },
      { role: 'worker' },
    );
    expect((await fetch(`${worker.url}/readyz`)).status).toBe(200);
    // The second database with a prefix of its own starts.
    const second = await start({ databaseUrl: b.url, redisUrl: TEST_REDIS_URL, redisPrefix: prefix() });
    expect((await fetch(`${second.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
  });

  // "Scaling out" by running `npm start` with REDIS_URL on two hosts, each with its own
  // embedded database: one queue over two databases.
  it('embedded: a second data directory refuses the prefix the first one uses', async () => {
    const shared = prefix();
    const dirs = [await tempDir('sbt-claim-a-'), await tempDir('sbt-claim-b-')];
    for (const dir of dirs) cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    const config = (dataDir: string) =>
      testConfig({ dataDir, databaseUrl: undefined, redisUrl: TEST_REDIS_URL, redisPrefix: shared });
    const first = await createHub({ config: config(dirs[0]!), logger: silentLogger });
    cleanups.push(() => first.stop());
    await first.start();
    // The claim is a step of the start (after Redis has answered), so the start refuses.
    const second = await createHub({ config: config(dirs[1]!), logger: silentLogger });
    cleanups.push(() => second.stop());
    await expect(second.start()).rejects.toThrow(
      `REDIS_URL/REDIS_PREFIX "${shared}" is already used by another database`,
    );
  });
});
