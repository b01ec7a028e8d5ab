import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from './logger.ts';

/** How long to wait between reconnection attempts, growing to this cap while Redis is away. */
export const REDIS_RECONNECT_CAP_MS = 2_000;

/**
 * A Redis connection that reconnects forever (Redis going away is a state, not a crash) and
 * fails single commands fast while it is away, so callers can fall back or report not-ready.
 */
export function connectRedis(url: string, logger: Logger, name: string, overrides: RedisOptions = {}): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    connectTimeout: 5_000,
    maxRetriesPerRequest: 2,
    retryStrategy: (times) => Math.min(times * 100, REDIS_RECONNECT_CAP_MS),
    lazyConnect: false,
    ...overrides,
  });
  let down = false;
  redis.on('error', (err: Error) => {
    if (!down) logger.warn({ event: 'redis.error', connection: name, err: err.message });
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info({ event: 'redis.reconnected', connection: name });
    down = false;
  });
  return redis;
}
