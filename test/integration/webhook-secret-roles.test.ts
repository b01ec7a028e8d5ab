import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/env.ts';
import { createHub } from '../../src/hub.ts';
import { createTestDatabase, silentLogger, type TestDatabase, tempDir } from '../helpers/database.ts';
import { testConfig } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';

/** Set by no one: the endpoint below can never be signed. */
const UNSET = 'SBT_WEBHOOK_SECRET_NOBODY_SETS';

/**
 * A webhook endpoint whose secret variable is unset: the roles that sign and send the events
 * (all, worker) refuse to start, naming the bot, URL and variable; a gateway, which only records
 * the events, starts.
 */
describe('a webhook endpoint whose secret variable is not set', () => {
  let configDir: string;
  let database: TestDatabase;
  const redis = testRedisPrefix();

  beforeAll(async () => {
    delete process.env[UNSET];
    configDir = await tempDir('sbt-webhook-secret-');
    await fs.mkdir(path.join(configDir, 'bots/hooks'), { recursive: true });
    await fs.writeFile(
      path.join(configDir, 'bots/hooks/bot.json'),
      JSON.stringify({
        webhooks: [{ url: 'https://crm.example.com/in', secretEnv: UNSET, events: ['session.started'] }],
      }),
    );
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
    await redis.cleanup();
    await fs.rm(configDir, { recursive: true, force: true });
  });

  const config = () =>
    testConfig({ configDir, databaseUrl: database.url, redisUrl: TEST_REDIS_URL, redisPrefix: redis.prefix });

  it.each(['all', 'worker'] as const)('role %s refuses to start', async (role) => {
    const err = await createHub({ config: config(), role, logger: silentLogger }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      `bot "hooks": webhooks.0.secretEnv names ${UNSET}, which is not set: the events for https://crm.example.com/in could not be signed, so none would be delivered`,
    );
  });

  it('a gateway starts', async () => {
    const hub = await createHub({ config: config(), role: 'gateway', logger: silentLogger });
    await hub.stop();
  });
});
