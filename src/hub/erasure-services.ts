import type { Backend } from '../backend.ts';
import type { ErasureDeps } from '../erasure.ts';

/**
 * What an erasure needs from the backend, besides the database, cache and logger: the same for
 * an operator's `DELETE /api/users/{id}` and for the expiry job's identified-user retention, so
 * that both clear the same Redis traces, jobs and rate-limit windows.
 */
export function erasureServices(
  backend: Backend,
  redisPrefix: string,
): Omit<ErasureDeps, 'db' | 'cache' | 'logger'> {
  const { redis, rateLimiter, scheduler, bus } = backend;
  return {
    rateLimiter,
    scheduler,
    bus,
    ...(redis
      ? {
          eraseQueueTraces: async (sessions) =>
            (await import('../queue/erased-traces.ts')).eraseQueueTraces(redis, redisPrefix, sessions),
        }
      : {}),
  };
}
