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
 * - A job with an id is unique: scheduling the same id again replaces the pending job (the later
 *   call wins: time and payload), and `cancel(id)` removes it. A job already running when it is
 *   replaced or cancelled finishes its run; the replacement still runs at its own time.
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
   * (another process took the job over). A replaced job starts at 1 again; every run of a
   * repeating job is 1 (a failed one is tried again at its next run, as 1).
   */
  attempt: number;
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
/** Retries wait 1 s, 2 s, 4 s, ... after a failed run. */
export const RETRY_BASE_MS = 1_000;

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
