import type { SessionSnapshot } from '../store/records.ts';
import type { SessionCache } from './cache.ts';
import { cachedVersion, decodeSnapshot, type SharedSessionCache } from './redis-cache.ts';

/**
 * How long what a lane's claim read from the shared cache stands in for asking it again. The
 * claim's drainer takes the lane's first turn at once; later reads ask Redis as before.
 */
export const PRIMED_MS = 2_000;

/** A process-local cache in front of the shared one, which can be told what the shared one holds. */
export interface LayeredCache extends SessionCache {
  /**
   * What the shared cache held for a lane's session a moment ago (`cached`: its value as
   * stored, null when it held none), read by the lane's claim in the same script: the lane's
   * next `getSessionId` and `get` use it once instead of a round trip each.
   */
  prime(lane: string, sessionId: string, cached: string | null): void;
}

interface Primed<T> {
  value: T;
  at: number;
}

/** Entries kept by insertion; the stale ones at the front are dropped as new ones arrive. */
class PrimedMap<T> {
  private readonly entries = new Map<string, Primed<T>>();

  put(key: string, value: T, now: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, at: now });
    for (const [k, e] of this.entries) {
      if (now - e.at < PRIMED_MS) break;
      this.entries.delete(k);
    }
  }

  /** The entry, once, if it is fresh. */
  take(key: string): Primed<T> | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    return performance.now() - e.at < PRIMED_MS ? e : undefined;
  }

  drop(key: string): void {
    this.entries.delete(key);
  }
}

/**
 * A process-local cache in front of the shared one. A local copy is used only after the shared
 * cache confirms its version (a few bytes, not the snapshot): workers take a session's turns in
 * turn, so a copy left from this worker's last turn is often behind another worker's commit,
 * and a stale copy would cost a whole turn run for nothing before the commit's version check
 * refused it. Without a shared copy the engine reads PostgreSQL. When the lane's claim has just
 * read the shared copy (`prime`), that answer is used instead of asking again: the commit's
 * version check refuses a turn computed from a state that moved since, as it does for one
 * that moved after the check.
 */
export function createLayeredCache(local: SessionCache, shared: SharedSessionCache): LayeredCache {
  const primedSessions = new PrimedMap<string | null>();
  const primedLanes = new PrimedMap<string>();
  return {
    prime(lane, sessionId, cached) {
      const now = performance.now();
      primedLanes.put(lane, sessionId, now);
      primedSessions.put(sessionId, cached, now);
    },
    async get(sessionId, options) {
      const primed = primedSessions.take(sessionId);
      const hit = await local.get(sessionId);
      if (hit && options?.trustLocal) return hit;
      if (hit) {
        let remote: SessionSnapshot | 'current' | undefined;
        if (primed === undefined) remote = await shared.revalidate(sessionId, hit.state.version);
        else if (primed.value === null) remote = undefined;
        else if (cachedVersion(primed.value) === hit.state.version) remote = 'current';
        else remote = decodeSnapshot(primed.value);
        if (remote === 'current') return hit;
        if (remote && remote.state.version > hit.state.version) {
          await local.set(remote);
          return remote;
        }
        // The shared copy is gone or behind (its write-behind was lost): trust neither.
        await local.delete(sessionId);
        return undefined;
      }
      const remote =
        primed === undefined
          ? await shared.get(sessionId)
          : primed.value === null
            ? undefined
            : decodeSnapshot(primed.value);
      if (remote) await local.set(remote);
      return remote;
    },
    async set(snapshot, options) {
      primedSessions.drop(snapshot.session.id);
      await local.set(snapshot);
      if (options?.localOnly) return;
      // The shared copy is written behind: a lagging or lost write only makes another process's
      // next turn on this session reload from PostgreSQL (its version check fails).
      shared.set(snapshot).catch(() => shared.delete(snapshot.session.id).catch(() => undefined));
    },
    async delete(sessionId) {
      primedSessions.drop(sessionId);
      await local.delete(sessionId);
      await shared.delete(sessionId);
    },
    async getSessionId(lane) {
      const primed = primedLanes.take(lane);
      const hit = await local.getSessionId(lane);
      if (hit) return hit;
      const remote = primed ? primed.value : await shared.getSessionId(lane);
      if (remote) await local.setSessionId(lane, remote);
      return remote;
    },
    async setSessionId(lane, sessionId) {
      primedLanes.drop(lane);
      await local.setSessionId(lane, sessionId);
      await shared.setSessionId(lane, sessionId);
    },
    async deleteSessionId(lane) {
      primedLanes.drop(lane);
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
