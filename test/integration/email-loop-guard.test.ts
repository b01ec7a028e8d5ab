import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { LoopGuard, type LoopLimits, normalizedText } from '../../adapters/email/loop-guard.ts';
import { createMemoryRateLimiter } from '../../src/limits/memory-rate-limiter.ts';
import type { RateLimiter } from '../../src/limits/rate-limiter.ts';
import { createRedisRateLimiter } from '../../src/limits/redis-rate-limiter.ts';
import { createMetrics } from '../../src/metrics.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';

const redisPrefix = testRedisPrefix();
const connections: Redis[] = [];
/** A limiter on a Redis connection of its own, as another gateway process has. */
const gateway = (): RateLimiter => {
  const redis = new Redis(TEST_REDIS_URL);
  connections.push(redis);
  return createRedisRateLimiter(redis, { prefix: redisPrefix.prefix });
};

afterAll(async () => {
  await redisPrefix.cleanup();
  for (const c of connections) c.disconnect();
});

const LIMITS: LoopLimits = { maxReplies: 3, maxRepeats: 2, windowMs: 60 * 60_000 };
const about = (n: number) => ({ envelopeId: `email:m${n}`, mailbox: 'INBOX', bot: 'default' });
/** A different text every time, long enough to be compared. */
const text = (n: number) => `A different question every time, this one about ${'abcdefghij'[n]}.`;

function guards(limiters: RateLimiter[]) {
  const logs = capturingLogger('warn');
  const metrics = createMetrics();
  return {
    logs,
    metrics,
    guards: limiters.map(
      (limiter) => new LoopGuard({ limiter, logger: logs.logger, metrics, limits: LIMITS }),
    ),
  };
}

describe('the email loop guard', () => {
  it('counts one address across gateway processes sharing Redis, and logs once a window', async () => {
    const {
      guards: [a, b],
      logs,
    } = guards([gateway(), gateway()]);
    const who = 'loop-across@example.org';
    const verdicts = [];
    // The mails of one responder, read by two gateways in turn.
    for (let n = 1; n <= 5; n++) verdicts.push(await (n % 2 ? a! : b!).check(who, text(n), about(n)));
    expect(verdicts).toEqual([undefined, undefined, undefined, 'loop-replies', 'loop-replies']);
    expect(logs.lines.filter((l) => l.event === 'email.loop_suspected')).toEqual([
      expect.objectContaining({
        envelopeId: 'email:m4',
        reason: 'loop-replies',
        limit: 3,
        windowMinutes: 60,
      }),
    ]);
    // Another address has a budget of its own; the address is compared in lower case.
    expect(await b!.check('someone-else@example.org', text(6), about(6))).toBeUndefined();
    expect(await a!.check('LOOP-ACROSS@example.org', text(7), about(7))).toBe('loop-replies');
  });

  it('does not count the same mail twice (a retry after a failure)', async () => {
    const {
      guards: [a, b],
    } = guards([gateway(), gateway()]);
    const who = 'retried@example.org';
    for (let i = 0; i < 4; i++) expect(await (i % 2 ? a! : b!).check(who, text(1), about(1))).toBeUndefined();
    expect(await a!.check(who, text(2), about(2))).toBeUndefined();
    expect(await a!.check(who, text(3), about(3))).toBeUndefined();
    expect(await a!.check(who, text(4), about(4))).toBe('loop-replies');
  });

  it('holds back the same text sooner; short texts ("yes", a menu choice) are not compared', async () => {
    const {
      guards: [a],
      metrics,
    } = guards([createMemoryRateLimiter()]);
    const notice = (n: number) => `I am away until the ${n}th and will read your mail when I am back.`;
    expect(normalizedText(notice(3))).toBe(normalizedText(notice(14)));
    expect(await a!.check('away@example.org', notice(3), about(1))).toBeUndefined();
    expect(await a!.check('away@example.org', notice(4), about(2))).toBeUndefined();
    expect(await a!.check('away@example.org', notice(5), about(3))).toBe('loop-repeated');
    const short = createMemoryRateLimiter();
    const [p] = guards([short]).guards;
    expect(await p!.check('person@example.org', 'yes', about(1))).toBeUndefined();
    expect(await p!.check('person@example.org', 'yes', about(2))).toBeUndefined();
    expect(await p!.check('person@example.org', 'Yes', about(3))).toBeUndefined();
    const counted = (await metrics.registry.getSingleMetric('switchboard_email_loop_suspected_total')!.get())
      .values;
    expect(counted).toEqual([expect.objectContaining({ labels: { reason: 'loop-repeated' }, value: 1 })]);
  });

  it('answers when the limiter fails (Redis away), with a warning', async () => {
    const failing: RateLimiter = {
      hit: () => Promise.reject(new Error('redis away')),
      peek: () => Promise.reject(new Error('redis away')),
      forget: () => Promise.resolve(),
    };
    const {
      guards: [a],
      logs,
    } = guards([failing]);
    expect(await a!.check('x@example.org', text(1), about(1))).toBeUndefined();
    expect(logs.lines).toEqual([
      expect.objectContaining({ event: 'email.loop_check_failed', envelopeId: 'email:m1' }),
    ]);
  });
});
