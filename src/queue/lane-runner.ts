import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import { logRedisOutages } from '../redis-outage.ts';
import { LaneSlots } from './lane-slots.ts';
import { type LaneQueueStatus, laneQueueStatus } from './lane-status.ts';
import { backoffDelay, retryDelayHint } from './queue.ts';
import type { Claim, ClaimedLane, RedisLanes } from './redis-lanes.ts';
import { wakeJobId, wakeJobOver } from './wake-job.ts';

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
/**
 * A wake job that empties the ready list keeps the wake mark while its drains run (it *lingers*),
 * and takes the lanes that become ready meanwhile itself: their producers add no BullMQ job. It
 * lingers until it has taken this many lanes, so that the next job (on whichever worker BullMQ
 * gives it to) takes the next ones and the workers share the load.
 */
const LINGER_LANES = 64;
/**
 * The mark of a lingering job lapses this long after the job last renewed it: a lingering job
 * whose worker died (SIGKILL) holds no new lanes longer; the next push marks a new job.
 */
const LINGER_LEASE_MS = 1_000;
/**
 * A lingering job learns that lanes are ready from its worker's acknowledgements (`ack-batch.lua`
 * returns the ready list's length). When none came for this long (a group commit in flight), it
 * looks at the ready list itself.
 */
const LINGER_POLL_MS = 4;
/**
 * A lingering job none of whose drains finished a chunk for this long (slow LLM turns) lets the
 * mark go: the lanes that become ready then get a job of their own instead of waiting on its polls.
 */
const LINGER_STUCK_MS = 100;
/**
 * How often a worker checks that ready lanes have their wake job (its producer may have died
 * before adding it), and that claimed lanes have theirs (see `restoreClaims`).
 */
const SWEEP_EVERY_MS = 15_000;
const RETRY_BASE_MS = 200;
const RETRY_CAP_MS = 30_000;

/** A wake job; `lane` and `epoch` mark a job queued by a version that gave each lane a job of its own. */
interface LaneJob {
  wake: number;
  lane?: string;
  epoch?: number;
}

/** When a run of a job last had its lock confirmed (sent time of the extension, `performance.now()`). */
interface Lease {
  confirmedAt: number;
}

/** A wake job's run on this worker: its drains, and whether it lingers (holds the wake mark). */
interface WakeRun {
  job: Job<LaneJob>;
  token: string | undefined;
  wake: number;
  lease: Lease;
  handle: ChunkHandler;
  /** Drains running, and claimed lanes waiting for a slot (a restarted job's beyond its room). */
  drains: number;
  waiting: number;
  lingering: boolean;
  /** Lanes this run has claimed (LINGER_LANES). */
  claimed: number;
  /** When the ready list was last known (a top-up, or an acknowledgement's report), the mark last renewed, a chunk last done. */
  checkedAt: number;
  renewedAt: number;
  progressAt: number;
  toppingUp: boolean;
  topUpAgain: boolean;
  /** What the run's failed drains threw. */
  failures: unknown[];
  timer: NodeJS.Timeout | undefined;
  /** Resolves the run's wait for its next event (a drain's end, a top-up's). */
  wakeUp: () => void;
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
  /** How often the sweep runs (`QUEUE_SWEEP_MS`; SWEEP_EVERY_MS when absent). */
  sweepEveryMs?: number;
  /** Told of each repair of the queue's state (logged too): which, and how many (wake jobs added, lanes handed back). */
  onRepair?: (repair: QueueRepair, lanes: number) => void;
}

/** What a worker repairs in the shared queue (see `switchboard_queue_repairs_total`). */
export type QueueRepair = 'wake' | 'claims' | 'lane_lost';

/**
 * Runs lanes on BullMQ: producers `schedule` a lane's drain job, workers drain lanes strictly
 * in order, one drainer per lane, as many lanes at once as `concurrency` allows.
 */
export class LaneRunner {
  readonly queue: Queue<LaneJob>;
  private worker: Worker<LaneJob> | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing = false;
  /** Lanes this process may drain at once, less those it drains. */
  private slots = new LaneSlots(1);
  /** This worker's runs that hold the wake mark (one, or for a moment more than one). */
  private readonly lingering = new Set<WakeRun>();
  /** Claim entries the last sweep found held by jobs that were over, by job (`restoreClaims`). */
  private overClaims = new Map<number, Set<string>>();
  /** A sweep is running: a tick that finds one running is skipped, so two sweeps begin an interval apart at least. */
  private sweeping = false;
  /** Whether the claims index holds the claims of versions before it (`RedisLanes.seedClaimants`). */
  private claimantsSeeded = false;
  /** The seeding running now, if any. */
  private seeding: Promise<void> | undefined;

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
    logRedisOutages(
      this.queue,
      o.logger,
      { error: 'queue.producer_error', recovered: 'queue.producer_recovered' },
      { queue: o.name },
    );
  }

  /** Adds wake job `wake` (numbered by `RedisLanes`), which claims ready lanes and drains them. */
  async wake(wake: number): Promise<void> {
    await this.queue.add('wake', { wake }, { jobId: wakeJobId(wake) });
  }

  /** Starts draining lanes (worker role). */
  start(handle: ChunkHandler, concurrency: number): void {
    const { o } = this;
    this.slots = new LaneSlots(concurrency);
    o.lanes.onAcked = (ready) => this.readyReported(ready);
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
    logRedisOutages(
      this.worker,
      o.logger,
      { error: 'queue.worker_error', recovered: 'queue.worker_recovered' },
      { queue: o.name },
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
    this.sweepTimer = setInterval(() => void this.sweep(), o.sweepEveryMs ?? SWEEP_EVERY_MS);
    this.sweepTimer.unref();
  }

  /**
   * A wake job: claims ready lanes (or, run again after a crash or a failure, the lanes it still
   * holds) and drains them side by side; when it emptied the ready list it lingers (LINGER_LANES)
   * and takes the lanes that become ready while its drains run. Fails, to be retried with backoff,
   * if a lane's drain failed.
   */
  private async run(job: Job<LaneJob>, token: string | undefined, handle: ChunkHandler): Promise<void> {
    const { wake, lane, epoch } = job.data;
    if (lane !== undefined && epoch !== undefined) {
      // Left by an older version: that lane was scheduled without a place in the ready list.
      const lease: Lease = { confirmedAt: Number.NEGATIVE_INFINITY };
      await this.drain(job, token, lease, { lane, epoch, wake: 0, entry: `${epoch}|${lane}` }, handle);
      return;
    }
    const now = performance.now();
    const r: WakeRun = {
      job,
      token,
      wake,
      lease: { confirmedAt: Number.NEGATIVE_INFINITY },
      handle,
      drains: 0,
      waiting: 0,
      lingering: false,
      claimed: 0,
      checkedAt: now,
      renewedAt: now,
      progressAt: now,
      toppingUp: false,
      topUpAgain: false,
      failures: [],
      timer: undefined,
      wakeUp: () => {},
    };
    // The room is taken before the claim is sent: claims of several jobs at once never overshoot.
    const room = await this.slots.takeSome(LANES_PER_JOB);
    let claim: Claim;
    try {
      claim = await this.o.lanes.claim(wake, room, LANE_CHUNK, this.closing ? 0 : LINGER_LEASE_MS);
    } catch (err) {
      this.slots.give(room);
      throw err;
    }
    // A restarted job gets back every lane it holds, which may be more than its room.
    const used = Math.min(room, claim.lanes.length);
    this.slots.give(room - used);
    // More lanes are ready than this job took: another job (on any worker) takes them now. If
    // that fails, so does this job, before it drains anything: its retry gets its lanes back.
    if (claim.next !== undefined) {
      try {
        await this.wake(claim.next);
      } catch (err) {
        this.slots.give(used);
        throw err;
      }
    }
    this.claimedLanes(r, claim, room);
    try {
      for (;;) {
        if (r.drains === 0 && r.waiting === 0 && !r.toppingUp) {
          if (!r.lingering) break;
          // Its last drain ended: take what became ready, or let the mark go.
          await this.topUp(r);
          continue;
        }
        await new Promise<void>((resolve) => {
          r.wakeUp = resolve;
        });
      }
    } finally {
      this.stopLingering(r);
    }
    // The retry runs every failed lane of the job again: it waits for the longest hint among
    // them, so that none is tried sooner than it asked (the others only wait a little longer).
    if (r.failures.length > 0)
      throw r.failures.reduce((a, b) => ((retryDelayHint(b) ?? -1) > (retryDelayHint(a) ?? -1) ? b : a));
  }

  /** Starts the drains of the lanes a claim (or a top-up) took; `slots` of them have a slot taken. */
  private claimedLanes(r: WakeRun, claim: Claim, slots: number): void {
    r.claimed += claim.lanes.length;
    if (claim.lingers && !r.lingering) {
      r.lingering = true;
      this.lingering.add(r);
      r.renewedAt = r.checkedAt = r.progressAt = performance.now();
      this.armLingerTimer(r, LINGER_POLL_MS);
    } else if (!claim.lingers) this.stopLingering(r);
    claim.lanes.forEach((claimed, i) => {
      if (i < slots) {
        this.startDrain(r, claimed);
        return;
      }
      r.waiting++;
      void this.slots.takeSome(1).then(() => {
        r.waiting--;
        this.startDrain(r, claimed);
      });
    });
  }

  private startDrain(r: WakeRun, claimed: ClaimedLane): void {
    r.drains++;
    this.drain(r.job, r.token, r.lease, claimed, r.handle, r)
      .catch((error: unknown) => {
        r.failures.push(error);
        // The job will be retried after the others end: lanes that become ready are not its.
        if (r.lingering) void this.topUp(r);
      })
      .finally(() => {
        r.drains--;
        this.slots.give(1);
        r.wakeUp();
      });
  }

  /**
   * A lingering run takes the lanes that became ready (within its room, LINGER_LANES in all),
   * renewing the mark; one top-up at a time per run. Lets the mark go when the run stops
   * lingering (closing, a failed drain, stuck, its lanes' budget spent, nothing left to drain).
   */
  private async topUp(r: WakeRun, letGo = false): Promise<void> {
    if (r.toppingUp) {
      r.topUpAgain = true;
      return;
    }
    r.toppingUp = true;
    try {
      do {
        r.topUpAgain = false;
        const stop = letGo || this.closing || r.failures.length > 0;
        const keep = !stop && r.claimed < LINGER_LANES;
        const room = stop ? 0 : this.slots.take(LANES_PER_JOB);
        const sentAt = performance.now();
        let claim: Claim;
        try {
          claim = await this.o.lanes.topUp(
            r.wake,
            room,
            LANE_CHUNK,
            keep ? LINGER_LEASE_MS : 0,
            r.drains > 0,
          );
        } catch (err) {
          // The mark lapses by itself (LINGER_LEASE_MS); the sweep adds a job for lanes left ready.
          this.slots.give(room);
          this.stopLingering(r);
          this.o.logger.warn({
            event: 'queue.top_up_failed',
            queue: this.o.name,
            err: (err as Error).message,
          });
          return;
        }
        this.slots.give(room - claim.lanes.length);
        r.checkedAt = Math.max(r.checkedAt, sentAt);
        r.renewedAt = sentAt;
        this.claimedLanes(r, claim, room);
        if (claim.next !== undefined) {
          await this.wake(claim.next).catch((err: unknown) =>
            this.o.logger.warn({
              event: 'queue.wake_failed',
              queue: this.o.name,
              err: (err as Error).message,
            }),
          );
        }
      } while (r.topUpAgain && r.lingering);
    } finally {
      r.toppingUp = false;
      r.wakeUp();
    }
  }

  private stopLingering(r: WakeRun): void {
    r.lingering = false;
    this.lingering.delete(r);
    if (r.timer) clearTimeout(r.timer);
    r.timer = undefined;
  }

  /** An acknowledgement batch of this worker said how many lanes are ready: a lingering run takes them. */
  private readyReported(ready: number): void {
    if (this.lingering.size === 0) return;
    const now = performance.now();
    for (const r of this.lingering) {
      r.checkedAt = now;
      if (ready > 0) void this.topUp(r);
    }
  }

  private armLingerTimer(r: WakeRun, ms: number): void {
    r.timer = setTimeout(() => this.lingerTick(r), ms);
    r.timer.unref();
  }

  /**
   * A lingering run's timer: no acknowledgement told it of the ready list for LINGER_POLL_MS, so
   * it looks itself (and renews its mark well within LINGER_LEASE_MS); if its drains are stuck, it
   * lets the mark go.
   */
  private lingerTick(r: WakeRun): void {
    r.timer = undefined;
    if (!r.lingering) return;
    const now = performance.now();
    if (now - r.progressAt > LINGER_STUCK_MS) {
      void this.topUp(r, true);
      return;
    }
    if (now - r.checkedAt >= LINGER_POLL_MS || now - r.renewedAt >= LINGER_LEASE_MS / 3) {
      void this.topUp(r).finally(() => {
        if (r.lingering && !r.timer) this.armLingerTimer(r, LINGER_POLL_MS);
      });
      return;
    }
    this.armLingerTimer(r, Math.max(1, LINGER_POLL_MS - (now - r.checkedAt)));
  }

  /** Drains one claimed lane, a chunk at a time; releases the claim when the lane is no longer this job's to drain. */
  private async drain(
    job: Job<LaneJob>,
    token: string | undefined,
    lease: Lease,
    claimed: ClaimedLane,
    handle: ChunkHandler,
    run?: WakeRun,
  ): Promise<void> {
    const { lane, epoch } = claimed;
    const { lanes } = this.o;
    let first = true;
    let prefetched = claimed.items;
    for (;;) {
      // Hand the lane on instead of leaving it scheduled with no job.
      if (this.closing) return this.handBack(claimed);
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
      if (run) run.progressAt = performance.now();
      if (next === 'finished') return;
      prefetched = next;
      // Fencing at chunk granularity: if our lock lapsed, the job (and this lane) went to another worker.
      if (token && !(await this.holdsLock(job, token, lease))) {
        this.o.logger.warn({ event: 'queue.lane_lost', queue: this.o.name, lane });
        this.o.onRepair?.('lane_lost', 1);
        // The job's new run (BullMQ's stall check gave it out again: Redis was away) gets back
        // the lanes the job held when it claims, not a lane this run took after that (a top-up
        // of a run that lingered on), and a job that has ended holds none: left claimed, such a
        // lane would wait for nobody. Handed back, it is ready under a new epoch, which fences
        // any other drainer of it.
        return this.handBack(claimed);
      }
    }
  }

  /** Makes a claimed lane ready again under a new epoch (a wake job is added if none is marked), and lets its claim go. */
  private async handBack(claimed: ClaimedLane): Promise<void> {
    const next = await this.o.lanes.handback(claimed.lane, claimed.epoch);
    if (next?.wake !== undefined) await this.wake(next.wake);
    await this.o.lanes.release(claimed);
  }

  /** Whether the job's lock still holds: extended, or confirmed recently enough (LOCK_RECHECK_MS). */
  private async holdsLock(job: Job<LaneJob>, token: string, lease: Lease): Promise<boolean> {
    const sentAt = performance.now();
    if (sentAt - lease.confirmedAt < LOCK_RECHECK_MS) return true;
    if ((await job.extendLock(token, LANE_LOCK_MS)) !== 1) return false;
    lease.confirmedAt = Math.max(lease.confirmedAt, sentAt);
    return true;
  }

  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      // Apart from the sweep: a scan of a large keyspace must not hold up its repairs.
      if (!this.claimantsSeeded && !this.seeding) this.seeding = this.seedClaimants();
      const claims = await this.restoreClaims();
      await this.restoreWake();
      this.o.logger.debug({ event: 'queue.swept', queue: this.o.name, ...claims });
    } catch (err) {
      this.o.logger.warn({ event: 'queue.sweep_failed', queue: this.o.name, err: (err as Error).message });
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Once a process: the claims of versions before the index join it (one scan per queue, ever,
   * by one worker at a time). Another worker scanning, or a failure, leaves it to a later sweep.
   */
  private async seedClaimants(): Promise<void> {
    try {
      const outcome = await this.o.lanes.seedClaimants(() => this.closing);
      if (outcome === 'busy' || outcome === 'interrupted') return;
      this.claimantsSeeded = true;
      if (outcome !== 'done-before')
        this.o.logger.info({ event: 'queue.claimants_seeded', queue: this.o.name, jobs: outcome.added });
    } catch (err) {
      this.o.logger.warn({
        event: 'queue.claimants_seed_failed',
        queue: this.o.name,
        err: (err as Error).message,
      });
    } finally {
      this.seeding = undefined;
    }
  }

  /** Adds the wake job of ready lanes whose producer died between queuing an item and adding the job. */
  private async restoreWake(): Promise<void> {
    const wake = await this.o.lanes.pendingWake();
    if (wake === undefined || (await this.queue.getJob(wakeJobId(wake)))) return;
    this.o.logger.warn({ event: 'queue.wake_restored', queue: this.o.name, wake });
    await this.wake(wake);
    this.o.onRepair?.('wake', 1);
  }

  /**
   * Hands back the lanes still claimed by a job that is over (gone, completed or failed for
   * good): such a lane would wait for nobody. A drain hands its lane back when it finds its job's
   * lock gone (`drain`); this is for whatever else leaves a claim behind. A claim is handed back
   * only when two sweeps in a row found it held by a job that was over, so a drain that has not
   * yet seen its lock gone (it looks at a chunk's end) has a sweep's interval to hand it back
   * itself. Handed back, a lane is ready under a new epoch, which fences any drainer left.
   */
  private async restoreClaims(): Promise<{ claimants: number; over: number }> {
    const seen = new Map<number, Set<string>>();
    const claimants = await this.o.lanes.claimants();
    let over = 0;
    for (const [wake, held] of claimants) {
      if (!(await wakeJobOver(this.queue, wake))) continue;
      over++;
      const before = this.overClaims.get(wake);
      const stranded = held.filter((claimed) => before?.has(claimed.entry));
      const fresh = held.filter((claimed) => !before?.has(claimed.entry));
      if (fresh.length > 0) seen.set(wake, new Set(fresh.map((claimed) => claimed.entry)));
      if (stranded.length === 0) continue;
      this.o.logger.warn({
        event: 'queue.claims_restored',
        queue: this.o.name,
        wake,
        lanes: stranded.map((claimed) => claimed.lane),
      });
      for (const claimed of stranded) await this.handBack(claimed);
      this.o.onRepair?.('claims', stranded.length);
    }
    this.overClaims = seen;
    return { claimants: claimants.size, over };
  }

  /** Stops draining: running drains hand their lanes on, then the connections close. */
  async stop(): Promise<void> {
    this.closing = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    // Let the wake mark go now, so ready lanes get a job (another worker's) at once.
    for (const r of this.lingering) void this.topUp(r, true);
    await this.worker?.close();
    await this.seeding;
    await this.queue.close();
  }

  /** What the queue holds now (`switchboard queue status`, `GET /api/admin/queue`). */
  status(): Promise<LaneQueueStatus> {
    return laneQueueStatus(this.o.name, this.o.lanes, this.queue);
  }

  async ping(): Promise<void> {
    await this.o.connection.ping();
  }
}
