import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_FAILURES_PER_MINUTE, requireAdmin } from '../../src/http/admin-auth.ts';
import { createApp } from '../../src/http/app.ts';
import { createMemoryRateLimiter } from '../../src/limits/memory-rate-limiter.ts';
import type { RateLimiter } from '../../src/limits/rate-limiter.ts';
import { createRedisRateLimiter } from '../../src/limits/redis-rate-limiter.ts';
import { silentLogger } from '../helpers/database.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-throttle-race-0123456789';

/** An operator route behind `requireAdmin`, answered in the process (no socket: one client address). */
function guarded(rateLimiter: RateLimiter) {
  const app = createApp({ logger: silentLogger, maxBodyBytes: 1024 });
  app.use('/api/admin/*', requireAdmin({ adminToken: ADMIN_TOKEN, rateLimiter, trustProxy: 0 }));
  app.get('/api/admin/ping', (c) => c.json({ ok: true }));
  return async (token: string): Promise<number> =>
    (await app.request('/api/admin/ping', { headers: { authorization: `Bearer ${token}` } })).status;
}

describe('operator token guesses sent at once', () => {
  let redis: Redis;
  const { prefix, cleanup } = testRedisPrefix();
  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL);
  });
  afterAll(async () => {
    await cleanup();
    redis?.disconnect();
  });

  it.each([
    ['Redis', () => createRedisRateLimiter(redis, { prefix })],
    ['in-process', () => createMemoryRateLimiter()],
  ])(
    `(%s limiter) the right token sent with many wrong ones is refused once ${ADMIN_FAILURES_PER_MINUTE} wrong ones were counted`,
    async (_name, limiter) => {
      const ask = guarded(limiter());
      const guesses = Array.from({ length: 39 }, (_, i) => `wrong-guess-${i}`);
      // The right one last: every wrong one was sent before it.
      const statuses = await Promise.all([...guesses, ADMIN_TOKEN].map(ask));
      expect(statuses.filter((s) => s === 401)).toHaveLength(ADMIN_FAILURES_PER_MINUTE);
      expect(statuses.filter((s) => s !== 401 && s !== 429)).toEqual([]);
      // Then, as one by one: still locked out, the right token included.
      expect(await ask(ADMIN_TOKEN)).toBe(429);
    },
  );

  it('(Redis limiter) lets the right token through before the limit, and counts it as no failure', async () => {
    const ask = guarded(createRedisRateLimiter(redis, { prefix: `${prefix}b:` }));
    for (let i = 0; i < 3 * ADMIN_FAILURES_PER_MINUTE; i++) expect(await ask(ADMIN_TOKEN)).toBe(200);
    const statuses = await Promise.all(
      Array.from({ length: ADMIN_FAILURES_PER_MINUTE + 5 }, (_, i) => ask(`wrong-${i}`)),
    );
    expect(statuses.filter((s) => s === 401)).toHaveLength(ADMIN_FAILURES_PER_MINUTE);
  });
});
