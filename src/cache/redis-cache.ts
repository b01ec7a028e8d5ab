import type { Redis } from 'ioredis';
import type { SessionSnapshot } from '../store/records.ts';
import type { SessionCache } from './cache.ts';

/**
 * Session cache in Redis. Keys start with the session id (after the hub's prefix):
 * `<prefix><sessionId>:snapshot`, so one session's keys can be listed and erased together.
 */
export function createRedisCache(
  redis: Redis,
  options: { prefix: string; ttlSeconds: number },
): SessionCache {
  const snapshotKey = (id: string) => `${options.prefix}${id}:snapshot`;
  const laneKey = (lane: string) => `${options.prefix}lane:${lane}`;
  return {
    async get(sessionId) {
      const hit = await redis.get(snapshotKey(sessionId));
      return hit === null ? undefined : (JSON.parse(hit) as SessionSnapshot);
    },
    async set(snapshot) {
      await redis.set(snapshotKey(snapshot.session.id), JSON.stringify(snapshot), 'EX', options.ttlSeconds);
    },
    async delete(sessionId) {
      await redis.del(snapshotKey(sessionId));
    },
    async getSessionId(lane) {
      return (await redis.get(laneKey(lane))) ?? undefined;
    },
    async setSessionId(lane, sessionId) {
      await redis.set(laneKey(lane), sessionId, 'EX', options.ttlSeconds);
    },
    async deleteSessionId(lane) {
      await redis.del(laneKey(lane));
    },
    async ping() {
      await redis.ping();
    },
    async close() {},
  };
}
