import type { Redis } from 'ioredis';
import { defineLuaCommands, type LuaCommand, readLua } from '../redis-scripts.ts';
import type { RedisWrites } from '../redis-writes.ts';
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
  /** `writes`: this process's batched writes (`RedisWrites`), which the cache's writes then join. */
  options: { prefix: string; ttlSeconds: number; writes?: RedisWrites },
): SharedSessionCache {
  defineLuaCommands(redis, CACHE_COMMANDS);
  const r = redis as Redis & CacheCommands;
  const snapshotKey = (id: string) => `${options.prefix}${id}:snapshot`;
  const laneKey = (lane: string) => `${options.prefix}lane:${lane}`;
  const { writes } = options;
  const write = async (key: string, value: string) => {
    if (writes) await writes.set(key, value, options.ttlSeconds);
    else await redis.set(key, value, 'EX', options.ttlSeconds);
  };
  const remove = async (key: string) => {
    if (writes) await writes.del(key);
    else await redis.del(key);
  };
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
    set: (snapshot) => write(snapshotKey(snapshot.session.id), encode(snapshot)),
    delete: (sessionId) => remove(snapshotKey(sessionId)),
    async getSessionId(lane) {
      return (await redis.get(laneKey(lane))) ?? undefined;
    },
    setSessionId: (lane, sessionId) => write(laneKey(lane), sessionId),
    deleteSessionId: (lane) => remove(laneKey(lane)),
    async ping() {
      await redis.ping();
    },
    async close() {},
  };
}
