import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HubConfig } from '../../src/config/env.ts';
import { createBullmqScheduler } from '../../src/scheduler/bullmq-scheduler.ts';
import { type JobHandler, MAX_JOB_ATTEMPTS, type Scheduler } from '../../src/scheduler/scheduler.ts';
import { adminClient } from '../helpers/admin.ts';
import { switchboardCli } from '../helpers/cli.ts';
import { silentLogger } from '../helpers/database.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'operator-secret-for-scheduler-failed-tests';
/** A job whose handler throws until the test says its cause is fixed. */
const FLAKY_JOB = 'test.receiver-gone';
/** A job that only records its run: the sign that the jobs due before it have run. */
const NOTE_JOB = 'test.note';
/** Five failed starts: retries 1 s, 2 s, 4 s and 8 s apart, on both drivers. */
const SET_ASIDE_WITHIN_MS = 60_000;

interface Run {
  id: string;
  payload: unknown;
  attempt: number;
}

interface ListedJob {
  id: string;
  name: string;
  attempts: number;
  failed_at: string;
  error: string;
}

const drivers: {
  name: string;
  driver: Scheduler['driver'];
  config: (prefix: string) => Partial<HubConfig>;
}[] = [
  { name: 'the table scheduler (PostgreSQL)', driver: 'table', config: () => ({}) },
  {
    name: 'the BullMQ scheduler (Redis)',
    driver: 'bullmq',
    config: (redisPrefix) => ({ redisUrl: TEST_REDIS_URL, redisPrefix }),
  },
];

for (const d of drivers) {
  describe(`scheduled jobs set aside as failed, listed and replayed: ${d.name}`, () => {
    const redis = testRedisPrefix();
    let running: RunningHub;
    let scheduler: Scheduler;
    let admin: ReturnType<typeof adminClient>;
    const breaches: string[] = [];
    const runs: Run[] = [];
    const notes: string[] = [];
    /** Whether the handler's cause is fixed (the receiver is back). */
    let fixed = false;
    const runsOf = (id: string) => runs.filter((r) => r.id === id);
    const cli = (...args: string[]) => switchboardCli(running, args);
    const listed = async () => JSON.parse(await cli('scheduler', 'failed', '--json')) as ListedJob[];
    const gauge = async () => {
      const text = await (await fetch(`${running.url}/metrics`)).text();
      return Number(/^switchboard_scheduler_failed_jobs (\d+)$/m.exec(text)?.[1]);
    };
    const queueAnswer = async () => {
      const res = await admin('GET', '/api/admin/queue');
      expect(res.status).toBe(200);
      return res.json as { scheduler: { driver: string; failed: number } };
    };
    /** Waits until a note scheduled now, due after `delayMs`, has run: what was due before it has too. */
    const afterNote = async (text: string, delayMs: number) => {
      await scheduler.schedule(NOTE_JOB, text, { delayMs });
      await until(() => notes.includes(text), Boolean, 20_000);
    };

    // Jobs of an owner (say, webhook lanes' retries) whose receiver is gone. The third, on BullMQ
    // only, is for a replay that races the owner's schedule (the table has no such window).
    const first = `${FLAKY_JOB}:first`;
    const second = `${FLAKY_JOB}:second`;
    const third = `${FLAKY_JOB}:third`;
    const setAside: string[] = d.driver === 'bullmq' ? [first, second, third] : [first, second];
    const flaky: JobHandler = async (payload, job) => {
      runs.push({ id: job.id, payload, attempt: job.attempt });
      if (!fixed) throw new Error(`the receiver is gone (run ${job.attempt})`);
    };
    const note: JobHandler = async (payload) => {
      notes.push(String(payload));
    };

    beforeAll(async () => {
      running = await startTestHub({ ...d.config(redis.prefix), adminToken: ADMIN_TOKEN });
      scheduler = running.hub.scheduler;
      const contract = openApiContract(await (await fetch(`${running.url}/openapi.json`)).json());
      admin = adminClient(running.url, ADMIN_TOKEN, (e) => breaches.push(...contract.check(e)));
      scheduler.handle(FLAKY_JOB, flaky);
      scheduler.handle(NOTE_JOB, note);
    });
    afterAll(async () => {
      await running?.stop();
      await redis.cleanup();
    });

    it(`a job whose handler always throws is set aside after its ${MAX_JOB_ATTEMPTS} starts: listed with its name and error, and counted`, async () => {
      expect(d.driver).toBe(scheduler.driver);
      const scheduled = Date.now();
      for (const id of setAside) await scheduler.schedule(FLAKY_JOB, { lane: id }, { id });
      const failed = await until(
        () => scheduler.failed(),
        (jobs) => jobs.length === setAside.length,
        SET_ASIDE_WITHIN_MS,
      );
      expect(runsOf(first).map((r) => r.attempt)).toEqual([1, 2, 3, 4, 5]);
      expect(failed.map((j) => j.id).sort()).toEqual([...setAside].sort());
      expect(failed.find((j) => j.id === first)).toMatchObject({
        name: FLAKY_JOB,
        attempts: MAX_JOB_ATTEMPTS,
        error: 'the receiver is gone (run 5)',
      });
      for (const job of failed) expect(job.failedAt.getTime()).toBeGreaterThanOrEqual(scheduled - 1_000);
      const n = setAside.length;
      expect(await scheduler.countFailed()).toBe(n);

      // What an operator sees: the command (no payload), the gauge, the queue's status.
      const rows = await listed();
      expect(rows.map((r) => r.id).sort()).toEqual([...setAside].sort());
      expect(rows.find((r) => r.id === first)).toEqual({
        id: first,
        name: FLAKY_JOB,
        attempts: MAX_JOB_ATTEMPTS,
        failed_at: failed.find((j) => j.id === first)!.failedAt.toISOString(),
        error: 'the receiver is gone (run 5)',
      });
      expect(await cli('scheduler', 'failed')).toContain(`${first}\t${FLAKY_JOB}\t5\t`);
      expect(await gauge()).toBe(n);
      expect((await queueAnswer()).scheduler).toEqual({ driver: d.driver, failed: n });
      expect(await cli('queue', 'status')).toContain(
        `scheduler (${d.driver}): ${n} job(s) set aside (switchboard scheduler failed)\n`,
      );
      // Set aside: never run again by themselves, and kept for operators when the owner cancels.
      expect(await scheduler.cancel(first)).toBe(false);
      expect((await scheduler.failed()).map((j) => j.id)).toContain(first);
      expect(runsOf(first)).toHaveLength(MAX_JOB_ATTEMPTS);
    }, 90_000);

    it('a replay of an id scheduled again since leaves the newer job alone', async () => {
      fixed = true;
      // The owner schedules the second lane's retry again, before the operator replays.
      await scheduler.schedule(FLAKY_JOB, { lane: second, newer: true }, { id: second, delayMs: 1_500 });
      // The newer job replaces the set-aside one, as it would a pending one.
      expect((await scheduler.failed()).map((j) => j.id)).not.toContain(second);
      expect(await scheduler.countFailed()).toBe(setAside.length - 1);
      const before = runsOf(second).length;
      expect(await scheduler.replay([second])).toBe(0);
      // The newer job runs at its own time, with its own payload; the set-aside one never again.
      await until(
        () => runsOf(second).length,
        (n) => n > before,
        20_000,
      );
      await afterNote('after the newer job', 500);
      expect(runsOf(second).slice(before)).toEqual([
        { id: second, payload: { lane: second, newer: true }, attempt: 1 },
      ]);
      expect((await scheduler.failed()).map((j) => j.id).sort()).toEqual(
        setAside.filter((id) => id !== second).sort(),
      );
    }, 60_000);

    if (d.driver === 'bullmq')
      it("a replay racing the owner's schedule (the id names the newer job, not yet added) leaves the newer job alone", async () => {
        // The owner's process names the newer job and dies before BullMQ has it (its set-aside
        // job is still there): a replay now must not take the id back.
        const connection = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
        const options = {
          redis: connection,
          redisUrl: TEST_REDIS_URL,
          prefix: redis.prefix,
          logger: silentLogger,
        };
        const dying = createBullmqScheduler({
          ...options,
          betweenIdAndJob: async () => {
            throw new Error('killed');
          },
        });
        const survivor = createBullmqScheduler(options);
        try {
          await expect(
            dying.schedule(FLAKY_JOB, { lane: third, newer: true }, { id: third }),
          ).rejects.toThrow('killed');
          expect((await scheduler.failed()).map((j) => j.id)).not.toContain(third);
          const before = runsOf(third).length;
          expect(await scheduler.replay([third])).toBe(0);
          // A process that starts re-adds the newer job the dead one recorded; it runs, alone.
          survivor.handle(FLAKY_JOB, flaky);
          survivor.handle(NOTE_JOB, note);
          await survivor.start();
          await until(
            () => runsOf(third).length,
            (n) => n > before,
            20_000,
          );
          await afterNote('after the re-added job', 1_500);
          expect(runsOf(third).slice(before)).toEqual([
            { id: third, payload: { lane: third, newer: true }, attempt: 1 },
          ]);
          expect((await scheduler.failed()).map((j) => j.id)).toEqual([first]);
          expect(await scheduler.countFailed()).toBe(1);
        } finally {
          await survivor.stop();
          await dying.stop();
          connection.disconnect();
        }
      }, 60_000);

    it('replaying runs a set-aside job again, now succeeding, once, with a fresh count; it leaves the list', async () => {
      const before = runsOf(first).length;
      expect(await cli('scheduler', 'replay', first)).toMatch(/^put 1 set-aside job\(s\) back; /);
      await until(
        () => runsOf(first).length,
        (n) => n > before,
        20_000,
      );
      // A second run would follow within a second or two.
      await afterNote('after the replay', 1_500);
      expect(runsOf(first).slice(before)).toEqual([{ id: first, payload: { lane: first }, attempt: 1 }]);

      expect(await scheduler.failed()).toEqual([]);
      expect(await scheduler.countFailed()).toBe(0);
      expect(await listed()).toEqual([]);
      expect(await gauge()).toBe(0);
      expect((await queueAnswer()).scheduler).toEqual({ driver: d.driver, failed: 0 });
      expect(await cli('scheduler', 'replay')).toMatch(/^put 0 set-aside job\(s\) back; /);
    }, 60_000);

    it("every exchange of the operator's above matched the OpenAPI document", () => {
      expect(breaches).toEqual([]);
    });
  });
}
