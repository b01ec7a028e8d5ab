import { LRUCache } from 'lru-cache';
import { checkLimitArguments, type RateLimiter } from './rate-limiter.ts';

/** Keys tracked at once; the least recently hit are forgotten first (they are the least likely to be limited). */
export const DEFAULT_MAX_KEYS = 100_000;

/**
 * The embedded rate limiter: for each key, the times of the hits allowed in the last window.
 * One process only; a hub with Redis uses the Redis limiter so that a limit holds across gateways.
 */
export function createMemoryRateLimiter(options: { maxKeys?: number; now?: () => number } = {}): RateLimiter {
  const now = options.now ?? Date.now;
  const hits = new LRUCache<string, number[]>({ max: options.maxKeys ?? DEFAULT_MAX_KEYS });
  return {
    async hit(key, limit, windowMs) {
      checkLimitArguments(key, limit, windowMs);
      const at = now();
      // Same boundary as the Redis script: a hit exactly one window old no longer counts.
      const times = (hits.get(key) ?? []).filter((t) => t > at - windowMs);
      if (times.length >= limit) {
        hits.set(key, times, { ttl: windowMs });
        return { allowed: false, retryAfterMs: times[times.length - limit]! + windowMs - at, remaining: 0 };
      }
      times.push(at);
      hits.set(key, times, { ttl: windowMs });
      return { allowed: true, retryAfterMs: 0, remaining: limit - times.length };
    },
    async forget(key) {
      hits.delete(key);
    },
  };
}
