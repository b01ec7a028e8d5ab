import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_JOB_ATTEMPTS, type Scheduler } from '../../src/scheduler/scheduler.ts';
import { createTableScheduler } from '../../src/scheduler/table-scheduler.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { laneJobId, WEBHOOK_LANE_JOB, WebhookDispatcher } from '../../src/webhooks/dispatcher.ts';
import { endpointKey } from '../../src/webhooks/settings.ts';
import { emitKeyed, syncEndpoints } from '../../src/webhooks/store.ts';
import { createTestDatabase, silentLogger, type TestDatabase } from '../helpers/database.ts';
import { until } from '../helpers/until.ts';
import { SECRET, WEBHOOK_SECRET_ENV, WebhookReceiver } from '../helpers/webhook-receiver.ts';

/**
 * A lane's retry job that comes due while the webhook dispatcher is not running (a worker
 * starting, or stopping, while its scheduler runs) must not use up the job's starts.
 */
describe('event webhooks: a lane retry job run while the dispatcher is stopped', () => {
  const receiver = new WebhookReceiver();
  let test: TestDatabase;
  let db: Db;

  beforeAll(async () => {
    await receiver.listen();
    test = await createTestDatabase();
    db = openPostgres({ url: test.url, poolSize: 4, logger: silentLogger });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
    await test?.drop();
    await receiver.stopListening();
  });

  it('is handed on, however often, and the lane is sent from once the dispatcher runs', async () => {
    const endpoint = endpointKey('hooks', receiver.url);
    await syncEndpoints(db, [{ endpoint, bot: 'hooks', url: receiver.url, events: ['broadcast.started'] }]);
    const key = `broadcast:${randomUUID()}`;
    await emitKeyed(db, {
      bot: 'hooks',
      key,
      type: 'broadcast.started',
      data: { broadcast_id: randomUUID(), channel: 'api', total: 1, opted_out: 0, rate_per_second: 1 },
    });
    // Its first send was refused: it waits for a retry, due now, which its job wakes.
    const { rows } = await db.query<{ event_id: string }>(
      `UPDATE webhook_outbox SET attempts = 1, next_attempt_at = now(), last_error = 'HTTP 500'
       WHERE lane = $1 RETURNING event_id`,
      [key],
    );
    expect(rows).toHaveLength(1);

    const scheduler = createTableScheduler({ db, logger: silentLogger, pollMs: 50 });
    // Every run of the lane's job, as its handler is told it.
    const runs: number[] = [];
    const counted: Scheduler = {
      ...scheduler,
      handle: (name, handler) =>
        scheduler.handle(name, async (payload, job) => {
          runs.push(job.attempt);
          await handler(payload, job);
        }),
    };
    const dispatcher = new WebhookDispatcher({
      db,
      scheduler: counted,
      logger: silentLogger,
      endpoints: new Map([[endpoint, { bot: 'hooks', url: receiver.url, secretEnv: WEBHOOK_SECRET_ENV }]]),
      env: { [WEBHOOK_SECRET_ENV]: SECRET },
      timeoutMs: 2_000,
      pollMs: 50,
      retryBaseMs: 100,
      retryMaxMs: 1_000,
      maxAgeMs: 3_600_000,
      // The loop's look for overdue retries stays out of this test: only the job wakes the lane.
      overdueRetryMs: 3_600_000,
      concurrency: 4,
    });
    const lane = { endpoint, key };
    try {
      await scheduler.start();
      await scheduler.schedule(WEBHOOK_LANE_JOB, { endpoint, lane: key }, { id: laneJobId(lane) });
      // More runs than a job has starts, all while the dispatcher is stopped.
      await until(
        () => runs.length,
        (n) => n > MAX_JOB_ATTEMPTS,
        30_000,
      );
      expect(receiver.requests).toBe(0);
      dispatcher.start();
      await until(
        () => receiver.accepted.map((e) => e.id),
        (ids) => ids.length > 0,
        30_000,
      );
      expect(receiver.accepted.map((e) => e.id)).toEqual([rows[0]!.event_id]);
      // Each run was handed on, not failed: every one a first start.
      expect(new Set(runs)).toEqual(new Set([1]));
    } finally {
      await dispatcher.stop();
      await scheduler.stop();
    }
  });
});
