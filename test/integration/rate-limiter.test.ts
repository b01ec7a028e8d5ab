import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryRateLimiter } from '../../src/limits/memory-rate-limiter.ts';
import type { RateLimiter } from '../../src/limits/rate-limiter.ts';
import { createRedisRateLimiter } from '../../src/limits/redis-rate-limiter.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';

const redisPrefix = testRedisPrefix();
const connections: Redis[] = [];
const connect = () => {
  const redis = new Redis(TEST_REDIS_URL);
  connections.push(redis);
  return redis;
};

afterAll(async () => {
  await redisPrefix.cleanup();
  for (const c of connections) c.disconnect();
});

/** The same contract for both implementations, on real time. */
describe.each([
  ['redis', () => createRedisRateLimiter(connect(), { prefix: redisPrefix.prefix })],
  ['in-process', () => createMemoryRateLimiter()],
])('%s rate limiter', (_name, make) => {
  let limiter: RateLimiter;
  beforeAll(() => {
    limiter = make();
  });
  const key = (k: string) => `${_name}:${k}:${Math.random()}`;

  it('allows the limit, refuses the next with a wait no longer than the window, then allows again', async () => {
    const k = key('a');
    const first = await limiter.hit(k, 2, 400);
    const second = await limiter.hit(k, 2, 400);
    expect([first.allowed, first.remaining, second.allowed, second.remaining]).toEqual([true, 1, true, 0]);
    const refused = await limiter.hit(k, 2, 400);
    expect(refused.allowed).toBe(false);
    expect(refused.remaining).toBe(0);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(400);
    await until(async () => (await limiter.hit(k, 2, 400)).allowed, Boolean, 5_000, 20);
  });

  it('counts many concurrent hits exactly', async () => {
    const k = key('burst');
    const decisions = await Promise.all(Array.from({ length: 50 }, () => limiter.hit(k, 20, 60_000)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(20);
    expect(
      decisions
        .filter((d) => d.allowed)
        .map((d) => d.remaining)
        .sort((x, y) => x - y),
    ).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('peeks at a key without counting: open until the limit is used, then closed as long as a hit would be', async () => {
    const k = key('peek');
    expect(await limiter.peek(k, 2, 60_000)).toEqual({ allowed: true, retryAfterMs: 0, remaining: 2 });
    await limiter.hit(k, 2, 60_000);
    expect(await limiter.peek(k, 2, 60_000)).toMatchObject({ allowed: true, remaining: 1 });
    expect(await limiter.peek(k, 2, 60_000)).toMatchObject({ allowed: true, remaining: 1 });
    await limiter.hit(k, 2, 60_000);
    const closed = await limiter.peek(k, 2, 60_000);
    expect(closed.allowed).toBe(false);
    expect(closed.retryAfterMs).toBeGreaterThan(0);
    expect(closed.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect((await limiter.hit(k, 2, 60_000)).allowed).toBe(false);
  });

  it('counts a named hit once: the same message redelivered is allowed again without using the limit', async () => {
    const k = key('named');
    expect((await limiter.hit(k, 2, 60_000, 'wamid.1')).allowed).toBe(true);
    // A platform redelivering the same message, twice.
    expect(await limiter.hit(k, 2, 60_000, 'wamid.1')).toMatchObject({ allowed: true, remaining: 1 });
    expect((await limiter.hit(k, 2, 60_000, 'wamid.1')).allowed).toBe(true);
    expect((await limiter.hit(k, 2, 60_000, 'wamid.2')).allowed).toBe(true);
    const third = await limiter.hit(k, 2, 60_000, 'wamid.3');
    expect(third.allowed).toBe(false);
    // Still refused when it comes again: a refused hit was never counted, so it is not "seen".
    expect((await limiter.hit(k, 2, 60_000, 'wamid.3')).allowed).toBe(false);
    expect((await limiter.hit(k, 2, 60_000, 'wamid.2')).allowed).toBe(true);
  });
});

describe('redis rate limiter across processes', () => {
  it('is one limit for every limiter on the same Redis and prefix (two gateways)', async () => {
    const a = createRedisRateLimiter(connect(), { prefix: redisPrefix.prefix });
    const b = createRedisRateLimiter(connect(), { prefix: redisPrefix.prefix });
    const decisions = [];
    for (let i = 0; i < 6; i++) decisions.push(await (i % 2 ? a : b).hit('shared', 5, 60_000));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, true, true, false]);
  });

  it('keeps its keys under the prefix, expiring with the window', async () => {
    const redis = connect();
    const limiter = createRedisRateLimiter(redis, { prefix: redisPrefix.prefix });
    await limiter.hit('session:x', 3, 30_000);
    const ttl = await redis.pttl(`${redisPrefix.prefix}rl:session:x`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(30_000);
  });
});
