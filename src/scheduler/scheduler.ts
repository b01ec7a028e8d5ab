/**
 * The durable scheduler port: work that runs later (idle sweeps, handoff wait timeouts,
 * scheduled sends, webhook retries). Two drivers implement it: BullMQ delayed jobs on Redis, and
 * a table polled by a timer for the embedded hub (PGlite) or a hub with PostgreSQL and no Redis.
 *
 * Guarantees, on both drivers:
 * - A job survives restarts: it lives in Redis or in the database, not in a process.
 * - A job runs in one process at a time, however many schedulers poll (a claim, then a lease).
 *   A process that dies mid-job loses its claim when the lease ends and another runs the job
 *   again: delivery is at least once, so a handler must be idempotent (most are: "end this
 *   session if it is still idle" is).
 * - A handler that throws is retried with backoff. A job is started at most `MAX_JOB_ATTEMPTS`
 *   times, however its runs ended (failed, or died with their process): when its last start
 *   fails or dies it is set aside as failed (kept for operators, never run again).
 * - A one-off job's run that fails because a dependency is away (`isTransient`: PostgreSQL or
 *   Redis unreachable, restarting, out of connections) does not count among those starts: the
 *   job is started again after `TRANSIENT_RETRY_BASE_MS`, doubling up to `TRANSIENT_RETRY_MAX_MS`
 *   apart, for as long as the dependency stays away (as the inbound queue retries such failures
 *   without end), each such failure logged once (`scheduler.job_deferred`). So an outage, however
 *   long, sets no job aside: its owner (a webhook lane's retry, a broadcast's tick, a scheduled
 *   send) goes on once the dependency is back. A run that cannot reach the scheduler's own store
 *   to say so may still count as one that died (see each driver).
 * - A job with an id is unique: scheduling the same id again replaces the pending job (the later
 *   call wins: time and payload), and `cancel(id)` removes it. A job already running when it is
 *   replaced or cancelled finishes its run; the replacement still runs at its own time.
 * - A job set aside as failed waits for an operator: `failed()` lists such jobs, `replay()` puts
 *   them back to run now with a fresh count (`switchboard scheduler failed|replay`). Scheduling its
 *   id again replaces it as it would a pending job (the owner's newer job stands: a replay leaves
 *   it alone); `cancel` leaves it; `forget` removes it.
 */

/** What a payload may hold: it is stored as JSON. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface ScheduleOptions {
  /** When to run: an absolute time, or a delay from now (`delayMs`). Now when both are absent. */
  at?: Date;
  delayMs?: number;
  /**
   * A unique id: scheduling again with it replaces the pending job (deduplication), and
   * `cancel(id)` removes it. Without one, every call schedules a job of its own.
   */
  id?: string;
}

export interface RepeatOptions {
  /** The first run waits this long (default: `everyMs`). */
  firstDelayMs?: number;
  payload?: JsonValue;
}

export interface JobInfo {
  /** The job's id: the caller's id when it gave one, a generated one otherwise. */
  id: string;
  name: string;
  /**
   * Which start of this job this run is, the same on both drivers: 1 on the first run; each run
   * after it counts one more, whether the one before failed (a retry) or died with its process
   * (another process took the job over). A run after one that failed because a dependency was
   * away is told the same number as that one (it did not count). A replaced job starts at 1
   * again; every run of a repeating job is 1 (a failed one is tried again at its next run, as 1).
   */
  attempt: number;
}

/**
 * A one-off job set aside as failed (`Scheduler.failed`): what an operator needs to decide on it.
 * Never its payload, which may hold what a person wrote or who they are.
 */
export interface FailedJob {
  /** The caller's id when it gave one (what `replay` takes), a generated one otherwise. */
  id: string;
  name: string;
  /** Its counted starts (`MAX_JOB_ATTEMPTS` but for a job a driver's own limits failed sooner). */
  attempts: number;
  /** Why its last run failed, as the driver kept it; null when it kept none. */
  error: string | null;
  /** When it was set aside. */
  failedAt: Date;
}

/**
 * Runs a job. The payload is what was scheduled, read back from JSON: treat it as outside data
 * and validate it (zod) before use.
 */
export type JobHandler = (payload: unknown, job: JobInfo) => Promise<void>;

export interface Scheduler {
  readonly driver: 'bullmq' | 'table';
  /** Schedules job `name` with `payload`; resolves once the job is durable, with its id. */
  schedule(name: string, payload: JsonValue, options?: ScheduleOptions): Promise<string>;
  /** Removes the pending job with this id; false when there was none. */
  cancel(id: string): Promise<boolean>;
  /**
   * Removes every job with one of these ids, pending or set aside as failed, payload and all (an
   * erasure: nothing of the person may stay); a run already under way finishes. How many went.
   */
  forget(ids: readonly string[]): Promise<number>;
  /** The one-off jobs set aside as failed, the latest first, at most `limit` of them. */
  failed(limit?: number): Promise<FailedJob[]>;
  /** How many one-off jobs are set aside as failed (the `/metrics` gauge: cheap, read at each scrape). */
  countFailed(): Promise<number>;
  /**
   * Puts jobs set aside as failed back, due now, with a fresh count of starts: those with these
   * ids (as `failed()` lists them), or all of them. A job whose id was scheduled again since is
   * not replayed: the newer job stands. How many were put back.
   */
  replay(ids?: readonly string[]): Promise<number>;
  /**
   * Runs job `name` every `everyMs`, under the unique `id` (every process may call this at start:
   * there is still one schedule, and each run goes to one process).
   */
  repeat(id: string, name: string, everyMs: number, options?: RepeatOptions): Promise<void>;
  /** Registers the handler of job `name` in this process (before or after `start`). */
  handle(name: string, handler: JobHandler): void;
  /** Starts running due jobs in this process (workers; a gateway only schedules). */
  start(): Promise<void>;
  /** Stops taking jobs and waits for the ones running here. */
  stop(): Promise<void>;
}

/** A job whose handler fails this many times is set aside as failed. */
export const MAX_JOB_ATTEMPTS = 5;
/** The most set-aside jobs `failed()` lists when not told (BullMQ keeps about this many). */
export const FAILED_JOBS_LISTED = 1_000;
/** Retries wait 1 s, 2 s, 4 s, ... after a failed run. */
export const RETRY_BASE_MS = 1_000;
/**
 * A run that failed because a dependency is away is retried after 1 s, 2 s, 4 s, ... and then
 * every minute while it stays away: soon after a blip, and one run (one log line) a minute per
 * job during a long outage. Such runs are not counted (see the port's guarantees above).
 */
export const TRANSIENT_RETRY_BASE_MS = 1_000;
export const TRANSIENT_RETRY_MAX_MS = 60_000;

/** How a driver spaces the retries of runs that found a dependency away (tests shorten them). */
export interface TransientRetryOptions {
  /** The wait after the first such failure (default `TRANSIENT_RETRY_BASE_MS`); doubles after each. */
  transientRetryBaseMs?: number;
  /** The longest wait (default `TRANSIENT_RETRY_MAX_MS`). */
  transientRetryMaxMs?: number;
}

/** The wait before the run after a job's `failures`-th failure for a dependency being away. */
export function transientRetryDelay(failures: number, options: TransientRetryOptions = {}): number {
  const base = options.transientRetryBaseMs ?? TRANSIENT_RETRY_BASE_MS;
  const max = options.transientRetryMaxMs ?? TRANSIENT_RETRY_MAX_MS;
  return Math.min(max, base * 2 ** Math.min(Math.max(0, failures - 1), 30));
}

/** When a job scheduled with `options` is due, in milliseconds from now (never negative). */
export function delayOf(options: ScheduleOptions, now = Date.now()): number {
  if (options.at) return Math.max(0, options.at.getTime() - now);
  return Math.max(0, options.delayMs ?? 0);
}

export class NoHandlerError extends Error {
  override name = 'NoHandlerError';
  constructor(jobName: string) {
    super(`no handler for scheduled job "${jobName}" in this process`);
  }
}
