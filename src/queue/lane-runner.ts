import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import { backoffDelay, retryDelayHint } from './queue.ts';
import type { ClaimedLane, RedisLanes } from './redis-lanes.ts';

/** Items read from a lane at a time; handled one by one, acknowledged together. */
export const LANE_CHUNK = 20;
/**
 * A drainer that dies (SIGKILL) holds its lane at most this long before BullMQ's stall check
 * hands the job to another worker. Renewed every half of it while the drainer lives.
 */
export const LANE_LOCK_MS = 10_000;
export const STALL_CHECK_MS = 5_000;
/**
 * Most lanes one drain job claims. Under load the lanes that became ready while a job waited
 * share it, and with it BullMQ's round trips; a worker never holds more lanes than its concurrency.
 */
export const LANES_PER_JOB = 32;
/**
 * A drainer checks at a chunk's end that its job's lock still holds (extending it), unless the
 * last extension that succeeded was sent less than this ago: the lock then still holds for
 * LANE_LOCK_MS minus this at least, and a lane of many small chunks costs one extension a second,
 * not one a chunk.
 */
const LOCK_RECHECK_MS = 1_000;
/** How often a worker checks that ready lanes have their wake job (its producer may have died before adding it). */
const SWEEP_EVERY_MS = 15_000;
const RETRY_BASE_MS = 200;
const RETRY_CAP_MS = 30_000;

/** A wake job; `lane` and `epoch` mark a job queued by a version that gave each lane a job of its own. */
interface LaneJob {
  wake: number;
  lane?: string;
  epoch?: number;
}

const wakeJobId = (wake: number) => `wake-${wake}`;

/** When a run of a job last had its lock confirmed (sent time of the extension, `performance.now()`). */
interface Lease {
  confirmedAt: number;
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
  /** First retry delay of a failed drain; doubles each attempt, with full jitter, up to 30 s. */
  retryBaseMs?: number;
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
  private concurrency = 1;
  /** Lanes this process drains now. */
  private activeLanes = 0;

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

  /** Adds wake job `wake` (numbered by `RedisLanes`), which claims ready lanes and drains them. */
  async wake(wake: number): Promise<void> {
    await this.queue.add('wake', { wake }, { jobId: wakeJobId(wake) });
  }

  /** Starts draining lanes (worker role). */
  start(handle: ChunkHandler, concurrency: number): void {
    const { o } = this;
    this.concurrency = concurrency;
    this.worker = new Worker<LaneJob>(o.name, (job, token) => this.run(job, token, handle), {
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
        // A drain's own hint first (an attachment's retry spacing): the job, and with it the
        // lanes that failed, waits that long in BullMQ's delayed set, holding no worker slot.
        backoffStrategy: (attempts: number, _type?: string, err?: Error) =>
          retryDelayHint(err) ?? backoffDelay(attempts, o.retryBaseMs ?? RETRY_BASE_MS, RETRY_CAP_MS),
      },
    });
    this.worker.on('error', (err) =>
      o.logger.warn({ event: 'queue.worker_error', queue: o.name, err: err.message }),
    );
    this.worker.on('failed', (job, err) =>
      o.logger.warn({
        event: 'queue.drain_retry',
        queue: o.name,
        wake: job?.data.wake,
        attempt: job?.attemptsMade,
        err: err.message,
      }),
    );
    this.sweepTimer = setInterval(() => void this.sweep(), SWEEP_EVERY_MS);
    this.sweepTimer.unref();
  }

  /**
   * A wake job: claims ready lanes (or, run again after a crash or a failure, the lanes it still
   * holds) and drains them side by side. Fails, to be retried with backoff, if a lane's drain failed.
   */
  private async run(job: Job<LaneJob>, token: string | undefined, handle: ChunkHandler): Promise<void> {
    const { wake, lane, epoch } = job.data;
    if (lane !== undefined && epoch !== undefined) {
      // Left by an older version: that lane was scheduled without a place in the ready list.
      const lease: Lease = { confirmedAt: Number.NEGATIVE_INFINITY };
      await this.drain(job, token, lease, { lane, epoch, wake: 0, entry: `${epoch}|${lane}` }, handle);
      return;
    }
    const room = Math.max(1, Math.min(LANES_PER_JOB, this.concurrency - this.activeLanes));
    const { lanes, next } = await this.o.lanes.claim(wake, room, LANE_CHUNK);
    // More lanes are ready than this job took: another job (on any worker) takes them now.
    if (next !== undefined) await this.wake(next);
    this.activeLanes += lanes.length;
    const lease: Lease = { confirmedAt: Number.NEGATIVE_INFINITY };
    const drains = await Promise.allSettled(
      lanes.map((claimed) =>
        this.drain(job, token, lease, claimed, handle).finally(() => {
          this.activeLanes--;
        }),
      ),
    );
    const failed = drains
      .filter((d): d is PromiseRejectedResult => d.status === 'rejected')
      .map((d) => d.reason as unknown);
    // The retry runs every failed lane of the job again: it waits for the longest hint among
    // them, so that none is tried sooner than it asked (the others only wait a little longer).
    if (failed.length > 0)
      throw failed.reduce((a, b) => ((retryDelayHint(b) ?? -1) > (retryDelayHint(a) ?? -1) ? b : a));
  }

  /** Drains one claimed lane, a chunk at a time; releases the claim when the lane is no longer this job's to drain. */
  private async drain(
    job: Job<LaneJob>,
    token: string | undefined,
    lease: Lease,
    claimed: ClaimedLane,
    handle: ChunkHandler,
  ): Promise<void> {
    const { lane, epoch } = claimed;
    const { lanes } = this.o;
    let first = true;
    let prefetched = claimed.items;
    for (;;) {
      if (this.closing) {
        // Hand the lane on instead of leaving it scheduled with no job.
        const next = await lanes.handback(lane, epoch);
        if (next?.wake !== undefined) await this.wake(next.wake);
        return lanes.release(claimed);
      }
      // The first chunk came with the claim, the next ones with the acknowledgement before them.
      const items = prefetched === undefined ? await lanes.read(lane, epoch, LANE_CHUNK) : prefetched;
      prefetched = undefined;
      if (items === null) return lanes.release(claimed); // a newer epoch owns the lane
      if (items.length === 0) {
        if (await lanes.finish(claimed)) return;
        continue;
      }
      const outcome = await handle(lane, items, {
        redelivered: first && job.attemptsStarted > 1,
        continues: !first,
      });
      first = false;
      if (outcome.error) {
        // The lane stays claimed: the job's retry drains it again.
        await lanes.ack(lane, items.slice(0, outcome.done));
        throw outcome.error;
      }
      const next = await lanes.ackAndNext(claimed, items.slice(0, outcome.done), LANE_CHUNK);
      if (next === 'finished') return;
      prefetched = next;
      // Fencing at chunk granularity: if our lock lapsed, the job (and this lane) went to another worker.
      if (token && !(await this.holdsLock(job, token, lease))) {
        this.o.logger.warn({ event: 'queue.lane_lost', queue: this.o.name, lane });
        return;
      }
    }
  }

  /** Whether the job's lock still holds: extended, or confirmed recently enough (LOCK_RECHECK_MS). */
  private async holdsLock(job: Job<LaneJob>, token: string, lease: Lease): Promise<boolean> {
    const sentAt = performance.now();
    if (sentAt - lease.confirmedAt < LOCK_RECHECK_MS) return true;
    if ((await job.extendLock(token, LANE_LOCK_MS)) !== 1) return false;
    lease.confirmedAt = Math.max(lease.confirmedAt, sentAt);
    return true;
  }

  /** Adds the wake job of ready lanes whose producer died between queuing an item and adding the job. */
  private async sweep(): Promise<void> {
    try {
      const wake = await this.o.lanes.pendingWake();
      if (wake === undefined || (await this.queue.getJob(wakeJobId(wake)))) return;
      this.o.logger.warn({ event: 'queue.wake_restored', queue: this.o.name, wake });
      await this.wake(wake);
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
