import type { SessionCache } from './cache.ts';

/**
 * A process-local cache in front of the shared one. A worker draining a session finds its state
 * in memory; if another process moved the session meanwhile, the commit's version check
 * catches the stale copy, the engine drops it here and there, and reloads.
 */
export function createLayeredCache(local: SessionCache, shared: SessionCache): SessionCache {
  return {
    async get(sessionId) {
      const hit = await local.get(sessionId);
      if (hit) return hit;
      const remote = await shared.get(sessionId);
      if (remote) await local.set(remote);
      return remote;
    },
    async set(snapshot) {
      await local.set(snapshot);
      // The shared copy is written behind: a lagging or lost write only makes another process's
      // next turn on this session reload from PostgreSQL (its version check fails).
      shared.set(snapshot).catch(() => shared.delete(snapshot.session.id).catch(() => undefined));
    },
    async delete(sessionId) {
      await local.delete(sessionId);
      await shared.delete(sessionId);
    },
    async getSessionId(lane) {
      const hit = await local.getSessionId(lane);
      if (hit) return hit;
      const remote = await shared.getSessionId(lane);
      if (remote) await local.setSessionId(lane, remote);
      return remote;
    },
    async setSessionId(lane, sessionId) {
      await local.setSessionId(lane, sessionId);
      await shared.setSessionId(lane, sessionId);
    },
    async deleteSessionId(lane) {
      await local.deleteSessionId(lane);
      await shared.deleteSessionId(lane);
    },
    ping: () => shared.ping(),
    async close() {
      await local.close();
      await shared.close();
    },
  };
}
