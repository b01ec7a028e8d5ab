import type { SessionCache } from './cache.ts';
import type { SharedSessionCache } from './redis-cache.ts';

/**
 * A process-local cache in front of the shared one. A local copy is used only after the shared
 * cache confirms its version (a few bytes, not the snapshot): workers take a session's turns in
 * turn, so a copy left from this worker's last turn is often behind another worker's commit,
 * and a stale copy would cost a whole turn run for nothing before the commit's version check
 * refused it. Without a shared copy the engine reads PostgreSQL.
 */
export function createLayeredCache(local: SessionCache, shared: SharedSessionCache): SessionCache {
  return {
    async get(sessionId, options) {
      const hit = await local.get(sessionId);
      if (hit && options?.trustLocal) return hit;
      if (hit) {
        const remote = await shared.revalidate(sessionId, hit.state.version);
        if (remote === 'current') return hit;
        if (remote && remote.state.version > hit.state.version) {
          await local.set(remote);
          return remote;
        }
        // The shared copy is gone or behind (its write-behind was lost): trust neither.
        await local.delete(sessionId);
        return undefined;
      }
      const remote = await shared.get(sessionId);
      if (remote) await local.set(remote);
      return remote;
    },
    async set(snapshot, options) {
      await local.set(snapshot);
      if (options?.localOnly) return;
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
