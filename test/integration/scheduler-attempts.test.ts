import { spawn } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../src/logger.ts';
import { createBullmqScheduler, SCHEDULER_QUEUE } from '../../src/scheduler/bullmq-scheduler.ts';
import { MAX_JOB_ATTEMPTS, type Scheduler } from '../../src/scheduler/scheduler.ts';
import { createTableScheduler } from '../../src/scheduler/table-scheduler.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { createTestDatabase, silentLogger, type TestDatabase } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';

/**
 * `JobInfo.attempt` on both drivers, from one table of cases: what each run of a job does, and
 * the attempt numbers its handler must see. `die`: the run's process is SIGKILLed mid-run (a
 * process of its own, started from the build), and another process takes the job over. `away`:
 * the run fails because a dependency is away (an `ECONNREFUSED`, as the pg and ioredis clients
 * throw when the server is down): not counted, however many times.
 */
type RunOutcome = 'ok' | 'throw' | 'die' | 'away';

interface AttemptCase {
  case: string;
  /** What the runs do, in order (a `die` only first: the dying process makes the first run). */
  runs: RunOutcome[];
  /** The attempt each run is told. */
  attempts: number[];
  /** A repeating job (every 300 ms) rather than a one-off one. */
  repeat?: boolean;
  /** Scheduled again under its id after its first run. */
  replacedAfterFirst?: boolean;
  /** Set aside as failed at the end (and never run again). */
  setAside?: boolean;
}

const throwsEvery = Array.from({ length: MAX_JOB_ATTEMPTS }, () => 'throw' as const);
/** More dependency-away runs in a row than a job has starts. */
const awayMoreThanStarts = Array.from({ length: MAX_JOB_ATTEMPTS + 2 }, () => 'away' as const);
/** The tests' retry spacing after a dependency-away run (the hub's: 1 s doubling up to a minute). */
const TRANSIENT_RETRY = { transientRetryBaseMs: 50, transientRetryMaxMs: 200 };

const ATTEMPT_CASES: AttemptCase[] = [
  { case: 'a job that succeeds at once', runs: ['ok'], attempts: [1] },
  { case: 'a job that fails twice, then succeeds', runs: ['throw', 'throw', 'ok'], attempts: [1, 2, 3] },
  {
    case: 'a job that fails every run: set aside after its fifth',
    runs: throwsEvery,
    attempts: throwsEvery.map((_, i) => i + 1),
    setAside: true,
  },
  {
    case: 'a job whose process dies mid-run: the run elsewhere counts on',
    runs: ['die', 'throw', 'ok'],
    attempts: [1, 2, 3],
  },
  {
    case: 'a job replaced after a failed run: the replacement starts at 1',
    runs: ['throw', 'ok'],
    attempts: [1, 1],
    replacedAfterFirst: true,
  },
  {
    case: 'a job whose runs find a dependency away more times than it has starts: it runs once it is back',
    runs: [...awayMoreThanStarts, 'ok'],
    attempts: [...awayMoreThanStarts, 'ok'].map(() => 1),
  },
  {
    case: 'failures count, runs that find a dependency away do not',
    runs: ['throw', 'away', 'away', 'throw', 'away', 'ok'],
    attempts: [1, 2, 2, 2, 3, 3],
  },
  {
    case: 'a job that fails every run for a reason of its own: set aside after its fifth, the away runs between not counted',
    runs: ['throw', 'away', 'throw', 'away', 'away', 'throw', 'throw', 'throw'],
    attempts: [1, 2, 2, 3, 3, 3, 4, 5],
    setAside: true,
  },
  {
    case: 'a repeating job: every run is 1, a run after a failed one too',
    runs: ['throw', 'ok', 'ok'],
    attempts: [1, 1, 1],
    repeat: true,
  },
];

interface AttemptDriver {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A scheduler of its own, in this process (for a case: its own scope), logging to `logger`. */
  open(scope: string, logger?: Logger): Promise<{ scheduler: Scheduler; close(): Promise<void> }>;
  /** The child process's scheduler (module and arguments) for the same scope. */
  child(scope: string): { env: Record<string, string>; create: string };
  /** Whether the job with this id is set aside as failed. */
  setAside(scope: string, id: string): Promise<boolean>;
}

function tableDriver(): AttemptDriver & { db(): Db } {
  let test: TestDatabase;
  let db: Db;
  const openDb = () => openPostgres({ url: test.url, poolSize: 4, logger: silentLogger });
  return {
    name: 'the table scheduler (PostgreSQL)',
    async setup() {
      test = await createTestDatabase();
      db = openDb();
      await migrate(db);
    },
    async teardown() {
      await db?.close();
      await test?.drop();
    },
    db: () => db,
    async open(_scope, logger = silentLogger) {
      const own = openDb();
      const scheduler = createTableScheduler({
        db: own,
        logger,
        pollMs: 100,
        leaseMs: 600,
        ...TRANSIENT_RETRY,
      });
      return {
        scheduler,
        async close() {
          await scheduler.stop();
          await own.close();
        },
      };
    },
    child: () => ({
      env: { DB_URL: test.url },
      create: `
        const { createTableScheduler } = await import(${moduleUrl('dist/src/scheduler/table-scheduler.js')});
        const { openPostgres } = await import(${moduleUrl('dist/src/store/postgres.js')});
        const db = openPostgres({ url: process.env.DB_URL, poolSize: 2, logger: silent });
        const scheduler = createTableScheduler({ db, logger: silent, pollMs: 100, leaseMs: 600 });`,
    }),
    async setAside(_scope, id) {
      const { rows } = await db.query<{ failed: boolean }>(
        'SELECT failed_at IS NOT NULL AS failed FROM scheduled_jobs WHERE id = $1',
        [id],
      );
      return rows[0]?.failed === true;
    },
  };
}

function bullmqDriver(): AttemptDriver {
  const { prefix, cleanup } = testRedisPrefix();
  const scoped = (scope: string) => `${prefix}${scope}:`;
  return {
    name: 'the BullMQ scheduler (Redis)',
    async setup() {},
    teardown: cleanup,
    async open(scope, logger = silentLogger) {
      const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
      const scheduler = createBullmqScheduler({
        redis,
        redisUrl: TEST_REDIS_URL,
        prefix: scoped(scope),
        logger,
        ...TRANSIENT_RETRY,
      });
      return {
        scheduler,
        async close() {
          await scheduler.stop();
          redis.disconnect();
        },
      };
    },
    child: (scope) => ({
      env: { URL: TEST_REDIS_URL, PREFIX: scoped(scope) },
      create: `
        const { Redis } = await import('ioredis');
        const { createBullmqScheduler } = await import(${moduleUrl('dist/src/scheduler/bullmq-scheduler.js')});
        const scheduler = createBullmqScheduler({
          redis: new Redis(process.env.URL, { maxRetriesPerRequest: null }),
          redisUrl: process.env.URL,
          prefix: process.env.PREFIX,
          logger: silent,
        });`,
    }),
    async setAside(scope, id) {
      const queue = new Queue(SCHEDULER_QUEUE, {
        connection: { url: TEST_REDIS_URL } as never,
        prefix: `${scoped(scope)}bull`,
      });
      try {
        return (await queue.getFailed()).some((job) => (job.data as { id?: string }).id === id);
      } finally {
        await queue.close();
      }
    },
  };
}

const moduleUrl = (file: string) => JSON.stringify(pathToFileURL(path.join(REPO_ROOT, file)).href);

/** Starts a process that schedules job `name` under `id`, takes its first run and is SIGKILLed in it. */
async function dieInFirstRun(driver: AttemptDriver, scope: string, name: string, id: string): Promise<void> {
  const { env, create } = driver.child(scope);
  const script = `
    const silent = { info() {}, warn() {}, error() {}, debug() {} };
    ${create}
    scheduler.handle(${JSON.stringify(name)}, (_payload, job) => {
      process.stdout.write('claimed ' + job.attempt + '\\n');
      return new Promise(() => undefined);
    });
    await scheduler.start();
    await scheduler.schedule(${JSON.stringify(name)}, null, { id: ${JSON.stringify(id)} });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    await until(
      () => out,
      (o) => o.includes('claimed'),
      30_000,
    );
  } finally {
    child.kill('SIGKILL');
  }
  await exited;
  expect(out.trim()).toBe('claimed 1');
}

for (const driver of [tableDriver(), bullmqDriver()]) {
  describe(`scheduled jobs' attempt numbers: ${driver.name}`, () => {
    beforeAll(() => driver.setup());
    afterAll(() => driver.teardown());

    it.each(ATTEMPT_CASES.map((c, i) => ({ ...c, n: i })))(
      '$case',
      async (c) => {
        const scope = `case${c.n}`;
        const name = `attempts-${c.n}`;
        const id = `attempts:${c.n}`;
        const seen: number[] = [];
        const first = c.runs[0] === 'die' ? 1 : 0;
        if (first) {
          await dieInFirstRun(driver, scope, name, id);
          seen.push(1);
        }
        const logs = capturingLogger();
        const opened = await driver.open(scope, logs.logger);
        try {
          const { scheduler } = opened;
          let replaced = false;
          scheduler.handle(name, async (_payload, job) => {
            seen.push(job.attempt);
            const outcome = c.runs[seen.length - 1];
            if (c.replacedAfterFirst && !replaced) {
              replaced = true;
              await scheduler.schedule(name, 'again', { id, delayMs: 200 });
            }
            if (outcome === 'away')
              throw Object.assign(new Error(`run ${seen.length}: connect ECONNREFUSED 127.0.0.1:5432`), {
                code: 'ECONNREFUSED',
              });
            if (outcome !== 'ok') throw new Error(`run ${seen.length} fails`);
          });
          await scheduler.start();
          if (!first) {
            if (c.repeat) await scheduler.repeat(id, name, 300, { firstDelayMs: 50 });
            else await scheduler.schedule(name, null, { id });
          }
          await until(
            () => seen.length,
            (n) => n >= c.runs.length,
            45_000,
          );
          if (c.setAside) {
            await until(() => driver.setAside(scope, id), Boolean, 20_000);
            // Set aside: a later job (due well after any retry would be) runs, this one no more.
            const later: string[] = [];
            scheduler.handle(`${name}-later`, async () => {
              later.push('ran');
            });
            await scheduler.schedule(`${name}-later`, null, { delayMs: 1_500 });
            await until(
              () => later.length,
              (n) => n > 0,
              20_000,
            );
          }
          expect(seen.slice(0, c.runs.length)).toEqual(c.attempts);
          if (!c.repeat) expect(seen).toHaveLength(c.runs.length);
          // Each run that found the dependency away is one warning, naming the job.
          const deferred = logs.lines.filter((l) => l.event === 'scheduler.job_deferred');
          expect(deferred.map((l) => l.id)).toEqual(c.runs.filter((r) => r === 'away').map(() => id));
        } finally {
          await opened.close();
        }
      },
      90_000,
    );
  });
}

describe('the table scheduler: a job whose fifth start died with its process', () => {
  const driver = tableDriver();
  beforeAll(() => driver.setup());
  afterAll(() => driver.teardown());

  it('is set aside, not started a sixth time (as on BullMQ)', async () => {
    const opened = await driver.open('spent');
    try {
      const seen: [string, number][] = [];
      opened.scheduler.handle('spent', async (_payload, job) => {
        seen.push([job.id, job.attempt]);
      });
      await opened.scheduler.schedule('spent', null, { id: 'spent:5', delayMs: 60_000 });
      await opened.scheduler.schedule('spent', null, { id: 'spent:4', delayMs: 60_000 });
      // What the claims of runs whose processes died leave: five starts (spent:5), four (spent:4).
      await driver.db().query(
        `UPDATE scheduled_jobs SET run_at = now(), locked_until = now() - interval '1 second',
           claim = gen_random_uuid(), attempts = CASE id WHEN 'spent:5' THEN 5 ELSE 4 END`,
      );
      await opened.scheduler.start();
      await until(
        () => seen.length,
        (n) => n > 0,
        20_000,
      );
      await until(() => driver.setAside('spent', 'spent:5'), Boolean, 20_000);
      expect(seen).toEqual([['spent:4', 5]]);
      const { rows } = await driver
        .db()
        .query<{ last_error: string }>(`SELECT last_error FROM scheduled_jobs WHERE id = 'spent:5'`);
      expect(rows).toEqual([{ last_error: 'its process died during its last run' }]);
    } finally {
      await opened.close();
    }
  });
});
