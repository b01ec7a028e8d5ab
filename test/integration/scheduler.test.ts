import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BullmqSchedulerOptions,
  createBullmqScheduler,
  SCHEDULER_LOCK_MS,
  SCHEDULER_STALL_CHECK_MS,
} from '../../src/scheduler/bullmq-scheduler.ts';
import type { JobInfo, Scheduler } from '../../src/scheduler/scheduler.ts';
import { createTableScheduler } from '../../src/scheduler/table-scheduler.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPglite } from '../../src/store/pglite.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { createTestDatabase, silentLogger, type TestDatabase, tempDir } from '../helpers/database.ts';
import { freePort } from '../helpers/free-port.ts';
import { REPO_ROOT } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { TestPostgresServer } from '../helpers/postgres-server.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';

/** A scheduler on a connection of its own (a process of its own, as far as the store can tell). */
interface Opened {
  scheduler: Scheduler;
  /** Stops the scheduler and closes its connections. */
  close(): Promise<void>;
}

interface Driver {
  name: string;
  /** Whether two schedulers can share the store (PGlite is one process's database). */
  shared: boolean;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  open(): Promise<Opened>;
}

/** The table scheduler on `db`; closing it closes `db`. */
function openTable(db: Db): Opened {
  const scheduler = createTableScheduler({ db, logger: silentLogger, pollMs: 100 });
  return {
    scheduler,
    async close() {
      await scheduler.stop();
      await db.close();
    },
  };
}

function postgresDriver(): Driver & { openDb(): Db } {
  let test: TestDatabase;
  const openDb = () => openPostgres({ url: test.url, poolSize: 4, logger: silentLogger });
  return {
    name: 'the table on PostgreSQL',
    shared: true,
    async setup() {
      test = await createTestDatabase();
      const db = openDb();
      await migrate(db);
      await db.close();
    },
    async teardown() {
      await test.drop();
    },
    openDb,
    open: async () => openTable(openDb()),
  };
}

function pgliteDriver(): Driver {
  let dir: string;
  return {
    name: 'the table on PGlite',
    shared: false,
    async setup() {
      dir = await tempDir('sbt-scheduler-');
    },
    async teardown() {
      await fs.rm(dir, { recursive: true, force: true });
    },
    async open() {
      const db = await openPglite(dir);
      await migrate(db);
      return openTable(db);
    },
  };
}

function bullmqDriver(): Driver {
  const { prefix, cleanup } = testRedisPrefix();
  return {
    name: 'BullMQ on Redis',
    shared: true,
    async setup() {},
    teardown: cleanup,
    open: async () => openBullmq(prefix),
  };
}

/** A BullMQ scheduler under `prefix` on a connection of its own (a process of its own, to Redis). */
function openBullmq(
  prefix: string,
  options: Partial<BullmqSchedulerOptions> = {},
): Opened & { redis: Redis } {
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  const scheduler = createBullmqScheduler({
    redis,
    redisUrl: TEST_REDIS_URL,
    prefix,
    logger: silentLogger,
    ...options,
  });
  return {
    scheduler,
    redis,
    async close() {
      await scheduler.stop();
      redis.disconnect();
    },
  };
}

interface Run {
  payload: unknown;
  job: JobInfo;
  by: string;
}

/** Records every run of job `name` in `runs`, tagged with which scheduler ran it. */
function record(
  scheduler: Scheduler,
  name: string,
  runs: Run[],
  by: string,
  work?: (run: Run) => Promise<void>,
) {
  scheduler.handle(name, async (payload, job) => {
    const run = { payload, job, by };
    runs.push(run);
    await work?.(run);
  });
}

const runsOf = (runs: Run[], id: string) => runs.filter((r) => r.job.id === id);

/**
 * After a process died holding job `hang`: starts the survivor's scheduler and waits (up to
 * `withinMs`) until it has run the job; its runs.
 */
async function survivorRuns(survivor: Scheduler, withinMs: number): Promise<Run[]> {
  const runs: Run[] = [];
  record(survivor, 'hang', runs, 'survivor');
  await survivor.start();
  await until(
    () => runs.length,
    (n) => n > 0,
    withinMs,
  );
  return runs;
}

for (const driver of [postgresDriver(), pgliteDriver(), bullmqDriver()]) {
  describe(`the durable scheduler: ${driver.name}`, () => {
    let one: Opened;
    const runs: Run[] = [];

    beforeAll(async () => {
      await driver.setup();
      one = await driver.open();
      record(one.scheduler, 'note', runs, 'one');
      await one.scheduler.start();
    });
    afterAll(async () => {
      await one?.close();
      await driver.teardown();
    });

    it('runs a job once, after its delay or at its time, with its payload', async () => {
      const scheduled = Date.now();
      const later = await one.scheduler.schedule('note', { text: 'later', n: [1, 2] }, { delayMs: 300 });
      const at = await one.scheduler.schedule('note', { text: 'at' }, { at: new Date(Date.now() + 200) });
      const now = await one.scheduler.schedule('note', 'now');
      await until(() => [later, at, now].every((id) => runsOf(runs, id).length > 0), Boolean, 20_000);
      expect(runsOf(runs, later)).toEqual([
        { payload: { text: 'later', n: [1, 2] }, job: { id: later, name: 'note', attempt: 1 }, by: 'one' },
      ]);
      expect(runsOf(runs, at).map((r) => r.payload)).toEqual([{ text: 'at' }]);
      expect(runsOf(runs, now).map((r) => r.payload)).toEqual(['now']);
      // Not before its time (the store's clock decides; a few ms of skew at most between them here).
      expect(runs.findIndex((r) => r.job.id === later)).toBeGreaterThan(
        runs.findIndex((r) => r.job.id === now),
      );
      expect(Date.now() - scheduled).toBeGreaterThanOrEqual(250);
    });

    it('a job with an id is unique: scheduling it again replaces it, cancelling removes it', async () => {
      const replaced = `wait:${driver.name}:replaced`;
      await one.scheduler.schedule('note', 'first', { id: replaced, delayMs: 400 });
      await one.scheduler.schedule('note', 'second', { id: replaced, delayMs: 600 });
      const cancelled = `wait:${driver.name}:cancelled`;
      await one.scheduler.schedule('note', 'never', { id: cancelled, delayMs: 300 });
      expect(await one.scheduler.cancel(cancelled)).toBe(true);
      expect(await one.scheduler.cancel(cancelled)).toBe(false);
      expect(await one.scheduler.cancel('no such job')).toBe(false);
      // The signal that both times have passed: a job due after them ran.
      const after = await one.scheduler.schedule('note', 'after', { delayMs: 1_200 });
      await until(
        () => runsOf(runs, after).length,
        (n) => n > 0,
        20_000,
      );
      expect(runsOf(runs, replaced).map((r) => r.payload)).toEqual(['second']);
      expect(runsOf(runs, cancelled)).toEqual([]);
      // Once it has run, the id is free again.
      await one.scheduler.schedule('note', 'third', { id: replaced });
      await until(
        () => runsOf(runs, replaced).length,
        (n) => n === 2,
        20_000,
      );
      expect(runsOf(runs, replaced).map((r) => r.payload)).toEqual(['second', 'third']);
    });

    it('retries a failing job with backoff, telling the handler which attempt it is', async () => {
      const attempts: number[] = [];
      one.scheduler.handle('flaky', async (_payload, job) => {
        attempts.push(job.attempt);
        if (job.attempt < 3) throw new Error(`attempt ${job.attempt} fails`);
      });
      await one.scheduler.schedule('flaky', null, { id: `flaky:${driver.name}` });
      await until(
        () => attempts.length,
        (n) => n === 3,
        30_000,
      );
      // A success ends it: a fourth run would come within a second.
      const after = await one.scheduler.schedule('note', 'after flaky', { delayMs: 1_500 });
      await until(
        () => runsOf(runs, after).length,
        (n) => n > 0,
        20_000,
      );
      expect(attempts).toEqual([1, 2, 3]);
    });

    it('repeats a job every interval, one schedule however many processes declare it', async () => {
      const ticks: Run[] = [];
      record(one.scheduler, 'tick', ticks, 'one');
      await one.scheduler.repeat('ticker', 'tick', 300, { firstDelayMs: 100, payload: { every: 300 } });
      await one.scheduler.repeat('ticker', 'tick', 300, { firstDelayMs: 100, payload: { every: 300 } });
      await until(
        () => ticks.length,
        (n) => n >= 3,
        20_000,
      );
      expect(ticks.every((t) => JSON.stringify(t.payload) === '{"every":300}')).toBe(true);
    });

    it('a pending job survives a restart: a new process runs it', async () => {
      const later = await one.scheduler.schedule('note', 'across a restart', { delayMs: 1_500 });
      await one.close();
      one = await driver.open();
      record(one.scheduler, 'note', runs, 'restarted');
      await one.scheduler.start();
      await until(
        () => runsOf(runs, later).length,
        (n) => n > 0,
        20_000,
      );
      expect(runsOf(runs, later).map((r) => [r.payload, r.by])).toEqual([['across a restart', 'restarted']]);
    });

    if (driver.shared) {
      it('two schedulers on two connections racing for the same jobs run each one once', async () => {
        const two = await driver.open();
        try {
          const raced: Run[] = [];
          // A slow handler keeps a job claimed while the other scheduler polls.
          const slow = () => new Promise<void>((r) => setTimeout(r, 30));
          record(one.scheduler, 'race', raced, 'one', slow);
          record(two.scheduler, 'race', raced, 'two', slow);
          // Either process may take the closing 'note' job (BullMQ hands a job to any worker of the
          // queue), so both must know it, as every worker of a hub knows every job.
          record(two.scheduler, 'note', runs, 'two');
          await two.scheduler.start();
          const ids: string[] = [];
          // Half scheduled by each, some with ids, all due at about the same time.
          for (let i = 0; i < 40; i++) {
            const by = i % 2 === 0 ? one : two;
            ids.push(
              await by.scheduler.schedule(
                'race',
                i,
                i % 4 < 2 ? { delayMs: 300 } : { id: `race:${i}`, delayMs: 300 },
              ),
            );
          }
          await until(
            () => new Set(raced.map((r) => r.job.id)).size,
            (n) => n === ids.length,
            30_000,
          );
          // Every job has run; none twice (a later run would follow within a poll).
          const after = await one.scheduler.schedule('note', 'after the race', { delayMs: 800 });
          await until(
            () => runsOf(runs, after).length,
            (n) => n > 0,
            20_000,
          );
          expect(raced.map((r) => r.job.id).sort()).toEqual([...ids].sort());
          expect(new Set(raced.map((r) => r.by))).toEqual(new Set(['one', 'two']));
        } finally {
          await two.close();
        }
      });

      it('a repeating job declared by two processes runs once per interval', async () => {
        const two = await driver.open();
        try {
          const ticks: Run[] = [];
          const overlapping: string[] = [];
          let inRun = 0;
          const work = async (run: Run) => {
            if (++inRun > 1) overlapping.push(run.by);
            await new Promise((r) => setTimeout(r, 50));
            inRun--;
          };
          record(one.scheduler, 'beat', ticks, 'one', work);
          record(two.scheduler, 'beat', ticks, 'two', work);
          await one.scheduler.repeat('beat', 'beat', 400, { firstDelayMs: 100 });
          await two.scheduler.repeat('beat', 'beat', 400, { firstDelayMs: 100 });
          await two.scheduler.start();
          await until(
            () => ticks.length,
            (n) => n >= 4,
            20_000,
          );
          expect(overlapping).toEqual([]);
        } finally {
          await two.close();
        }
      });
    }
  });
}

describe('the table scheduler: a process that dies mid-job', () => {
  const driver = postgresDriver();
  beforeAll(() => driver.setup());
  afterAll(() => driver.teardown());

  it('loses its claim when the lease ends, and another process runs the job', async () => {
    const dyingDb = driver.openDb();
    const dying = createTableScheduler({ db: dyingDb, logger: silentLogger, pollMs: 100, leaseMs: 600 });
    let claimed = false;
    // Never finishes: the process "dies" holding the job.
    dying.handle('hang', () => {
      claimed = true;
      return new Promise<void>(() => undefined);
    });
    await dying.start();
    await dying.schedule('hang', { n: 1 }, { id: 'hang:1' });
    await until(() => claimed, Boolean, 20_000);
    // Its connections go: no more heartbeats.
    await dyingDb.close();

    const db = driver.openDb();
    const survivor = createTableScheduler({ db, logger: silentLogger, pollMs: 100, leaseMs: 600 });
    try {
      const runs = await survivorRuns(survivor, 20_000);
      expect(runs.map((r) => [r.job.id, r.job.attempt, r.payload])).toEqual([['hang:1', 2, { n: 1 }]]);
      // Done: the job is gone.
      await until(
        async () => (await db.query('SELECT id FROM scheduled_jobs WHERE id = $1', ['hang:1'])).rowCount,
        (n) => n === 0,
      );
    } finally {
      await survivor.stop();
      await db.close();
    }
  });
});

describe('BullMQ on Redis: a process SIGKILLed mid-job', () => {
  const { prefix, cleanup } = testRedisPrefix();
  afterAll(() => cleanup());

  // The process runs the build (dist/, brought up to date by the global setup) and dies holding the
  // job, as a worker does at a SIGKILL: no lock renewal, no acknowledgement.
  const dyingScript = `
    const { Redis } = await import('ioredis');
    const { createBullmqScheduler } = await import(${JSON.stringify(
      pathToFileURL(path.join(REPO_ROOT, 'dist/src/scheduler/bullmq-scheduler.js')).href,
    )});
    const silent = { info() {}, warn() {}, error() {}, debug() {} };
    const scheduler = createBullmqScheduler({
      redis: new Redis(process.env.URL, { maxRetriesPerRequest: null }),
      redisUrl: process.env.URL,
      prefix: process.env.PREFIX,
      logger: silent,
    });
    scheduler.handle('hang', () => {
      process.stdout.write('claimed\\n');
      return new Promise(() => undefined);
    });
    await scheduler.start();
    await scheduler.schedule('hang', { n: 1 }, { id: 'hang:1' });
  `;

  it('another process runs the job again within ~20 s (lock and stall check), not BullMQ’s 60–90 s', async () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', dyingScript], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', URL: TEST_REDIS_URL, PREFIX: prefix },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let claimed = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('claimed')) claimed = true;
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await until(() => claimed, Boolean, 30_000);
    } finally {
      child.kill('SIGKILL');
    }
    await exited;
    const killedAt = Date.now();

    const { scheduler: survivor, close } = openBullmq(prefix);
    try {
      // The lock lapses at most SCHEDULER_LOCK_MS after the kill; two stall checks later
      // (SCHEDULER_STALL_CHECK_MS each, one may be skipped as another process's ran) it is moved.
      const runs = await survivorRuns(survivor, SCHEDULER_LOCK_MS + 3 * SCHEDULER_STALL_CHECK_MS + 5_000);
      // The run after a stall is the second start (as on the table: scheduler-attempts.test.ts).
      expect(runs.map((r) => [r.job.id, r.payload, r.by, r.job.attempt])).toEqual([
        ['hang:1', { n: 1 }, 'survivor', 2],
      ]);
      expect(Date.now() - killedAt).toBeLessThan(SCHEDULER_LOCK_MS + 3 * SCHEDULER_STALL_CHECK_MS + 5_000);
    } finally {
      await close();
    }
  }, 90_000);
});

describe('BullMQ on Redis: a process that dies between naming a job and adding it', () => {
  const { prefix, cleanup } = testRedisPrefix();
  const opened: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const close of opened) await close();
    await cleanup();
  });

  /** A scheduler on a connection of its own; `crash` makes its schedules die between the two writes. */
  function open(options: { crash?: () => boolean; reconcileMs?: number } = {}) {
    const one = openBullmq(prefix, {
      ...(options.reconcileMs ? { reconcileMs: options.reconcileMs } : {}),
      betweenIdAndJob: async () => {
        if (options.crash?.()) throw new Error('the process died here');
      },
    });
    opened.push(one.close);
    return one;
  }

  /** Whether BullMQ holds the job that the id names (the window: it names one it does not). */
  async function namedJobExists(redis: Redis, id: string): Promise<boolean> {
    const jobId = await redis.hget(`${prefix}scheduler:ids`, id);
    return jobId !== null && (await redis.exists(`${prefix}bull:scheduled:${jobId}`)) === 1;
  }

  it('the schedule still fires: a scheduler that starts later adds the job', async () => {
    let crash = false;
    const gateway = open({ crash: () => crash });
    await gateway.scheduler.schedule('fire', 'the one replaced', { id: 'crash:1', delayMs: 60_000 });
    crash = true;
    await expect(
      gateway.scheduler.schedule('fire', 'the replacement', { id: 'crash:1', delayMs: 200 }),
    ).rejects.toThrow('the process died here');
    await gateway.close();
    const worker = open();
    // The window: the id names the replacement, which BullMQ never got.
    expect(await namedJobExists(worker.redis, 'crash:1')).toBe(false);

    const runs: Run[] = [];
    record(worker.scheduler, 'fire', runs, 'worker');
    await worker.scheduler.start();
    await until(
      () => runs.length,
      (n) => n > 0,
      20_000,
    );
    expect(runs.map((r) => [r.job.id, r.payload, r.job.attempt])).toEqual([
      ['crash:1', 'the replacement', 1],
    ]);
    // Nothing left over to add again.
    expect(await worker.redis.hlen(`${prefix}scheduler:adding`)).toBe(0);
    await worker.close();
  });

  it('a worker already running adds it within its reconcile interval, and a live schedule is not doubled', async () => {
    const worker = open({ reconcileMs: 300 });
    const runs: Run[] = [];
    record(worker.scheduler, 'fire', runs, 'worker');
    await worker.scheduler.start();
    let crash = true;
    const gateway = open({ crash: () => crash });
    await expect(
      gateway.scheduler.schedule('fire', 'crashed', { id: 'crash:2', delayMs: 100 }),
    ).rejects.toThrow('the process died here');
    crash = false;
    // Scheduled normally meanwhile, some during a reconcile pass: each runs once.
    const ids: string[] = [];
    for (let i = 0; i < 10; i++)
      ids.push(await gateway.scheduler.schedule('fire', `live ${i}`, { id: `live:${i}`, delayMs: 100 }));
    await until(
      () => new Set(runs.map((r) => r.job.id)).size,
      (n) => n === 11,
      20_000,
    );
    // A second run would follow within a reconcile interval or two; a job due after that closes the test.
    const closing = await gateway.scheduler.schedule('fire', 'closing', { delayMs: 1_000 });
    await until(() => runs.some((r) => r.job.id === closing), Boolean, 20_000);
    expect(
      runs
        .filter((r) => r.job.id !== closing)
        .map((r) => r.job.id)
        .sort(),
    ).toEqual(['crash:2', ...ids].sort());
    expect(runs.find((r) => r.job.id === 'crash:2')?.payload).toBe('crashed');
  });
});

describe('the table scheduler: its database away mid-run, for longer than the lease', () => {
  let dir: string;
  let server: TestPostgresServer;
  let db: Db | undefined;

  beforeAll(async () => {
    dir = await tempDir('sbt-scheduler-pg-');
    server = new TestPostgresServer(await freePort(), `${dir}/data`);
    server.init();
    server.start();
  }, 120_000);
  afterAll(async () => {
    await db?.close();
    try {
      server.stop();
    } catch {
      // already stopped
    }
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('the run that found it away gives its start back: the job runs again as attempt 1 once it is back', async () => {
    db = openPostgres({ url: server.adminUrl, poolSize: 2, logger: silentLogger });
    await migrate(db);
    const logs = capturingLogger();
    const scheduler = createTableScheduler({
      db,
      logger: logs.logger,
      pollMs: 100,
      leaseMs: 600,
      transientRetryBaseMs: 50,
      transientRetryMaxMs: 200,
    });
    const attempts: number[] = [];
    let serverStopped!: () => void;
    const stopped = new Promise<void>((resolve) => {
      serverStopped = resolve;
    });
    scheduler.handle('needs-db', async (_payload, job) => {
      attempts.push(job.attempt);
      if (attempts.length === 1) await stopped;
      await db!.query('SELECT 1');
    });
    try {
      await scheduler.start();
      await scheduler.schedule('needs-db', null, { id: 'needs-db:1' });
      await until(
        () => attempts.length,
        (n) => n === 1,
        20_000,
      );
      server.stop();
      serverStopped();
      // The outage lasts until the scheduler has failed to poll ten times (a second at least: the
      // run's lease, 600 ms, runs out meanwhile, with no heartbeat and no release written).
      await until(
        () => logs.lines.filter((l) => l.event === 'scheduler.poll_failed').length,
        (n) => n >= 10,
        30_000,
      );
      expect(attempts).toEqual([1]);
      server.start();
      await until(
        () => attempts.length,
        (n) => n >= 2,
        30_000,
      );
      await until(
        async () => (await db!.query('SELECT id FROM scheduled_jobs WHERE id = $1', ['needs-db:1'])).rowCount,
        (n) => n === 0,
        20_000,
      );
      expect(attempts).toEqual([1, 1]);
      expect(logs.lines.filter((l) => l.event === 'scheduler.job_deferred').map((l) => l.id)).toEqual([
        'needs-db:1',
      ]);
    } finally {
      await scheduler.stop();
    }
  }, 120_000);
});
