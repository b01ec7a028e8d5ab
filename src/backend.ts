import type { Redis } from 'ioredis';
import type { Bus } from './bus/bus.ts';
import { createMemoryBus } from './bus/memory-bus.ts';
import type { SessionCache } from './cache/cache.ts';
import { createMemoryCache } from './cache/memory-cache.ts';
import type { HubConfig } from './config/env.ts';
import type { Delivery } from './delivery/delivery.ts';
import { createInProcessOutbox, type Outbox } from './delivery/outbox.ts';
import { createMemoryRateLimiter } from './limits/memory-rate-limiter.ts';
import type { RateLimiter } from './limits/rate-limiter.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { createInProcessQueue } from './queue/in-process.ts';
import type { InboundQueue } from './queue/queue.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import { createTableScheduler } from './scheduler/table-scheduler.ts';
import type { Db } from './store/db.ts';

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

/** What the backends are made with; `metrics` counts the shared queue's repairs (Redis only). */
export interface BackendDeps {
  db: Db;
  logger: Logger;
  metrics?: Metrics;
}

export async function createBackend(config: HubConfig, deps: BackendDeps): Promise<Backend> {
  if (!config.redisUrl) return memoryBackend(config, deps);
  const { redisBackend } = await import('./backend-redis.ts');
  return redisBackend(config.redisUrl, config, deps);
}

function memoryBackend(config: HubConfig, { db, logger }: BackendDeps): Backend {
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
