import { randomUUID } from 'node:crypto';
import { DelayedError, type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { errorMessage, isTransient } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { logRedisOutages } from '../redis-outage.ts';
import { defineLuaCommands, type LuaCommand, readLua } from '../redis-scripts.ts';
import {
  delayOf,
  FAILED_JOBS_LISTED,
  type FailedJob,
  type JobHandler,
  type JsonValue,
  MAX_JOB_ATTEMPTS,
  NoHandlerError,
  RETRY_BASE_MS,
  type RepeatOptions,
  type ScheduleOptions,
  type Scheduler,
  type TransientRetryOptions,
  transientRetryDelay,
} from './scheduler.ts';

export const SCHEDULER_QUEUE = 'scheduled';

export interface BullmqSchedulerOptions extends TransientRetryOptions {
  /** Schedules, cancels and the id map; better not an auto-pipelining connection (see hub.ts). */
  redis: Redis;
  /** The worker opens its own blocking connection to this. */
  redisUrl: string;
  prefix: string;
  logger: Logger;
  /** Jobs run at once in this process. */
  concurrency?: number;
  /** How often a started scheduler re-adds schedules a crash left without their job (default 60 s). */
  reconcileMs?: number;
  /**
   * Tests only: runs between writing a schedule's id and adding its job, where a process can die
   * (a fault thrown here is that crash: nothing after it runs).
   */
  betweenIdAndJob?: () => Promise<void>;
}

/** A schedule on its way into BullMQ (`scheduler:adding`, by job id): enough to add its job again. */
interface Adding {
  id: string;
  name: string;
  payload: JsonValue;
  /** When it is due, epoch milliseconds. */
  runAt: number;
}

const DEFAULT_RECONCILE_MS = 60_000;

/** The caller's id of a `scheduler:adding` record; undefined for one that is not JSON. */
function recordedId(text: string): string | undefined {
  try {
    return (JSON.parse(text) as Adding).id;
  } catch {
    return undefined;
  }
}

interface JobData {
  /** The caller's id, when it gave one. */
  id?: string;
  payload: JsonValue;
  /** Runs of this job that failed because a dependency was away: started, but not counted. */
  transientFailures?: number;
}

/**
 * A worker that dies (SIGKILL) holds the job it was running this long before BullMQ's stall check
 * hands it to another worker; renewed every half of it while the worker lives. BullMQ's defaults
 * (30 s lock, 30 s check) left a job taken by a killed worker waiting 60–90 s: a broadcast whose
 * tick was in flight at the kill stood still that long (event-webhooks-cluster.test.ts). The same
 * figures as the lanes' (lane-runner.ts): at most ~20 s from the kill to the run elsewhere.
 */
export const SCHEDULER_LOCK_MS = 10_000;
export const SCHEDULER_STALL_CHECK_MS = 5_000;

/**
 * `bullmq-scheduler/release-id.lua`: deletes an id's entry only while it still names this job.
 * `bullmq-scheduler/replay-id.lua`: names a set-aside job's replay, unless the id names another job.
 */
export const SCHEDULER_COMMANDS: readonly LuaCommand[] = [
  {
    name: 'schedulerReleaseId',
    numberOfKeys: 1,
    lua: readLua(import.meta.url, './bullmq-scheduler/release-id.lua'),
  },
  {
    name: 'schedulerReplayId',
    numberOfKeys: 2,
    lua: readLua(import.meta.url, './bullmq-scheduler/replay-id.lua'),
  },
];

type ReleaseId = (idsKey: string, id: string, jobId: string) => Promise<number>;
type ReplayId = (
  idsKey: string,
  addingKey: string,
  id: string,
  failedJobId: string,
  jobId: string,
  adding: string,
) => Promise<number>;

/** BullMQ names each run of a repeating job `repeat:<scheduler id>:<time>`; one-off jobs are UUIDs or numbers. */
const REPEAT_JOB_ID = /^repeat:/;

/**
 * The scheduler on Redis: BullMQ delayed jobs (and job schedulers for repeating ones). BullMQ's
 * job lock makes each run happen in one worker; a worker that dies mid-job has it run again
 * elsewhere once the lock stalls.
 *
 * A caller's id maps, in one Redis hash, to the BullMQ job that currently stands for it (each
 * schedule makes a new BullMQ job, `<id>.<random>`). A job that fires while no longer named
 * there was replaced or cancelled and does nothing: so replacing or cancelling is right even
 * when BullMQ cannot remove the old job any more (it was just being picked up).
 *
 * Naming the job and adding it are two writes (BullMQ adds a job with a script of its own), and a
 * process can die between them: the id would name a job that never comes, and the schedule would
 * never fire (its previous job, if any, no longer counts either). So the same MULTI that names the
 * job also records what it is (`scheduler:adding`: name, payload, due time), cleared once BullMQ
 * has it; every started scheduler re-adds, at start and every `reconcileMs`, the recorded jobs that
 * their id still names. Adding a job id BullMQ already has does nothing, and a re-added job that
 * its id no longer names does nothing when it fires, so a re-add racing a live `schedule` is harmless.
 *
 * `attempt` is the run's start count (`attemptsStarted`): a run after a failure, and a run after
 * a worker died holding the job (a stall), each count one, as the table scheduler counts them.
 * A run that fails because a dependency is away (`isTransient`) is not counted: the job goes back
 * to delayed under its BullMQ id (`moveToDelayed`, which leaves `attemptsMade` alone, and
 * `DelayedError`, which tells the worker it is neither done nor failed), and its data counts it
 * (`transientFailures`), so `attempt` is `attemptsStarted` less those. BullMQ's own
 * `maxStartedAttempts` counts every start, so the five-start rule is this function's: a job
 * whose counted starts are spent (its last died with its worker) is set aside unrun. A run cut
 * off from Redis itself can neither move its job nor renew its lock: once Redis is back the stall
 * check hands the job on, and that start counts, as a run that died does.
 *
 * A one-off job set aside is a job of BullMQ's failed set (`removeOnFail`: the latest 1,000 are
 * kept), and its id goes on naming it: scheduling the id again replaces it there as it replaces a
 * pending job (the new job stands, the set-aside one is removed), as the table's row is replaced.
 * A run that fails for good after its id was scheduled again is not set aside: the newer job
 * stands for it. `replay` names a new job for the id in one script that first checks the id
 * still names the set-aside job (`replay-id.lua`), with the same `scheduler:adding` record a
 * schedule writes; so a replay racing the owner's new schedule never replaces the newer job.
 */
export function createBullmqScheduler(options: BullmqSchedulerOptions): Scheduler {
  const { redis, logger } = options;
  const prefix = `${options.prefix}bull`;
  const idsKey = `${options.prefix}scheduler:ids`;
  const addingKey = `${options.prefix}scheduler:adding`;
  const queue = new Queue<JobData>(SCHEDULER_QUEUE, { connection: redis, prefix });
  logRedisOutages(queue, logger, { error: 'scheduler.queue_error', recovered: 'scheduler.queue_recovered' });
  /** BullMQ's failed set: ids of the jobs set aside (and of repeating jobs' failed runs). */
  const failedKey = queue.toKey('failed');
  const handlers = new Map<string, JobHandler>();
  let worker: Worker<JobData> | undefined;
  let reconciler: NodeJS.Timeout | undefined;
  let reconciling: Promise<void> | undefined;

  defineLuaCommands(redis, SCHEDULER_COMMANDS);
  const release = (redis as unknown as { schedulerReleaseId: ReleaseId }).schedulerReleaseId.bind(redis);
  const releaseId = (id: string, jobId: string) => release(idsKey, id, jobId);
  const replayId = (redis as unknown as { schedulerReplayId: ReplayId }).schedulerReplayId.bind(redis);
  // The BullMQ job's id names nothing of the caller's id (which may hold a session's id): BullMQ's
  // event stream keeps job ids (up to ~10,000 events) after the job is gone, an erased one's too.
  const jobIdFor = () => randomUUID();

  async function process(job: Job<JobData>, token?: string): Promise<void> {
    const { id, payload } = job.data;
    if (id !== undefined && (await redis.hget(idsKey, id)) !== job.id) return; // replaced or cancelled
    const handler = handlers.get(job.name);
    const oneOff = job.repeatJobKey === undefined;
    const transientFailures = job.data.transientFailures ?? 0;
    // Every start counts, a stalled one's too, but for those that found a dependency away.
    const attempt = Math.max(1, job.attemptsStarted - transientFailures);
    if (oneOff && attempt > MAX_JOB_ATTEMPTS) {
      // Its fifth counted start died with its worker: set aside without a sixth, as on the table
      // (its id still naming it, see above).
      throw new UnrecoverableError('its worker died during its last run');
    }
    const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1) || attempt >= MAX_JOB_ATTEMPTS;
    try {
      if (!handler) throw new NoHandlerError(job.name);
      await handler(payload, { id: id ?? job.id!, name: job.name, attempt });
    } catch (err) {
      if (oneOff && isTransient(err)) {
        // A dependency is away: run it again later, this start not counted (see above).
        const failures = transientFailures + 1;
        const delayMs = transientRetryDelay(failures, options);
        logger.warn({
          event: 'scheduler.job_deferred',
          id: id ?? job.id,
          name: job.name,
          attempt,
          transientFailures: failures,
          delayMs,
          err: errorMessage(err),
        });
        await job.updateData({ ...job.data, transientFailures: failures });
        await job.moveToDelayed(Date.now() + delayMs, token);
        throw new DelayedError();
      }
      if (id !== undefined && last && (await redis.hget(idsKey, id)) !== job.id) {
        // Replaced or cancelled while it ran: nothing to set aside, the newer job (if any) stands.
        logger.warn({
          event: 'scheduler.job_failed',
          id,
          name: job.name,
          attempt,
          err: errorMessage(err),
          replaced: true,
        });
        return;
      }
      // The fifth start failed, whatever ended the earlier ones: set aside, as on the table.
      if (attempt >= MAX_JOB_ATTEMPTS) throw new UnrecoverableError((err as Error).message);
      throw err;
    }
    if (id !== undefined) await releaseId(id, job.id!);
  }

  const jobOptions = (delay: number) => ({
    delay,
    attempts: MAX_JOB_ATTEMPTS,
    backoff: { type: 'exponential', delay: RETRY_BASE_MS },
    removeOnComplete: true,
    removeOnFail: 1_000,
  });

  /** Adds the jobs that a schedule recorded and its id still names (see above); clears the record. */
  async function reconcile(): Promise<void> {
    const recorded = await redis.hgetall(addingKey);
    for (const [jobId, text] of Object.entries(recorded)) {
      let adding: Adding;
      try {
        adding = JSON.parse(text) as Adding;
      } catch {
        await redis.hdel(addingKey, jobId);
        continue;
      }
      if ((await redis.hget(idsKey, adding.id)) === jobId) {
        const job = await queue.add(
          adding.name,
          { id: adding.id, payload: adding.payload },
          { ...jobOptions(Math.max(0, adding.runAt - Date.now())), jobId },
        );
        logger.info({ event: 'scheduler.job_readded', id: adding.id, name: adding.name, jobId: job.id });
      }
      await redis.hdel(addingKey, jobId);
    }
  }

  function reconcileNow(): Promise<void> {
    reconciling ??= reconcile()
      .catch((err: Error) => logger.warn({ event: 'scheduler.reconcile_failed', err: err.message }))
      .finally(() => {
        reconciling = undefined;
      });
    return reconciling;
  }

  async function cancel(id: string): Promise<boolean> {
    const jobId = await redis.hget(idsKey, id);
    if (!jobId) return false;
    // A job set aside is kept for operators, as on the table (`forget` removes it).
    if ((await redis.zscore(failedKey, jobId)) !== null) return false;
    const released = Number(await releaseId(id, jobId)) > 0;
    await queue.remove(jobId).catch(() => 0);
    return released;
  }

  /**
   * The one-off jobs in BullMQ's failed set, the latest first: those set aside (`current`), and
   * those whose id was scheduled again since (`superseded`: left by a process that died while
   * scheduling, or set aside before ids went on naming such jobs), which nothing runs or lists.
   */
  async function setAside(): Promise<{ current: Job<JobData>[]; superseded: Job<JobData>[] }> {
    const jobs = ((await queue.getFailed(0, -1)) as (Job<JobData> | undefined)[]).filter(
      (job): job is Job<JobData> =>
        job?.id !== undefined && job.repeatJobKey === undefined && !REPEAT_JOB_ID.test(job.id),
    );
    const callerIds = jobs.flatMap((job) => (job.data.id === undefined ? [] : [job.data.id]));
    const jobIds = callerIds.length > 0 ? await redis.hmget(idsKey, ...callerIds) : [];
    /** The job each caller id names now (null: none). */
    const named = new Map(callerIds.map((id, i) => [id, jobIds[i] ?? null]));
    const current: Job<JobData>[] = [];
    const superseded: Job<JobData>[] = [];
    const seen = new Set<string>();
    for (const job of jobs) {
      const id = job.data.id;
      const stands = id === undefined || (!seen.has(id) && [null, job.id].includes(named.get(id) ?? null));
      if (id !== undefined) seen.add(id);
      (stands ? current : superseded).push(job);
    }
    return { current, superseded };
  }

  /** Puts a set-aside job back, due now (see above); false when its id names a newer job. */
  async function replayOne(job: Job<JobData>): Promise<boolean> {
    const { id, payload } = job.data;
    if (id === undefined) await queue.add(job.name, { payload }, jobOptions(0));
    else {
      const jobId = jobIdFor();
      const adding: Adding = { id, name: job.name, payload, runAt: Date.now() };
      if (!Number(await replayId(idsKey, addingKey, id, job.id!, jobId, JSON.stringify(adding)))) {
        await job.remove().catch(() => undefined);
        return false;
      }
      await queue.add(job.name, { id, payload }, { ...jobOptions(0), jobId });
      await redis.hdel(addingKey, jobId);
    }
    await job.remove().catch(() => undefined);
    return true;
  }

  const failedJob = (job: Job<JobData>): FailedJob => ({
    id: job.data.id ?? job.id!,
    name: job.name,
    attempts: Math.min(MAX_JOB_ATTEMPTS, job.attemptsStarted - (job.data.transientFailures ?? 0)),
    error: job.failedReason || null,
    failedAt: new Date(job.finishedOn ?? job.timestamp),
  });

  return {
    driver: 'bullmq',
    async schedule(name: string, payload: JsonValue, opts: ScheduleOptions = {}): Promise<string> {
      const delay = delayOf(opts);
      if (opts.id === undefined) {
        const job = await queue.add(name, { payload }, jobOptions(delay));
        return job.id!;
      }
      const jobId = jobIdFor();
      const adding: Adding = { id: opts.id, name, payload, runAt: Date.now() + delay };
      // The id names the new job before it exists: a job firing in between is the old one, which
      // is replaced either way. What the job is goes with it, for a re-add if this process dies
      // before BullMQ has the job.
      const [[, previous]] = (await redis
        .multi()
        .hget(idsKey, opts.id)
        .hset(idsKey, opts.id, jobId)
        .hset(addingKey, jobId, JSON.stringify(adding))
        .exec()) as [[Error | null, string | null]];
      await options.betweenIdAndJob?.();
      await queue.add(name, { id: opts.id, payload }, { ...jobOptions(delay), jobId });
      await redis.hdel(addingKey, jobId);
      if (previous) await queue.remove(previous).catch(() => 0);
      return opts.id;
    },
    cancel,
    async forget(ids: readonly string[]): Promise<number> {
      if (ids.length === 0) return 0;
      let forgotten = 0;
      for (const id of ids) if (await cancel(id)) forgotten++;
      // A job set aside as failed keeps its payload (removeOnFail), and its id no longer names it.
      const wanted = new Set(ids);
      for (const job of await queue.getFailed(0, -1))
        if (job?.data.id !== undefined && wanted.has(job.data.id)) {
          await job.remove().catch(() => undefined);
          await releaseId(job.data.id, job.id!);
          forgotten++;
        }
      // A schedule on its way into BullMQ (see above) holds the payload too.
      for (const [jobId, text] of Object.entries(await redis.hgetall(addingKey)))
        if (wanted.has(recordedId(text) ?? '')) await redis.hdel(addingKey, jobId);
      return forgotten;
    },
    async failed(limit = FAILED_JOBS_LISTED): Promise<FailedJob[]> {
      return (await setAside()).current.slice(0, limit).map(failedJob);
    },
    async countFailed(): Promise<number> {
      // The failed set's ids only (a scrape reads no job): a superseded job, rare (see `setAside`),
      // counts until a replay removes it.
      const ids = await redis.zrange(failedKey, '0', '-1');
      return ids.filter((id) => !REPEAT_JOB_ID.test(id)).length;
    },
    async replay(ids?: readonly string[]): Promise<number> {
      const wanted = ids && new Set(ids);
      const chosen = (job: Job<JobData>) => !wanted || wanted.has(job.data.id ?? job.id!);
      const { current, superseded } = await setAside();
      // Left behind by a newer job for their id: removed, as the table's row was replaced.
      for (const job of superseded.filter(chosen)) await job.remove().catch(() => undefined);
      let replayed = 0;
      for (const job of current.filter(chosen)) if (await replayOne(job)) replayed++;
      if (replayed > 0) logger.info({ event: 'scheduler.jobs_replayed', count: replayed });
      return replayed;
    },
    async repeat(id: string, name: string, everyMs: number, opts: RepeatOptions = {}): Promise<void> {
      // Every process calls this at start: only the first sets when the first run is.
      const existing = await queue.getJobScheduler(id);
      const startDate = existing ? undefined : Date.now() + (opts.firstDelayMs ?? everyMs);
      await queue.upsertJobScheduler(
        id,
        { every: everyMs, ...(startDate ? { startDate } : {}) },
        {
          name,
          data: { payload: opts.payload ?? null },
          opts: { removeOnComplete: true, removeOnFail: 100 },
        },
      );
    },
    handle(name: string, handler: JobHandler): void {
      handlers.set(name, handler);
    },
    async start(): Promise<void> {
      if (worker) return;
      worker = new Worker<JobData>(SCHEDULER_QUEUE, process, {
        connection: {
          url: options.redisUrl,
          maxRetriesPerRequest: null,
          connectionName: 'switchboard-scheduler-worker',
        } as never,
        prefix,
        concurrency: options.concurrency ?? 4,
        lockDuration: SCHEDULER_LOCK_MS,
        stalledInterval: SCHEDULER_STALL_CHECK_MS,
        // A stall is mostly a dead worker, not a bad job: BullMQ's default (1) failed a job for
        // good at its second stall (a broadcast's tick chain with it). A job that took down more
        // workers than a failing handler gets runs is set aside like one. A run twice (a stall
        // that was a worker stuck past its lock) is within the port's at-least-once promise.
        maxStalledCount: MAX_JOB_ATTEMPTS,
        // No `maxStartedAttempts`: it would count the starts that found a dependency away too.
        // `process` sets a job aside after five counted starts, however each ended.
      });
      logRedisOutages(worker, logger, {
        error: 'scheduler.worker_error',
        recovered: 'scheduler.worker_recovered',
      });
      worker.on('failed', (job, err) =>
        logger.warn({
          event:
            err.name === 'UnrecoverableError' || (job && job.attemptsMade >= (job.opts.attempts ?? 1))
              ? 'scheduler.job_failed'
              : 'scheduler.job_retry',
          id: job?.data.id ?? job?.id,
          name: job?.name,
          err: err.message,
        }),
      );
      await worker.waitUntilReady();
      await reconcileNow();
      reconciler = setInterval(() => void reconcileNow(), options.reconcileMs ?? DEFAULT_RECONCILE_MS);
      reconciler.unref();
    },
    async stop(): Promise<void> {
      if (reconciler) clearInterval(reconciler);
      reconciler = undefined;
      await reconciling;
      await worker?.close();
      worker = undefined;
      await queue.close();
    },
  };
}
