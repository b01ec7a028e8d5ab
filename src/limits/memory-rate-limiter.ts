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
  const hits = new LRUCache<string, { at: number; id?: string | undefined }[]>({
    max: options.maxKeys ?? DEFAULT_MAX_KEYS,
  });
  return {
    async hit(key, limit, windowMs, hitId) {
      checkLimitArguments(key, limit, windowMs);
      const at = now();
      // Same boundary as the Redis script: a hit exactly one window old no longer counts.
      const recent = (hits.get(key) ?? []).filter((h) => h.at > at - windowMs);
      if (hitId !== undefined && recent.some((h) => h.id === hitId)) {
        hits.set(key, recent, { ttl: windowMs });
        return { allowed: true, retryAfterMs: 0, remaining: Math.max(0, limit - recent.length) };
      }
      if (recent.length >= limit) {
        hits.set(key, recent, { ttl: windowMs });
        return {
          allowed: false,
          retryAfterMs: recent[recent.length - limit]!.at + windowMs - at,
          remaining: 0,
        };
      }
      recent.push({ at, id: hitId });
      hits.set(key, recent, { ttl: windowMs });
      return { allowed: true, retryAfterMs: 0, remaining: limit - recent.length };
    },
    async peek(key, limit, windowMs) {
      checkLimitArguments(key, limit, windowMs);
      const at = now();
      const recent = (hits.peek(key) ?? []).filter((h) => h.at > at - windowMs);
      if (recent.length < limit) return { allowed: true, retryAfterMs: 0, remaining: limit - recent.length };
      return {
        allowed: false,
        retryAfterMs: recent[recent.length - limit]!.at + windowMs - at,
        remaining: 0,
      };
    },
    async forget(key) {
      hits.delete(key);
    },
  };
}
