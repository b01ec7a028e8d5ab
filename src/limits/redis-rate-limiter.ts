import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { defineLuaCommands, type LuaCommand, readLua } from '../redis-scripts.ts';
import { checkLimitArguments, type RateLimiter } from './rate-limiter.ts';

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

/** The window's scripts, in `redis-rate-limiter/*.lua`: one atomic step per hit, and a read-only peek. */
export const RATE_LIMIT_COMMANDS: readonly LuaCommand[] = [
  { name: COMMAND, numberOfKeys: 1, lua: readLua(import.meta.url, './redis-rate-limiter/hit.lua') },
  { name: PEEK_COMMAND, numberOfKeys: 1, lua: readLua(import.meta.url, './redis-rate-limiter/peek.lua') },
];

/** The Redis key of a limit's window (a sorted set of the allowed hits' times). */
export const rateWindowKey = (prefix: string, key: string) => `${prefix}rl:${key}`;
/** A named hit's member in its window. */
export const namedHitMember = (hitId: string) => `id:${hitId}`;

/** The Redis limiter: one limit shared by every process that uses the same Redis and prefix. */
export function createRedisRateLimiter(redis: Redis, options: { prefix: string }): RateLimiter {
  defineLuaCommands(redis, RATE_LIMIT_COMMANDS);
  const command = (redis as unknown as Record<string, ScriptCall>)[COMMAND]!.bind(redis);
  const peek = (redis as unknown as Record<string, PeekCall>)[PEEK_COMMAND]!.bind(redis);
  const redisKey = (key: string) => rateWindowKey(options.prefix, key);
  return {
    async hit(key, limit, windowMs, hitId) {
      checkLimitArguments(key, limit, windowMs);
      // Without an id, two hits in the same millisecond are still two members of the set.
      const member = hitId ? namedHitMember(hitId) : randomBytes(8).toString('base64url');
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
