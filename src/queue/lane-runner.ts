import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import { backoffDelay } from './queue.ts';
import { laneJobId, type RedisLanes } from './redis-lanes.ts';

/** Items read from a lane at a time; handled one by one, acknowledged together. */
export const LANE_CHUNK = 20;
/**
 * A drainer that dies (SIGKILL) holds its lane at most this long before BullMQ's stall check
 * hands the job to another worker. Renewed every half of it while the drainer lives.
 */
export const LANE_LOCK_MS = 10_000;
export const STALL_CHECK_MS = 5_000;
/** A lane scheduled this long ago is checked for a lost job (its producer died before adding it). */
export const LOST_JOB_AFTER_MS = 30_000;
const SWEEP_EVERY_MS = 15_000;
const RETRY_BASE_MS = 200;
const RETRY_CAP_MS = 30_000;

interface LaneJob {
  lane: string;
  epoch: number;
}

export interface ChunkContext {
  /**
   * True for the first chunk of a job that was started before (its drainer died, or a chunk
   * failed): its items may have been handled already. Never true for a job's first start, so a
   * lane's usual chunks skip the look for already handled items.
   */
  redelivered: boolean;
  /** A chunk after the first of this job: the same drainer handled the chunk before, holding the lane. */
  continues: boolean;
}

/**
 * Handles a chunk in order; returns how many items, from the start, are done (to acknowledge),
 * and throws (after returning nothing) only when the remaining items must be retried later.
 */
export type ChunkHandler = (lane: string, items: string[], ctx: ChunkContext) => Promise<ChunkOutcome>;

export interface ChunkOutcome {
  /** Items handled, from the start of the chunk. */
  done: number;
  /** Set when handling stopped early and the job must back off and retry. */
  error?: Error;
}

export interface LaneRunnerOptions {
  name: string;
  redisUrl: string;
  prefix: string;
  lanes: RedisLanes;
  logger: Logger;
  /** The connection for BullMQ's Queue (producer side). */
  connection: Redis;
}

/**
 * Runs lanes on BullMQ: producers `schedule` a lane's drain job, workers drain lanes strictly
 * in order, one drainer per lane, as many lanes at once as `concurrency` allows.
 */
export class LaneRunner {
  readonly queue: Queue<LaneJob>;
  private worker: Worker<LaneJob> | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(private readonly o: LaneRunnerOptions) {
    this.queue = new Queue<LaneJob>(o.name, {
      connection: o.connection,
      prefix: `${o.prefix}bull`,
      defaultJobOptions: {
        removeOnComplete: true,
        removeOnFail: true,
        // A drain only fails for outside reasons (the database is away): keep trying.
        attempts: Number.MAX_SAFE_INTEGER,
        backoff: { type: 'jittered' },
      },
    });
    this.queue.on('error', (err) =>
      o.logger.warn({ event: 'queue.producer_error', queue: o.name, err: err.message }),
    );
  }

  async schedule(lane: string, epoch: number): Promise<void> {
    await this.queue.add('drain', { lane, epoch }, { jobId: laneJobId(lane, epoch) });
  }

  /** Starts draining lanes (worker role). */
  start(handle: ChunkHandler, concurrency: number): void {
    const { o } = this;
    this.worker = new Worker<LaneJob>(o.name, (job, token) => this.drain(job, token, handle), {
      connection: {
        url: o.redisUrl,
        maxRetriesPerRequest: null,
        connectionName: `switchboard-${o.name}-worker`,
      } as never,
      prefix: `${o.prefix}bull`,
      concurrency,
      lockDuration: LANE_LOCK_MS,
      stalledInterval: STALL_CHECK_MS,
      // A stall is a dead worker, not a bad job: never give a lane up for it.
      maxStalledCount: Number.MAX_SAFE_INTEGER,
      settings: {
        backoffStrategy: (attempts: number) => backoffDelay(attempts, RETRY_BASE_MS, RETRY_CAP_MS),
      },
    });
    this.worker.on('error', (err) =>
      o.logger.warn({ event: 'queue.worker_error', queue: o.name, err: err.message }),
    );
    this.worker.on('failed', (job, err) =>
      o.logger.warn({
        event: 'queue.drain_retry',
        queue: o.name,
        lane: job?.data.lane,
        attempt: job?.attemptsMade,
        err: err.message,
      }),
    );
    this.sweepTimer = setInterval(() => void this.sweep(), SWEEP_EVERY_MS);
    this.sweepTimer.unref();
  }

  private async drain(job: Job<LaneJob>, token: string | undefined, handle: ChunkHandler): Promise<void> {
    const { lane, epoch } = job.data;
    const { lanes } = this.o;
    let first = true;
    for (;;) {
      if (this.closing) {
        // Hand the lane on instead of leaving it scheduled with no job.
        const next = await lanes.handback(lane, epoch);
        if (next !== undefined) await this.schedule(lane, next);
        return;
      }
      const items = await lanes.read(lane, epoch, LANE_CHUNK);
      if (items === null) return; // a newer epoch owns the lane
      if (items.length === 0) {
        if (await lanes.finish(lane, epoch)) return;
        continue;
      }
      const outcome = await handle(lane, items, {
        redelivered: first && job.attemptsStarted > 1,
        continues: !first,
      });
      first = false;
      if (outcome.error) {
        await lanes.ack(lane, items.slice(0, outcome.done));
        throw outcome.error;
      }
      if (await lanes.ackAndFinish(lane, epoch, items.slice(0, outcome.done))) return;
      // Fencing at chunk granularity: if our lock lapsed, another drainer owns the lane now.
      if (token && (await job.extendLock(token, LANE_LOCK_MS)) !== 1) {
        this.o.logger.warn({ event: 'queue.lane_lost', queue: this.o.name, lane });
        return;
      }
    }
  }

  /** Re-adds the job of lanes whose producer died between queuing an item and adding the job. */
  private async sweep(): Promise<void> {
    try {
      const stale = await this.o.lanes.scheduledBefore(Date.now() - LOST_JOB_AFTER_MS, 100);
      for (const { lane, epoch } of stale) {
        const job = await this.queue.getJob(laneJobId(lane, epoch));
        if (!job) {
          this.o.logger.warn({ event: 'queue.lane_rescheduled', queue: this.o.name, lane, epoch });
          await this.schedule(lane, epoch);
        }
        await this.o.lanes.touch(lane);
      }
    } catch (err) {
      this.o.logger.warn({ event: 'queue.sweep_failed', queue: this.o.name, err: (err as Error).message });
    }
  }

  /** Stops draining: running drains hand their lanes on, then the connections close. */
  async stop(): Promise<void> {
    this.closing = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.worker?.close();
    await this.queue.close();
  }

  async ping(): Promise<void> {
    await this.o.connection.ping();
  }
}
