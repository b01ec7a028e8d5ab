import type { Redis } from 'ioredis';
import { ConfigError } from '../config/env.ts';
import { isTransient } from '../errors.ts';

/** The key, under REDIS_PREFIX, that names the database whose hub uses the prefix. */
export const DATABASE_ID_KEY = 'hub:database_id';
/** How long a start waits for Redis to answer the claim before it gives up. */
export const REDIS_CLAIM_WAIT_MS = 30_000;
const CLAIM_RETRY_MS = 500;

/**
 * Claims REDIS_PREFIX for this hub's database, or refuses to start. Every key under the prefix
 * (the queues' lanes, the cache, the bus, the rate limits, the scheduled jobs) belongs to one
 * database: a second hub on another database with the same prefix (staging and production on
 * one Redis with the default `sb:`; two embedded hubs with REDIS_URL, each with a database of its
 * own) would drain the first one's messages into its own database. The first start stores the
 * database's id under the prefix (`SET NX`, kept for good); a start on another database finds
 * another id there and refuses, naming REDIS_PREFIX. Redis away: tried again, up to
 * REDIS_CLAIM_WAIT_MS.
 */
export async function claimRedisPrefix(options: {
  redis: Redis;
  prefix: string;
  databaseId: string;
  waitMs?: number;
}): Promise<void> {
  const { redis, prefix, databaseId, waitMs = REDIS_CLAIM_WAIT_MS } = options;
  const key = `${prefix}${DATABASE_ID_KEY}`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    let owner: string | null;
    try {
      await redis.set(key, databaseId, 'NX');
      owner = await redis.get(key);
    } catch (err) {
      if (!isTransient(err)) throw err;
      if (Date.now() >= deadline)
        throw new Error(
          `Redis (REDIS_URL) did not answer within ${waitMs / 1000} s: ${(err as Error).message}`,
        );
      await new Promise((resolve) => setTimeout(resolve, CLAIM_RETRY_MS));
      continue;
    }
    if (owner === databaseId) return;
    throw new ConfigError(
      `REDIS_URL/REDIS_PREFIX "${prefix}" is already used by another database (${owner}; this one is ` +
        `${databaseId}): its queues, cache and scheduled jobs belong to that hub. Give this hub its ` +
        `own REDIS_PREFIX (or, if that database is gone for good and nothing it left in Redis is ` +
        `wanted, delete the key ${key})`,
    );
  }
}
