import { LRUCache } from 'lru-cache';
import type { SessionSnapshot } from '../store/records.ts';
import type { SessionCache } from './cache.ts';

/** The embedded cache: an LRU in this process. Values are cloned so callers never share objects. */
export function createMemoryCache(options: { maxSessions: number; ttlSeconds: number }): SessionCache {
  const snapshots = new LRUCache<string, string>({
    max: options.maxSessions,
    ttl: options.ttlSeconds * 1000,
  });
  const keys = new LRUCache<string, string>({ max: options.maxSessions, ttl: options.ttlSeconds * 1000 });
  return {
    async get(sessionId) {
      const hit = snapshots.get(sessionId);
      return hit === undefined ? undefined : (JSON.parse(hit) as SessionSnapshot);
    },
    async set(snapshot) {
      snapshots.set(snapshot.session.id, JSON.stringify(snapshot));
    },
    async delete(sessionId) {
      snapshots.delete(sessionId);
    },
    async getSessionId(lane) {
      return keys.get(lane);
    },
    async setSessionId(lane, sessionId) {
      keys.set(lane, sessionId);
    },
    async deleteSessionId(lane) {
      keys.delete(lane);
    },
    async ping() {},
    async close() {
      snapshots.clear();
      keys.clear();
    },
  };
}
