import type { Backend, BackendDeps } from './backend.ts';
import { createRedisBus } from './bus/redis-bus.ts';
import { createLayeredCache } from './cache/layered-cache.ts';
import { createMemoryCache } from './cache/memory-cache.ts';
import { createRedisCache } from './cache/redis-cache.ts';
import type { HubConfig } from './config/env.ts';
import { createRedisOutbox, OUTBOUND_QUEUE } from './delivery/redis-outbox.ts';
import { createRedisRateLimiter } from './limits/redis-rate-limiter.ts';
import type { QueueRepair } from './queue/lane-runner.ts';
import { createRedisLaneQueue, INBOUND_QUEUE } from './queue/redis-lane-queue.ts';
import { connectRedis } from './redis.ts';
import { RedisWrites } from './redis-writes.ts';
import { createBullmqScheduler } from './scheduler/bullmq-scheduler.ts';

/** Process-local copies of shared cache entries live this long (a stale one only costs a retry). */
const LOCAL_CACHE_TTL_SECONDS = 60;

/**
 * The hub's moving parts on Redis (`REDIS_URL`). A module of its own, imported only when Redis is
 * configured: ioredis and BullMQ are tens of megabytes an embedded hub never needs.
 */
export function redisBackend(
  redisUrl: string,
  config: HubConfig,
  { db, logger, metrics }: BackendDeps,
): Backend {
  const repairsOf = (queue: string) => (repair: QueueRepair, lanes: number) =>
    metrics?.queueRepairs.inc({ queue, repair }, lanes);
  // Commands issued in the same tick (a group commit's acknowledgements, cache writes and
  // notices) share one round trip.
  const redis = connectRedis(redisUrl, logger, 'switchboard', { enableAutoPipelining: true });
  const subscriber = connectRedis(redisUrl, logger, 'switchboard-sub', { maxRetriesPerRequest: null });
  // BullMQ's producers get a connection of their own: BullMQ defines dozens of scripts on a
  // connection, and an auto-pipelining connection copies every one of them into each batch.
  const bullRedis = connectRedis(redisUrl, logger, 'switchboard-queue');
  const prefix = config.redisPrefix;
  const common = { redis, queueConnection: bullRedis, redisUrl, prefix, logger };
  // The cache's writes and the bus's notices of one moment (a group commit's turns) share a script.
  const writes = new RedisWrites(redis);
  const cache = createLayeredCache(
    createMemoryCache({ maxSessions: config.cacheMaxSessions, ttlSeconds: LOCAL_CACHE_TTL_SECONDS }),
    createRedisCache(redis, { prefix, ttlSeconds: config.cacheTtlSeconds, writes }),
  );
  return {
    kind: 'redis',
    redis,
    rateLimiter: createRedisRateLimiter(redis, { prefix }),
    cache,
    bus: createRedisBus(redis, subscriber, { prefix, logger, writes }),
    queue: createRedisLaneQueue({
      ...common,
      concurrency: config.queueConcurrency,
      retryBaseMs: config.queueRetryBaseMs,
      onRepair: repairsOf(INBOUND_QUEUE),
      sweepEveryMs: config.queueSweepMs,
      // A claim reads each lane's cached session with its items (same connection, so after this
      // process's own cache writes): the lane's first turn does not ask for it again.
      sessions: { cachePrefix: prefix, seen: (lane, id, cached) => cache.prime(lane, id, cached) },
    }),
    scheduler: createBullmqScheduler({ redis: bullRedis, redisUrl, prefix, logger }),
    createOutbox: (delivery) =>
      createRedisOutbox({
        ...common,
        db,
        delivery,
        concurrency: config.queueConcurrency,
        onRepair: repairsOf(OUTBOUND_QUEUE),
        sweepEveryMs: config.queueSweepMs,
      }),
    async close() {
      subscriber.disconnect();
      bullRedis.disconnect();
      redis.disconnect();
    },
  };
}
