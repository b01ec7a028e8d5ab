import type { Redis } from 'ioredis';
import type { Bus } from './bus/bus.ts';
import { createMemoryBus } from './bus/memory-bus.ts';
import { createRedisBus } from './bus/redis-bus.ts';
import type { SessionCache } from './cache/cache.ts';
import { createLayeredCache } from './cache/layered-cache.ts';
import { createMemoryCache } from './cache/memory-cache.ts';
import { createRedisCache } from './cache/redis-cache.ts';
import type { HubConfig } from './config/env.ts';
import type { Delivery } from './delivery/delivery.ts';
import { createInProcessOutbox, type Outbox } from './delivery/outbox.ts';
import { createRedisOutbox } from './delivery/redis-outbox.ts';
import { createMemoryRateLimiter } from './limits/memory-rate-limiter.ts';
import type { RateLimiter } from './limits/rate-limiter.ts';
import { createRedisRateLimiter } from './limits/redis-rate-limiter.ts';
import type { Logger } from './logger.ts';
import { createBullmqQueue } from './queue/bullmq-queue.ts';
import { createInProcessQueue } from './queue/in-process.ts';
import type { InboundQueue } from './queue/queue.ts';
import { connectRedis } from './redis.ts';
import { createBullmqScheduler } from './scheduler/bullmq-scheduler.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import { createTableScheduler } from './scheduler/table-scheduler.ts';
import type { Db } from './store/db.ts';

/** Process-local copies of shared cache entries live this long (a stale one only costs a retry). */
const LOCAL_CACHE_TTL_SECONDS = 60;

/**
 * Where the hub's moving parts live, chosen once: all in this process (nothing configured), or
 * all on Redis (`REDIS_URL`), so that every process of a hub shares them. Never a mix.
 */
export interface Backend {
  readonly kind: 'memory' | 'redis';
  /** The shared command connection (Redis only): readiness checks, erasing queue traces. */
  readonly redis?: Redis;
  readonly rateLimiter: RateLimiter;
  readonly cache: SessionCache;
  readonly bus: Bus;
  readonly queue: InboundQueue;
  readonly scheduler: Scheduler;
  /** The outbox sends through `delivery`, which itself needs the rate limiter: so it comes second. */
  createOutbox(delivery: Delivery): Outbox;
  /** Drops the connections; the parts themselves are stopped by their owner first. */
  close(): Promise<void>;
}

export function createBackend(config: HubConfig, deps: { db: Db; logger: Logger }): Backend {
  return config.redisUrl ? redisBackend(config.redisUrl, config, deps) : memoryBackend(config, deps);
}

function memoryBackend(config: HubConfig, { db, logger }: { db: Db; logger: Logger }): Backend {
  return {
    kind: 'memory',
    rateLimiter: createMemoryRateLimiter(),
    cache: createMemoryCache({ maxSessions: config.cacheMaxSessions, ttlSeconds: config.cacheTtlSeconds }),
    bus: createMemoryBus(),
    queue: createInProcessQueue({
      db,
      logger,
      concurrency: config.queueConcurrency,
      retryBaseMs: config.queueRetryBaseMs,
    }),
    scheduler: createTableScheduler({ db, logger, pollMs: config.schedulerPollMs }),
    createOutbox: (delivery) => createInProcessOutbox({ db, delivery, logger }),
    async close() {},
  };
}

function redisBackend(
  redisUrl: string,
  config: HubConfig,
  { db, logger }: { db: Db; logger: Logger },
): Backend {
  // Commands issued in the same tick (a group commit's acknowledgements, cache writes and
  // notices) share one round trip.
  const redis = connectRedis(redisUrl, logger, 'switchboard', { enableAutoPipelining: true });
  const subscriber = connectRedis(redisUrl, logger, 'switchboard-sub', { maxRetriesPerRequest: null });
  // BullMQ's producers get a connection of their own: BullMQ defines dozens of scripts on a
  // connection, and an auto-pipelining connection copies every one of them into each batch.
  const bullRedis = connectRedis(redisUrl, logger, 'switchboard-queue');
  const prefix = config.redisPrefix;
  const common = { redis, queueConnection: bullRedis, redisUrl, prefix, logger };
  return {
    kind: 'redis',
    redis,
    rateLimiter: createRedisRateLimiter(redis, { prefix }),
    cache: createLayeredCache(
      createMemoryCache({ maxSessions: config.cacheMaxSessions, ttlSeconds: LOCAL_CACHE_TTL_SECONDS }),
      createRedisCache(redis, { prefix, ttlSeconds: config.cacheTtlSeconds }),
    ),
    bus: createRedisBus(redis, subscriber, { prefix, logger }),
    queue: createBullmqQueue({
      ...common,
      concurrency: config.queueConcurrency,
      retryBaseMs: config.queueRetryBaseMs,
    }),
    scheduler: createBullmqScheduler({ redis: bullRedis, redisUrl, prefix, logger }),
    createOutbox: (delivery) =>
      createRedisOutbox({ ...common, db, delivery, concurrency: config.queueConcurrency }),
    async close() {
      subscriber.disconnect();
      bullRedis.disconnect();
      redis.disconnect();
    },
  };
}
