import type { Redis } from 'ioredis';
import { defineLuaCommands, type LuaCommand, readLua } from '../redis-scripts.ts';
import type { SessionSnapshot } from '../store/records.ts';
import type { SessionCache } from './cache.ts';

/** A shared cache that can tell whether a copy of a snapshot is still current, without sending it. */
export interface SharedSessionCache extends SessionCache {
  /** `'current'` when the shared snapshot is at `version`, else the shared snapshot (undefined when none). */
  revalidate(sessionId: string, version: number): Promise<SessionSnapshot | 'current' | undefined>;
}

/** Digits of a state version, read ahead of the snapshot to compare versions without the body. */
const VERSION_HEAD_BYTES = 24;

/** `redis-cache/revalidate.lua`: compares versions reading the head of the snapshot only. */
export const CACHE_COMMANDS: readonly LuaCommand[] = [
  {
    name: 'sessionRevalidate',
    numberOfKeys: 1,
    lua: readLua(import.meta.url, './redis-cache/revalidate.lua'),
  },
];

interface CacheCommands {
  sessionRevalidate(key: string, version: number, headBytes: number): Promise<string | number | null>;
}

/** Stored as `<state version>|<snapshot JSON>`, so a version check reads a few bytes. */
const encode = (snapshot: SessionSnapshot) => `${snapshot.state.version}|${JSON.stringify(snapshot)}`;

/** A cached value (as stored) as the snapshot it holds. */
export function decodeSnapshot(raw: string): SessionSnapshot {
  // A value written before versions led the value is bare JSON.
  return JSON.parse(raw.startsWith('{') ? raw : raw.slice(raw.indexOf('|') + 1)) as SessionSnapshot;
}

/** The state version a cached value leads with, without parsing it; undefined for bare JSON. */
export function cachedVersion(raw: string): number | undefined {
  const bar = raw.indexOf('|');
  return raw.startsWith('{') || bar < 0 ? undefined : Number(raw.slice(0, bar));
}
const decode = decodeSnapshot;

/**
 * Session cache in Redis. Keys start with the session id (after the hub's prefix):
 * `<prefix><sessionId>:snapshot`, so one session's keys can be listed and erased together; a
 * lane's open session id is `<prefix>lane:<lane>`. (The inbound queue's claim script reads both
 * by these names: `src/queue/redis-lanes/claim.lua`.)
 */
export function createRedisCache(
  redis: Redis,
  options: { prefix: string; ttlSeconds: number },
): SharedSessionCache {
  defineLuaCommands(redis, CACHE_COMMANDS);
  const r = redis as Redis & CacheCommands;
  const snapshotKey = (id: string) => `${options.prefix}${id}:snapshot`;
  const laneKey = (lane: string) => `${options.prefix}lane:${lane}`;
  return {
    async get(sessionId) {
      const hit = await redis.get(snapshotKey(sessionId));
      return hit === null ? undefined : decode(hit);
    },
    async revalidate(sessionId, version) {
      const answer = await r.sessionRevalidate(snapshotKey(sessionId), version, VERSION_HEAD_BYTES);
      if (answer === null) return undefined;
      return typeof answer === 'number' ? 'current' : decode(answer);
    },
    async set(snapshot) {
      await redis.set(snapshotKey(snapshot.session.id), encode(snapshot), 'EX', options.ttlSeconds);
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
