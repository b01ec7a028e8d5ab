import { randomUUID } from 'node:crypto';
import { errorMessage, isTransient } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { millis } from '../store/clock.ts';
import type { Db } from '../store/db.ts';
import { json } from '../store/records.ts';
import {
  delayOf,
  FAILED_JOBS_LISTED,
  type FailedJob,
  type JobHandler,
  type JsonValue,
  MAX_JOB_ATTEMPTS,
  RETRY_BASE_MS,
  type RepeatOptions,
  type ScheduleOptions,
  type Scheduler,
  type TransientRetryOptions,
  transientRetryDelay,
} from './scheduler.ts';

export interface TableSchedulerOptions extends TransientRetryOptions {
  db: Db;
  logger: Logger;
  /** How often due jobs are looked for (a job scheduled in this process also wakes it). */
  pollMs?: number;
  /** A claim holds this long without a heartbeat; a process that died loses its jobs after it. */
  leaseMs?: number;
  /** Jobs run at once in this process. */
  concurrency?: number;
}

interface ClaimedRow {
  id: string;
  name: string;
  payload: unknown;
  attempts: number;
  transient_failures: number;
  every_ms: number | null;
}

interface FailedRow {
  id: string;
  name: string;
  attempts: number;
  last_error: string | null;
  failed_at: Date | string;
}

const DEFAULT_POLL_MS = 1_000;
/**
 * How often the release of a run that found the database away is tried again while it stays
 * away (the release needs the database too). Short: a stopping scheduler waits for it.
 */
const RELEASE_RETRY_MS = 1_000;
const DEFAULT_LEASE_MS = 60_000;
const DEFAULT_CONCURRENCY = 4;

/**
 * The scheduler on a database table, polled by a timer: the embedded hub's (PGlite), and any hub
 * on PostgreSQL without Redis. A due job is claimed with `FOR UPDATE SKIP LOCKED` in the same
 * statement that stamps the claim, so however many processes poll, one of them gets it; the
 * claim is a lease renewed while the handler runs.
 *
 * `attempt` is the job's start count (`attempts`, stamped by the claim): a run after a failure,
 * and a run after the process holding it died (its lease ran out), each count one, as BullMQ's
 * `attemptsStarted` does on the other driver. A run that fails because a dependency is away
 * (`isTransient`) gives its start back (`attempts - 1`) and counts in `transient_failures`, which
 * spaces its retries. When that dependency is the database itself the release cannot be written
 * either: it is tried again every `RELEASE_RETRY_MS` while this scheduler runs and the claim is
 * still this run's (this process's polls leave the job be meanwhile), so the outage does not
 * count as a run that died, unless another process claims the job once its lease has run out.
 */
export function createTableScheduler(options: TableSchedulerOptions): Scheduler {
  const { db, logger } = options;
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const handlers = new Map<string, JobHandler>();
  const running = new Set<Promise<void>>();
  /** Jobs whose deferred release waits for the database here: this process's polls leave them be. */
  const releasing = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let started = false;
  let polling: Promise<void> | undefined;
  let pollAgain = false;

  async function claim(limit: number): Promise<{ token: string; rows: ClaimedRow[] }> {
    const token = randomUUID();
    // A one-off job started MAX_JOB_ATTEMPTS times whose last run died with its process (the lease
    // ran out) is set aside rather than started again: five starts at most, as on BullMQ.
    const { rows } = await db.query<ClaimedRow>(
      `WITH spent AS (
         UPDATE scheduled_jobs SET failed_at = now(), claim = NULL, locked_until = NULL,
           last_error = coalesce(last_error || '; ', '') || 'its process died during its last run'
         WHERE id IN (
           SELECT id FROM scheduled_jobs
           WHERE failed_at IS NULL AND run_at <= now() AND every_ms IS NULL AND attempts >= $5
             AND locked_until < now() AND name = ANY($3::text[]) AND NOT (id = ANY($6::text[]))
           FOR UPDATE SKIP LOCKED)
         RETURNING id)
       UPDATE scheduled_jobs
       SET claim = $1, locked_until = now() + ${millis('$2')}, attempts = attempts + 1
       WHERE id IN (
         SELECT id FROM scheduled_jobs
         WHERE failed_at IS NULL AND run_at <= now()
           AND (locked_until IS NULL OR locked_until < now())
           AND (every_ms IS NOT NULL OR attempts < $5)
           AND name = ANY($3::text[]) AND NOT (id = ANY($6::text[]))
         ORDER BY run_at LIMIT $4
         FOR UPDATE SKIP LOCKED)
       RETURNING id, name, payload, attempts, transient_failures, every_ms`,
      [token, leaseMs, [...handlers.keys()], limit, MAX_JOB_ATTEMPTS, [...releasing]],
    );
    return { token, rows };
  }

  async function run(row: ClaimedRow, token: string): Promise<void> {
    const handler = handlers.get(row.name);
    const heartbeat = setInterval(() => {
      db.query(
        `UPDATE scheduled_jobs SET locked_until = now() + ${millis('$2')} WHERE id = $1 AND claim = $3`,
        [row.id, leaseMs, token],
      ).catch((err: Error) =>
        logger.warn({ event: 'scheduler.heartbeat_failed', id: row.id, err: err.message }),
      );
    }, leaseMs / 3);
    heartbeat.unref();
    try {
      // A handler unregistered since the claim fails this run like any error would.
      if (!handler) throw new Error(`no handler for scheduled job "${row.name}"`);
      await handler(row.payload, { id: row.id, name: row.name, attempt: row.attempts });
      clearInterval(heartbeat);
      // `claim = $2`: a job replaced while it ran is a new job, and stays.
      await (row.every_ms === null
        ? db.query('DELETE FROM scheduled_jobs WHERE id = $1 AND claim = $2', [row.id, token])
        : db.query(
            `UPDATE scheduled_jobs SET run_at = now() + ${millis('every_ms')}, attempts = 0, claim = NULL,
               locked_until = NULL, last_error = NULL
             WHERE id = $1 AND claim = $2`,
            [row.id, token],
          ));
    } catch (err) {
      clearInterval(heartbeat);
      const message = errorMessage(err);
      if (row.every_ms === null && isTransient(err)) return defer(row, token, message);
      const last = row.every_ms === null && row.attempts >= MAX_JOB_ATTEMPTS;
      logger.warn({
        event: last ? 'scheduler.job_failed' : 'scheduler.job_retry',
        id: row.id,
        name: row.name,
        attempt: row.attempts,
        err: message,
      });
      // A repeating job tries again at its next run; a one-off one after a growing wait.
      const retryMs = row.every_ms ?? RETRY_BASE_MS * 2 ** (row.attempts - 1);
      await db
        .query(
          `UPDATE scheduled_jobs SET claim = NULL, locked_until = NULL, last_error = $3,
             failed_at = CASE WHEN $4::boolean THEN now() END,
             attempts = CASE WHEN every_ms IS NULL THEN attempts ELSE 0 END,
             run_at = now() + ${millis('$5')}
           WHERE id = $1 AND claim = $2`,
          [row.id, token, message, last, retryMs],
        )
        .catch((e: Error) => logger.warn({ event: 'scheduler.release_failed', id: row.id, err: e.message }));
    }
  }

  /** A run that found a dependency away: run again later, its start given back (see above). */
  async function defer(row: ClaimedRow, token: string, message: string): Promise<void> {
    const failures = row.transient_failures + 1;
    const delayMs = transientRetryDelay(failures, options);
    logger.warn({
      event: 'scheduler.job_deferred',
      id: row.id,
      name: row.name,
      attempt: row.attempts,
      transientFailures: failures,
      delayMs,
      err: message,
    });
    try {
      for (let tries = 1; ; tries++) {
        try {
          // `claim = $2`: a job replaced while it ran is a new job; one another process claimed
          // after this run's lease ran out is that process's now (its claim counted this run as died).
          await db.query(
            `UPDATE scheduled_jobs SET claim = NULL, locked_until = NULL, last_error = $3,
               attempts = attempts - 1, transient_failures = transient_failures + 1,
               run_at = now() + ${millis('$4')}
             WHERE id = $1 AND claim = $2`,
            [row.id, token, message, delayMs],
          );
          wakeIn(delayMs);
          return;
        } catch (err) {
          if (tries === 1)
            logger.warn({ event: 'scheduler.release_failed', id: row.id, err: errorMessage(err) });
          if (!started || !isTransient(err)) return;
          // Its lease may run out meanwhile: this process's own polls must not take it as died.
          releasing.add(row.id);
          await new Promise((resolve) => setTimeout(resolve, RELEASE_RETRY_MS));
        }
      }
    } finally {
      releasing.delete(row.id);
    }
  }

  async function pollOnce(): Promise<void> {
    for (;;) {
      const room = concurrency - running.size;
      if (!started || room <= 0 || handlers.size === 0) return;
      const { token, rows } = await claim(room);
      for (const row of rows) {
        const job = run(row, token).finally(() => {
          running.delete(job);
          // A slot is free: more may be due.
          if (started) void poll();
        });
        running.add(job);
      }
      if (rows.length < room) return;
    }
  }

  /** One poll at a time in this process; a wake during one polls once more after it. */
  function poll(): Promise<void> {
    if (polling) {
      pollAgain = true;
      return polling;
    }
    polling = pollOnce()
      .catch((err: Error) => logger.warn({ event: 'scheduler.poll_failed', err: err.message }))
      .finally(() => {
        polling = undefined;
        if (pollAgain && started) {
          pollAgain = false;
          void poll();
        }
      });
    return polling;
  }

  /** A job due before the next poll wakes this process at its time. */
  function wakeIn(ms: number): void {
    if (!started || ms >= pollMs) return;
    setTimeout(() => void poll(), ms).unref();
  }

  return {
    driver: 'table',
    async schedule(name: string, payload: JsonValue, opts: ScheduleOptions = {}): Promise<string> {
      const id = opts.id ?? randomUUID();
      const delay = delayOf(opts);
      // The database's clock decides when a job is due, so processes with skewed clocks agree.
      await db.query(
        `INSERT INTO scheduled_jobs (id, name, payload, run_at)
         VALUES ($1, $2, $3::jsonb, CASE WHEN $4::timestamptz IS NULL THEN now() + ${millis('$5')} ELSE $4::timestamptz END)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, payload = EXCLUDED.payload,
           run_at = EXCLUDED.run_at, every_ms = NULL, attempts = 0, transient_failures = 0, claim = NULL,
           locked_until = NULL, failed_at = NULL, last_error = NULL`,
        [id, name, json(payload), opts.at ?? null, delay],
      );
      wakeIn(delay);
      return id;
    },
    async cancel(id: string): Promise<boolean> {
      const { rowCount } = await db.query('DELETE FROM scheduled_jobs WHERE id = $1 AND failed_at IS NULL', [
        id,
      ]);
      return rowCount > 0;
    },
    async forget(ids: readonly string[]): Promise<number> {
      if (ids.length === 0) return 0;
      const { rowCount } = await db.query('DELETE FROM scheduled_jobs WHERE id = ANY($1::text[])', [
        [...ids],
      ]);
      return rowCount;
    },
    async failed(limit = FAILED_JOBS_LISTED): Promise<FailedJob[]> {
      const { rows } = await db.query<FailedRow>(
        `SELECT id, name, attempts, last_error, failed_at FROM scheduled_jobs
         WHERE failed_at IS NOT NULL AND every_ms IS NULL ORDER BY failed_at DESC, id LIMIT $1`,
        [limit],
      );
      return rows.map((r) => ({
        id: r.id,
        name: r.name,
        attempts: r.attempts,
        error: r.last_error,
        failedAt: new Date(r.failed_at),
      }));
    },
    async countFailed(): Promise<number> {
      const { rows } = await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM scheduled_jobs WHERE failed_at IS NOT NULL AND every_ms IS NULL',
      );
      return rows[0]?.n ?? 0;
    },
    async replay(ids?: readonly string[]): Promise<number> {
      // A job whose id was scheduled again since is that newer job (`failed_at` NULL): left alone.
      const { rows } = await db.query<{ id: string }>(
        `UPDATE scheduled_jobs SET failed_at = NULL, last_error = NULL, attempts = 0, transient_failures = 0,
           claim = NULL, locked_until = NULL, run_at = now()
         WHERE failed_at IS NOT NULL AND every_ms IS NULL AND ($1::text[] IS NULL OR id = ANY($1::text[]))
         RETURNING id`,
        [ids ? [...ids] : null],
      );
      if (rows.length > 0) logger.info({ event: 'scheduler.jobs_replayed', count: rows.length });
      wakeIn(0);
      return rows.length;
    },
    async repeat(id: string, name: string, everyMs: number, opts: RepeatOptions = {}): Promise<void> {
      // Every process calls this at start: an unchanged schedule keeps its next run, so restarts
      // neither postpone it forever nor run it early.
      await db.query(
        `INSERT INTO scheduled_jobs (id, name, payload, run_at, every_ms)
         VALUES ($1, $2, $3::jsonb, now() + ${millis('$4')}, $5)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, payload = EXCLUDED.payload,
           every_ms = EXCLUDED.every_ms, failed_at = NULL,
           run_at = CASE WHEN scheduled_jobs.every_ms = EXCLUDED.every_ms THEN scheduled_jobs.run_at
                         ELSE LEAST(scheduled_jobs.run_at, EXCLUDED.run_at) END`,
        [id, name, json(opts.payload ?? null), opts.firstDelayMs ?? everyMs, everyMs],
      );
      wakeIn(opts.firstDelayMs ?? everyMs);
    },
    handle(name: string, handler: JobHandler): void {
      handlers.set(name, handler);
      if (started) void poll();
    },
    async start(): Promise<void> {
      if (started) return;
      started = true;
      timer = setInterval(() => void poll(), pollMs);
      timer.unref();
      await poll();
    },
    async stop(): Promise<void> {
      started = false;
      if (timer) clearInterval(timer);
      await polling;
      await Promise.all([...running]);
    },
  };
}
