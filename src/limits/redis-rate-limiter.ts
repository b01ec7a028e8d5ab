import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { checkLimitArguments, type RateLimiter } from './rate-limiter.ts';

/**
 * One atomic step per hit: drop the hits older than the window, count the rest, and record this
 * hit only when it fits. The clock is Redis's own (TIME), so gateways with skewed clocks agree.
 * A sorted set per key holds the allowed hits' times (score, ms) and expires with its window;
 * a named hit (ARGV[4] = 1) already in it is allowed again without being counted twice.
 * Returns {allowed (0/1), retryAfterMs, remaining}.
 */
const SLIDING_WINDOW_SCRIPT = `
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if ARGV[4] == '1' and redis.call('ZSCORE', key, ARGV[3]) then return {1, 0, limit - count} end
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
  return {1, 0, limit - count - 1}
end
local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now, 0}
`;

/** The same window read without recording anything: {allowed (0/1), retryAfterMs, remaining}. */
const PEEK_SCRIPT = `
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count = redis.call('ZCOUNT', key, '(' .. (now - window), '+inf')
if count < limit then return {1, 0, limit - count} end
local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. (now - window), '+inf', 'WITHSCORES', 'LIMIT', count - limit, 1)
return {0, tonumber(oldest[2]) + window - now, 0}
`;

const COMMAND = 'switchboardRateHit';
const PEEK_COMMAND = 'switchboardRatePeek';
type ScriptCall = (
  key: string,
  limit: number,
  windowMs: number,
  member: string,
  named: number,
) => Promise<[number, number, number]>;

type PeekCall = (key: string, limit: number, windowMs: number) => Promise<[number, number, number]>;

/** The Redis limiter: one limit shared by every process that uses the same Redis and prefix. */
export function createRedisRateLimiter(redis: Redis, options: { prefix: string }): RateLimiter {
  // defineCommand runs the script by its SHA (EVALSHA), loading it again after a Redis restart.
  if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: SLIDING_WINDOW_SCRIPT });
  const command = (redis as unknown as Record<string, ScriptCall>)[COMMAND]!.bind(redis);
  if (!(PEEK_COMMAND in redis)) redis.defineCommand(PEEK_COMMAND, { numberOfKeys: 1, lua: PEEK_SCRIPT });
  const peek = (redis as unknown as Record<string, PeekCall>)[PEEK_COMMAND]!.bind(redis);
  const redisKey = (key: string) => `${options.prefix}rl:${key}`;
  return {
    async hit(key, limit, windowMs, hitId) {
      checkLimitArguments(key, limit, windowMs);
      // Without an id, two hits in the same millisecond are still two members of the set.
      const member = hitId ? `id:${hitId}` : randomBytes(8).toString('base64url');
      const [allowed, retryAfterMs, remaining] = await command(
        redisKey(key),
        limit,
        windowMs,
        member,
        hitId ? 1 : 0,
      );
      return { allowed: allowed === 1, retryAfterMs: Math.max(0, retryAfterMs), remaining };
    },
    async peek(key, limit, windowMs) {
      checkLimitArguments(key, limit, windowMs);
      const [allowed, retryAfterMs, remaining] = await peek(redisKey(key), limit, windowMs);
      return { allowed: allowed === 1, retryAfterMs: Math.max(0, retryAfterMs), remaining };
    },
    async forget(key) {
      await redis.del(redisKey(key));
    },
  };
}
