import type { EventEmitter } from 'node:events';
import { isTransient } from './errors.ts';
import type { Logger } from './logger.ts';

/** What BullMQ's Queue and Worker offer: their errors, and their backend's `ready` (each (re)connection). */
export interface BullmqConnected {
  on(event: 'error', listener: (err: Error) => void): unknown;
  getBackend(): unknown;
}

/** Redis away: a connection error (a name that does not resolve, too). */
function connectionLost(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return isTransient(err) || code === 'ENOTFOUND';
}

/**
 * Logs a BullMQ queue's or worker's errors as `redis.error` logs a connection's: the first error
 * of an outage as `events.error`, the ones after it (BullMQ retries several times a second) only
 * counted, and, once a connection is ready again, `events.recovered` with how many there were and
 * for how long. An error while Redis answers (not a connection's) is logged each time.
 */
export function logRedisOutages(
  source: BullmqConnected,
  logger: Logger,
  events: { error: string; recovered: string },
  fields: Record<string, unknown> = {},
  now: () => number = Date.now,
): void {
  let outage: { since: number; errors: number } | undefined;
  source.on('error', (err) => {
    if (outage) {
      outage.errors++;
      return;
    }
    logger.warn({ event: events.error, ...fields, err: err.message });
    if (connectionLost(err)) outage = { since: now(), errors: 1 };
  });
  (source.getBackend() as EventEmitter).on('ready', () => {
    if (!outage) return;
    logger.info({ event: events.recovered, ...fields, errors: outage.errors, downMs: now() - outage.since });
    outage = undefined;
  });
}
