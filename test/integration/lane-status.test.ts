import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvelopeSchema } from '../../src/envelope.ts';
import { formatLaneQueueStatus, laneQueueStatus } from '../../src/queue/lane-status.ts';
import {
  createRedisLaneQueue,
  INBOUND_QUEUE,
  type RedisLaneQueue,
} from '../../src/queue/redis-lane-queue.ts';
import { RedisLanes } from '../../src/queue/redis-lanes.ts';
import { silentLogger } from '../helpers/database.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';

const message = (n: number, from: string) =>
  EnvelopeSchema.parse({
    id: `whatsapp:status.${n}`,
    channel: 'whatsapp',
    bot: 'default',
    from: { id: from },
    text: `m${n}`,
    receivedAt: new Date().toISOString(),
  });

describe("a shared queue's status, as `switchboard queue status` reads it", () => {
  const { prefix, cleanup } = testRedisPrefix();
  let redis: Redis;
  let queue: RedisLaneQueue;
  let bull: Queue;
  let lanes: RedisLanes;

  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    // A gateway's queue: it queues, nothing drains.
    queue = createRedisLaneQueue({
      redis,
      redisUrl: TEST_REDIS_URL,
      prefix,
      logger: silentLogger,
      concurrency: 1,
    });
    bull = new Queue(INBOUND_QUEUE, { connection: redis, prefix: `${prefix}bull` });
    lanes = new RedisLanes(redis, { prefix, name: INBOUND_QUEUE });
  });
  afterAll(async () => {
    await bull.close();
    await queue.stop();
    redis.disconnect();
    await cleanup();
  });

  it('counts what waits, names the wake job marked for it, and shows lanes held by a job that is over', async () => {
    const status = () => laneQueueStatus(INBOUND_QUEUE, lanes, bull);
    expect(await status()).toEqual({
      queue: INBOUND_QUEUE,
      driver: 'redis-lanes',
      depth: 0,
      readyLanes: 0,
      wakeJob: null,
      jobs: { waiting: 0, active: 0, delayed: 0 },
      claimed: { lanes: 0, jobs: 0 },
      stranded: { lanes: 0, jobs: 0 },
      deadLetters: 0,
    });
    for (const [n, from] of [
      [1, '+15550005551'],
      [2, '+15550005551'],
      [3, '+15550005552'],
    ] as const)
      expect(await queue.enqueue(message(n, from))).toBe('accepted');
    const queued = await status();
    expect(queued).toMatchObject({
      depth: 3,
      readyLanes: 2,
      wakeJob: { state: 'waiting' },
      jobs: { waiting: 1, active: 0, delayed: 0 },
      claimed: { lanes: 0, jobs: 0 },
    });
    // Both lanes claimed by a wake job BullMQ never had: stuck until a worker's sweep hands them back.
    expect((await lanes.claim(999_999, 32, 20)).lanes).toHaveLength(2);
    const stuck = await status();
    expect(stuck).toMatchObject({
      depth: 3,
      readyLanes: 0,
      wakeJob: null,
      claimed: { lanes: 2, jobs: 1 },
      stranded: { lanes: 2, jobs: 1 },
    });
    expect(formatLaneQueueStatus(stuck)).toBe(
      'inbound: 3 queued; 0 lane(s) ready, no wake job marked; jobs 0 active, 1 waiting, 0 delayed; ' +
        '2 lane(s) claimed by 1 job(s), 2 lane(s) held by 1 job(s) that are over (the sweep hands them back); 0 dead letter(s)',
    );
  });
});
