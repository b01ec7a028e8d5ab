import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import type { ExpiryReport } from './expiry.ts';

export const MAINTENANCE_QUEUE = 'maintenance';
const EXPIRY_SCHEDULER_ID = 'expiry';
/** The first run waits this long after start, so a restart storm does not begin with cleanup. */
const FIRST_RUN_DELAY_MS = 30_000;

export interface ExpirySchedule {
  stop(): Promise<void>;
}

/** Embedded hub: a timer in this process (the only one). */
export function scheduleExpiryInProcess(
  run: () => Promise<ExpiryReport>,
  options: { everyMs: number; logger: Logger },
): ExpirySchedule {
  let running: Promise<unknown> = Promise.resolve();
  const tick = () => {
    running = run().catch((err: Error) => options.logger.warn({ event: 'expiry.failed', err: err.message }));
  };
  const first = setTimeout(tick, Math.min(FIRST_RUN_DELAY_MS, options.everyMs));
  const timer = setInterval(tick, options.everyMs);
  first.unref();
  timer.unref();
  return {
    async stop() {
      clearTimeout(first);
      clearInterval(timer);
      await running;
    },
  };
}

/**
 * Hub on Redis: a repeatable BullMQ job. Every worker process registers the same scheduler (an
 * upsert, so there is one) and listens; each run goes to one of them. The job itself also takes
 * a database lock, so even two overlapping runs do no harm.
 */
export async function scheduleExpiryOnRedis(
  run: () => Promise<ExpiryReport>,
  options: { everyMs: number; logger: Logger; redis: Redis; redisUrl: string; prefix: string },
): Promise<ExpirySchedule> {
  const { logger } = options;
  const prefix = `${options.prefix}bull`;
  const queue = new Queue(MAINTENANCE_QUEUE, { connection: options.redis, prefix });
  queue.on('error', (err) => logger.warn({ event: 'expiry.queue_error', err: err.message }));
  await queue.upsertJobScheduler(
    EXPIRY_SCHEDULER_ID,
    { every: options.everyMs },
    { name: 'expiry', opts: { removeOnComplete: true, removeOnFail: 100 } },
  );
  const worker = new Worker(
    MAINTENANCE_QUEUE,
    async (job) => {
      if (job.name !== 'expiry') return undefined;
      return run();
    },
    {
      connection: {
        url: options.redisUrl,
        maxRetriesPerRequest: null,
        connectionName: 'switchboard-maintenance-worker',
      } as never,
      prefix,
      concurrency: 1,
    },
  );
  worker.on('error', (err) => logger.warn({ event: 'expiry.worker_error', err: err.message }));
  worker.on('failed', (job, err) =>
    logger.warn({ event: 'expiry.failed', jobId: job?.id, err: err.message }),
  );
  return {
    async stop() {
      await worker.close();
      await queue.close();
    },
  };
}
