import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import { LaneRunner, type LaneRunnerOptions } from '../queue/lane-runner.ts';
import { RedisLanes } from '../queue/redis-lanes.ts';
import type { Db } from '../store/db.ts';
import type { Delivery } from './delivery.ts';
import { OUTBOX_SWEEP_MS, type Outbox, sweepStaleReplies } from './outbox.ts';

export const OUTBOUND_QUEUE = 'outbound';

/**
 * The outbox across processes: a lane per session (so one delivery per session at a time, in
 * order, on whichever worker), whose items are only wake-up calls — what to send is read from
 * PostgreSQL each time.
 */
export function createRedisOutbox(options: {
  db: Db;
  redis: Redis;
  /** BullMQ's producer connection; `redis` when absent. */
  queueConnection?: Redis;
  redisUrl: string;
  prefix: string;
  delivery: Delivery;
  logger: Logger;
  concurrency: number;
  /** Told of each repair the lane runner makes (see LaneRunnerOptions). */
  onRepair?: LaneRunnerOptions['onRepair'];
  /** How often the lane runner's sweep runs (see LaneRunnerOptions). */
  sweepEveryMs?: number;
}): Outbox {
  const { db, delivery, logger } = options;
  const lanes = new RedisLanes(options.redis, { prefix: options.prefix, name: OUTBOUND_QUEUE });
  const runner = new LaneRunner({
    name: OUTBOUND_QUEUE,
    redisUrl: options.redisUrl,
    prefix: options.prefix,
    lanes,
    logger,
    connection: options.queueConnection ?? options.redis,
    ...(options.onRepair ? { onRepair: options.onRepair } : {}),
    ...(options.sweepEveryMs === undefined ? {} : { sweepEveryMs: options.sweepEveryMs }),
  });
  let timer: NodeJS.Timeout | undefined;

  const outbox: Outbox = {
    notify(sessionId) {
      const lane = sessionId;
      lanes
        .push(lane, String(Date.now()))
        .then((r) => (r.status === 'accepted' && r.wake !== undefined ? runner.wake(r.wake) : undefined))
        .catch((err: Error) => logger.warn({ event: 'outbox.notify_failed', sessionId, err: err.message }));
    },
    async start() {
      runner.start(async (sessionId, items) => {
        await delivery.deliverSession(sessionId);
        return { done: items.length };
      }, options.concurrency);
      const sweep = () =>
        sweepStaleReplies(db, outbox, logger).catch((err: Error) =>
          logger.warn({ event: 'outbox.sweep_failed', err: err.message }),
        );
      await sweep();
      timer = setInterval(sweep, OUTBOX_SWEEP_MS);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      delivery.stop();
      await runner.stop();
    },
    status: () => runner.status(),
  };
  return outbox;
}
