import { LRUCache } from 'lru-cache';
import type { SessionSnapshot } from '../store/records.ts';
import type { SessionCache } from './cache.ts';

/**
 * The embedded cache: an LRU in this process. It holds the snapshot objects themselves (no copy):
 * snapshots are treated as immutable — the engine copies state before changing it and builds a
 * new snapshot for each committed turn.
 */
export function createMemoryCache(options: { maxSessions: number; ttlSeconds: number }): SessionCache {
  const snapshots = new LRUCache<string, SessionSnapshot>({
    max: options.maxSessions,
    ttl: options.ttlSeconds * 1000,
  });
  const keys = new LRUCache<string, string>({ max: options.maxSessions, ttl: options.ttlSeconds * 1000 });
  return {
    async get(sessionId) {
      return snapshots.get(sessionId);
    },
    async set(snapshot) {
      snapshots.set(snapshot.session.id, snapshot);
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
