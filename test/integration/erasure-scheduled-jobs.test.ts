import { randomUUID } from 'node:crypto';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryCache } from '../../src/cache/memory-cache.ts';
import { deliveryRetryJobId, scheduleDeliveryRetry } from '../../src/delivery/retry-job.ts';
import { eraseUser } from '../../src/erasure.ts';
import { WAIT_TIMEOUT_JOB, waitTimeoutJobId } from '../../src/handoff/engine-side.ts';
import { createMemoryRateLimiter } from '../../src/limits/memory-rate-limiter.ts';
import { OUTBOUND_SEND_JOB, sendJobId } from '../../src/outbound/service.ts';
import { createBullmqScheduler, SCHEDULER_QUEUE } from '../../src/scheduler/bullmq-scheduler.ts';
import type { Scheduler } from '../../src/scheduler/scheduler.ts';
import { createTableScheduler } from '../../src/scheduler/table-scheduler.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { laneJobId, WEBHOOK_LANE_JOB } from '../../src/webhooks/dispatcher.ts';
import { createTestDatabase, silentLogger, type TestDatabase } from '../helpers/database.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';

const HOUR_MS = 3_600_000;

/** What a person leaves in scheduled jobs: the ids that name them, and the job ids. */
interface Person {
  userId: string;
  needles: string[];
  jobIds: string[];
}

/**
 * Erasing a person removes the scheduled jobs that name their sessions (handoff wait timers,
 * scheduled sends, webhook lanes' and replies' retry wake-ups), pending or set aside as failed, on both
 * scheduler drivers; nobody else's jobs go.
 */
describe('erasure removes the scheduled jobs of the person’s sessions', () => {
  let database: TestDatabase;
  let db: Db;
  const { prefix, cleanup } = testRedisPrefix();
  let redis: Redis;

  /** A user with a session that has a waiting handoff, a scheduled send, a webhook event and a reply to retry. */
  async function person(scheduler: Scheduler): Promise<Person> {
    const userId = randomUUID();
    const sessionId = randomUUID();
    const handoffId = randomUUID();
    const messageId = randomUUID();
    const phone = `+49151${Math.floor(Math.random() * 1e8)}`;
    await db.query('INSERT INTO users (id) VALUES ($1)', [userId]);
    await db.query(
      `INSERT INTO sessions (id, bot, channel, native_key, user_id) VALUES ($1, 'default', 'whatsapp', $2, $3)`,
      [sessionId, phone, userId],
    );
    await db.query(
      `INSERT INTO handoffs (id, session_id, bot, channel, state) VALUES ($1, $2, 'default', 'whatsapp', 'waiting')`,
      [handoffId, sessionId],
    );
    await db.query(
      `INSERT INTO outbound_messages (id, bot, channel, native_key, session_id, text, status, send_at)
       VALUES ($1, 'default', 'whatsapp', $2, $3, 'later', 'scheduled', now() + interval '1 hour')`,
      [messageId, phone, sessionId],
    );
    await db.query(
      `INSERT INTO webhook_outbox (event_id, endpoint, bot, session_id, type, attempts)
       VALUES ($1, 'crm', 'default', $2, 'session.started', 1)`,
      [randomUUID(), sessionId],
    );
    const lane = { endpoint: 'crm', key: sessionId };
    const jobIds = [
      waitTimeoutJobId(handoffId),
      sendJobId(messageId),
      laneJobId(lane),
      deliveryRetryJobId(sessionId),
    ];
    await scheduler.schedule(WAIT_TIMEOUT_JOB, { handoffId }, { id: jobIds[0]!, delayMs: HOUR_MS });
    await scheduler.schedule(OUTBOUND_SEND_JOB, { messageId }, { id: jobIds[1]!, delayMs: HOUR_MS });
    await scheduler.schedule(
      WEBHOOK_LANE_JOB,
      { endpoint: lane.endpoint, lane: lane.key },
      { id: jobIds[2]!, delayMs: HOUR_MS },
    );
    // A reply of the session waits for its retry (the platform was away).
    await scheduleDeliveryRetry(scheduler, sessionId, HOUR_MS);
    return { userId, needles: [sessionId, handoffId, messageId], jobIds };
  }

  const erase = (scheduler: Scheduler, userId: string) =>
    eraseUser(
      {
        db,
        cache: createMemoryCache({ maxSessions: 10, ttlSeconds: 60 }),
        rateLimiter: createMemoryRateLimiter(),
        scheduler,
        logger: silentLogger,
      },
      userId,
    );

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 4, logger: silentLogger });
    await migrate(db);
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    redis?.disconnect();
    await cleanup();
    await db?.close();
    await database?.drop();
  });

  it('the table scheduler: pending and failed jobs of the person go, others stay', async () => {
    const scheduler = createTableScheduler({ db, logger: silentLogger });
    const ana = await person(scheduler);
    const ben = await person(scheduler);
    // One of Ana's jobs was set aside as failed: kept for operators, with its payload.
    await db.query(`UPDATE scheduled_jobs SET failed_at = now(), last_error = 'boom' WHERE id = $1`, [
      ana.jobIds[0],
    ]);
    const result = await erase(scheduler, ana.userId);
    expect(result).toMatchObject({ sessions: [expect.anything()], cacheCleared: true });
    const { rows } = await db.query<{ id: string; row: string }>(
      'SELECT id, t::text AS row FROM scheduled_jobs t ORDER BY id',
    );
    expect(rows.map((r) => r.id)).toEqual([...ben.jobIds].sort());
    expect(rows.filter((r) => ana.needles.some((n) => r.row.includes(n)))).toEqual([]);
  });

  it('BullMQ: no job, id map entry, record or event of the person stays in Redis; others stay', async () => {
    const scheduler = createBullmqScheduler({
      redis,
      redisUrl: TEST_REDIS_URL,
      prefix,
      logger: silentLogger,
    });
    try {
      const ana = await person(scheduler);
      const ben = await person(scheduler);
      // Ana's handoff timer, due now, fails for good (its payload is kept with the failed job) and
      // its id goes on naming it, as after a last failed run (`switchboard scheduler replay`).
      await scheduler.schedule(WAIT_TIMEOUT_JOB, { handoffId: ana.needles[1]! }, { id: ana.jobIds[0]! });
      const failing = new Worker(
        SCHEDULER_QUEUE,
        async () => {
          throw new UnrecoverableError('boom');
        },
        { connection: { url: TEST_REDIS_URL, maxRetriesPerRequest: null } as never, prefix: `${prefix}bull` },
      );
      const queue = new Queue(SCHEDULER_QUEUE, { connection: redis, prefix: `${prefix}bull` });
      try {
        await until(
          () => queue.getFailedCount(),
          (n) => n === 1,
        );
      } finally {
        await failing.close();
        await queue.close();
      }

      const result = await erase(scheduler, ana.userId);
      expect(result).toMatchObject({ sessions: [expect.anything()], cacheCleared: true });
      const holding: string[] = [];
      for (const key of await redis.keys(`${prefix}*`)) {
        const type = await redis.type(key);
        const text =
          type === 'hash'
            ? JSON.stringify(await redis.hgetall(key))
            : type === 'zset'
              ? JSON.stringify(await redis.zrange(key, '0', '-1'))
              : type === 'list'
                ? JSON.stringify(await redis.lrange(key, 0, -1))
                : type === 'stream'
                  ? JSON.stringify(await redis.xrange(key, '-', '+'))
                  : type === 'string'
                    ? ((await redis.get(key)) ?? '')
                    : '';
        const all = `${key} ${text}`;
        if (ana.needles.some((n) => all.includes(n))) holding.push(`${key}: ${text.slice(0, 300)}`);
      }
      expect(holding).toEqual([]);
      expect(Object.keys(await redis.hgetall(`${prefix}scheduler:ids`)).sort()).toEqual(
        [...ben.jobIds].sort(),
      );
    } finally {
      await scheduler.stop();
    }
  });
});
