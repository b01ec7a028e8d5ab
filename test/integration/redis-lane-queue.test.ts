import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvelopeSchema } from '../../src/envelope.ts';
import {
  createRedisLaneQueue,
  type RedisLaneQueue,
  type RedisLaneQueueOptions,
} from '../../src/queue/redis-lane-queue.ts';
import { RedisLanes } from '../../src/queue/redis-lanes.ts';
import { silentLogger } from '../helpers/database.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';

const message = (n: number) =>
  EnvelopeSchema.parse({
    id: `whatsapp:redelivery.${n}`,
    channel: 'whatsapp',
    bot: 'default',
    from: { id: '+15550001111' },
    text: `m${n}`,
    receivedAt: new Date().toISOString(),
  });

/**
 * A Redis-lane queue on a Redis prefix of its own, opened before the block's tests and closed
 * after; options as the queue's (4 lanes at once and a silent logger unless given).
 */
function queueOnOwnPrefix(
  options: Partial<Pick<RedisLaneQueueOptions, 'concurrency' | 'sweepEveryMs' | 'logger' | 'onRepair'>> = {},
): { prefix: string; redis: Redis; queue: RedisLaneQueue } {
  const { prefix, cleanup } = testRedisPrefix();
  const ctx = { prefix } as { prefix: string; redis: Redis; queue: RedisLaneQueue };
  beforeAll(() => {
    ctx.redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    ctx.queue = createRedisLaneQueue({
      redis: ctx.redis,
      redisUrl: TEST_REDIS_URL,
      prefix,
      logger: silentLogger,
      concurrency: 4,
      ...options,
    });
  });
  afterAll(async () => {
    await ctx.queue.stop();
    ctx.redis.disconnect();
    await cleanup();
  });
  return ctx;
}

describe('the Redis-lane queue tells a handler which envelopes may have been handled before', () => {
  const ctx = queueOnOwnPrefix();

  it("on a lane's first drain none; after a failed chunk, every envelope of the retried chunk", async () => {
    const { queue } = ctx;
    for (const n of [1, 2, 3]) expect(await queue.enqueue(message(n))).toBe('accepted');
    const seen: string[] = [];
    let failed = false;
    await queue.consume(async (envelope, { redelivered, followsInLane, followedInLane }) => {
      seen.push(
        `${envelope.text}${redelivered ? ' again' : ''}${followsInLane ? ', after the one before' : ''}${followedInLane ? ', before the next' : ''}`,
      );
      if (envelope.text === 'm2' && !failed) {
        failed = true;
        throw new Error('the bot broke once');
      }
    });
    await until(
      () => seen.length,
      (n) => n >= 4,
      10_000,
    );
    // m1 was acknowledged before the retry; m2 failed, and m3 rides in the same retried chunk.
    // Only an envelope whose predecessor this drain handled may trust what it cached then.
    // Only the last envelope of a drain's chunk must share what it cached at once.
    expect(seen).toEqual([
      'm1, before the next',
      'm2, after the one before, before the next',
      'm2 again, before the next',
      'm3 again, after the one before',
    ]);
    expect(await queue.enqueue(message(4))).toBe('accepted');
    await until(
      () => seen.length,
      (n) => n >= 5,
      10_000,
    );
    expect(seen[4]).toBe('m4');
  });
});

describe('the Redis-lane queue and envelopes a handler holds', () => {
  const ctx = queueOnOwnPrefix();

  it('acknowledges none of the held envelopes of a chunk that fails after them: its retry starts at the first, holding none', async () => {
    const { queue } = ctx;
    for (const n of [11, 12, 13, 14]) expect(await queue.enqueue(message(n))).toBe('accepted');
    const seen: string[] = [];
    let failed = false;
    await queue.consume(async (envelope, { redelivered, mayHold }) => {
      seen.push(`${envelope.text}${redelivered ? ' again' : ''}${mayHold ? ', may hold' : ''}`);
      if (envelope.text === 'm14' && !failed) {
        failed = true;
        throw new Error('the commit of the held turns failed');
      }
      return mayHold ? 'held' : undefined;
    });
    await until(
      () => seen.length,
      (n) => n >= 8,
      10_000,
    );
    // m11-m13 were held, m14 (the chunk's last: never held) failed: nothing of the chunk was
    // acknowledged, and the retried chunk holds nothing, so each envelope's failures count alone.
    expect(seen).toEqual([
      'm11, may hold',
      'm12, may hold',
      'm13, may hold',
      'm14',
      'm11 again',
      'm12 again',
      'm13 again',
      'm14 again',
    ]);
    await until(
      () => queue.depth(),
      (n) => n === 0,
      5_000,
    );
  });
});

describe('the Redis-lane queue after an upgrade', () => {
  const ctx = queueOnOwnPrefix();

  it("drains a lane that an older version scheduled with a job of the lane's own", async () => {
    const { queue, redis, prefix } = ctx;
    // What the version before wake jobs left in Redis: a scheduled lane and its BullMQ job.
    const lane = 'default|whatsapp|+15550002222';
    const item = JSON.stringify({ ...message(7), from: { id: '+15550002222' } });
    await redis.rpush(`${prefix}inbound:lane:${lane}`, item);
    await redis.incr(`${prefix}inbound:depth`);
    await redis.set(`${prefix}inbound:sched:${lane}`, '41');
    const bull = new Queue('inbound', { connection: redis, prefix: `${prefix}bull` });
    await bull.add('drain', { lane, epoch: 41 }, { jobId: 'legacy-41' });
    await bull.close();

    const seen: string[] = [];
    await queue.consume(async (envelope) => {
      seen.push(envelope.text);
    });
    await until(
      () => seen.length,
      (n) => n >= 1,
      10_000,
    );
    expect(seen).toEqual(['m7']);
    await until(
      () => queue.depth(),
      (n) => n === 0,
      5_000,
    );
    // The lane is unscheduled: its next envelope goes the new way, through the ready list.
    expect(await redis.exists(`${prefix}inbound:sched:${lane}`)).toBe(0);
    expect(await queue.enqueue({ ...message(8), from: { id: '+15550002222' } })).toBe('accepted');
    await until(
      () => seen.length,
      (n) => n >= 2,
      10_000,
    );
    expect(seen).toEqual(['m7', 'm8']);
  });
});

describe('the Redis-lane queue and its concurrency', () => {
  const LIMIT = 3;
  const ctx = queueOnOwnPrefix({ concurrency: LIMIT });

  it('never drains more lanes at once than it may, however many are ready and however many wake jobs start', async () => {
    const { queue, redis, prefix } = ctx;
    const total = 40;
    for (let n = 0; n < total; n++) {
      const envelope = { ...message(100 + n), from: { id: `+1555100${String(n).padStart(4, '0')}` } };
      expect(await queue.enqueue(envelope)).toBe('accepted');
    }
    let running = 0;
    let most = 0;
    let handled = 0;
    const held: (() => void)[] = [];
    await queue.consume(async () => {
      running++;
      most = Math.max(most, running);
      await new Promise<void>((resolve) => held.push(resolve));
      running--;
      handled++;
    });
    const bull = new Queue('inbound', { connection: redis, prefix: `${prefix}bull` });
    try {
      while (handled < total) {
        // Full (or the last lanes), and the wake job marked for the lanes still ready has started
        // (and with it the claim that, before, took a lane beyond the limit) or waits for BullMQ
        // (the worker runs as many jobs as it may drain lanes): let one go.
        await until(
          async () => {
            const waking = await redis.get(`${prefix}inbound:waking`);
            const ready = await redis.llen(`${prefix}inbound:ready`);
            const state = waking === null ? 'none' : await bull.getJobState(`wake-${waking}`);
            const { active } = await bull.getJobCounts('active');
            return { full: running >= Math.min(LIMIT, total - handled), ready, state, active };
          },
          ({ full, ready, state, active }) => full && (ready === 0 || state === 'active' || active! >= LIMIT),
          10_000,
          5,
        );
        held.shift()?.();
      }
    } finally {
      await bull.close();
    }
    expect(most).toBeLessThanOrEqual(LIMIT);
    expect(most).toBe(LIMIT);
  });
});

describe('the Redis-lane queue and a drain whose job is gone', () => {
  const repairs: [string, number][] = [];
  const ctx = queueOnOwnPrefix({ onRepair: (repair, lanes) => repairs.push([repair, lanes]) });

  it('hands its lane back when the job it drains for has lost its lock and no longer exists: the rest of the lane is drained', async () => {
    const { queue, redis, prefix } = ctx;
    // Two chunks (LANE_CHUNK 20): the drain checks its job's lock between them.
    const total = 30;
    for (let n = 0; n < total; n++) {
      const envelope = { ...message(300 + n), from: { id: '+15550002222' } };
      expect(await queue.enqueue(envelope)).toBe('accepted');
    }
    const bull = new Queue('inbound', { connection: redis, prefix: `${prefix}bull` });
    const handled = new Set<string>();
    let jobGone = false;
    try {
      await queue.consume(async (envelope) => {
        if (!jobGone) {
          jobGone = true;
          // As after Redis was away: the job's lock lapsed, BullMQ gave the job out again and its
          // new run ended (it held this lane only if it had it when it claimed). This run drains on.
          const [job] = await bull.getActive();
          await redis.del(`${prefix}bull:inbound:${job!.id}:lock`);
          expect(await bull.remove(job!.id!)).toBe(1);
        }
        handled.add(envelope.id);
      });
      // Before, the lane stayed claimed by the job that no longer exists: its other ten, never.
      await until(
        () => handled.size,
        (n) => n === total,
        20_000,
        50,
      );
      await until(
        async () => (await redis.keys(`${prefix}inbound:claims:*`)).length,
        (n) => n === 0,
        10_000,
        50,
      );
      // Counted for the operator (switchboard_queue_repairs_total).
      expect(repairs).toEqual([['lane_lost', 1]]);
    } finally {
      await bull.close();
    }
  });
});

/** How often the sweep runs in the tests of claims (15 s in a hub). */
const SWEEP_MS = 100;

describe('the Redis-lane queue and claims that no job holds', () => {
  const log = capturingLogger('debug');
  const repairs: [string, number][] = [];
  const ctx = queueOnOwnPrefix({
    sweepEveryMs: SWEEP_MS,
    logger: log.logger,
    onRepair: (repair, lanes) => repairs.push([repair, lanes]),
  });

  it("hands back a lane claimed by a wake job that does not exist: its envelopes are drained, and the claims' index is emptied", async () => {
    const { queue, redis, prefix } = ctx;
    const total = 5;
    for (let n = 0; n < total; n++) {
      const envelope = { ...message(400 + n), from: { id: '+15550003333' } };
      expect(await queue.enqueue(envelope)).toBe('accepted');
    }
    // Claimed for a wake job that BullMQ never had (as a run that ended without releasing its
    // claim, whatever the cause): the wake job the pushes added then finds no lane ready.
    const lanes = new RedisLanes(redis, { prefix, name: 'inbound' });
    const strandedWake = 999_999;
    const claim = await lanes.claim(strandedWake, 4, 20);
    expect(claim.lanes).toHaveLength(1);
    const epoch = claim.lanes[0]!.epoch;
    const handled: string[] = [];
    await queue.consume(async (envelope) => {
      handled.push(envelope.id);
    });
    // Before, the lane waited for that job for ever.
    await until(
      () => handled.length,
      (n) => n === total,
      20_000,
      20,
    );
    expect(handled).toEqual(Array.from({ length: total }, (_, n) => `whatsapp:redelivery.${400 + n}`));
    expect(log.lines.filter((l) => l.event === 'queue.claims_restored')).toMatchObject([
      { level: 40, queue: 'inbound', wake: strandedWake, lanes: [claim.lanes[0]!.lane] },
    ]);
    // Counted for the operator (switchboard_queue_repairs_total).
    expect(repairs).toEqual([['claims', 1]]);
    // Drained under a newer epoch, which fences a drainer of the old one.
    expect(await lanes.read(claim.lanes[0]!.lane, epoch, 1)).toBeNull();
    await until(
      async () => ({
        claims: (await redis.keys(`${prefix}inbound:claims:*`)).length,
        claimants: await redis.scard(`${prefix}inbound:claimants`),
      }),
      ({ claims, claimants }) => claims === 0 && claimants === 0,
      10_000,
      20,
    );
  });
});

describe('the Redis-lane queue and claims left by a version before the claims index', () => {
  const log = capturingLogger('debug');
  const ctx = queueOnOwnPrefix({ sweepEveryMs: SWEEP_MS, logger: log.logger });

  it('finds them with one scan of the keyspace by one worker at a time, hands the lane back, and never scans again', async () => {
    const { queue, redis, prefix } = ctx;
    const total = 3;
    for (let n = 0; n < total; n++) {
      const envelope = { ...message(450 + n), from: { id: '+15550003434' } };
      expect(await queue.enqueue(envelope)).toBe('accepted');
    }
    // Claimed for a wake job that BullMQ never had, by a version that kept no index of claims.
    const lanes = new RedisLanes(redis, { prefix, name: 'inbound' });
    const strandedWake = 888_888;
    expect((await lanes.claim(strandedWake, 4, 20)).lanes).toHaveLength(1);
    expect(await redis.srem(`${prefix}inbound:claimants`, strandedWake)).toBe(1);
    // Keys that are not claim sets, to be passed over by the scan.
    await redis.set(`${prefix}inbound:claims:not-a-wake`, 'x');
    await redis.set(`${prefix}other:claims:777`, 'x');
    // Another worker is scanning: this one leaves it to that one, sweep after sweep.
    const lock = `${prefix}inbound:claimants:seeding`;
    await redis.set(lock, 'another worker');
    const handled: string[] = [];
    await queue.consume(async (envelope) => {
      handled.push(envelope.id);
    });
    await until(
      () => log.lines.filter((l) => l.event === 'queue.swept').length,
      (n) => n >= 3,
      10_000,
      20,
    );
    expect(handled).toEqual([]);
    expect(await redis.exists(`${prefix}inbound:claimants:seeded`)).toBe(0);
    // That worker is gone (its lock lapsed): this one scans.
    await redis.del(lock);
    await until(
      () => handled.length,
      (n) => n === total,
      20_000,
      20,
    );
    expect(handled).toEqual(Array.from({ length: total }, (_, n) => `whatsapp:redelivery.${450 + n}`));
    expect(log.lines.filter((l) => l.event === 'queue.claimants_seeded')).toMatchObject([
      { queue: 'inbound', jobs: 1 },
    ]);
    expect(log.lines.filter((l) => l.event === 'queue.claims_restored')).toMatchObject([
      { queue: 'inbound', wake: strandedWake },
    ]);
    // Done once for the queue: the marker stays, and a second seeding scans nothing.
    expect(await redis.exists(`${prefix}inbound:claimants:seeded`)).toBe(1);
    expect(await lanes.seedClaimants()).toBe('done-before');
    expect(await redis.exists(lock)).toBe(0);
    expect(await redis.sismember(`${prefix}inbound:claimants`, 'not-a-wake')).toBe(0);
  });

  it('leaves the seeding lock alone once it has lapsed and another worker holds it', async () => {
    const { redis, prefix } = ctx;
    // A queue of its own name: the marker the test above set is the inbound queue's.
    const lanes = new RedisLanes(redis, { prefix, name: 'lapsed' });
    const lock = `${prefix}lapsed:claimants:seeding`;
    const outcome = await lanes.seedClaimants(() => {
      // Between the scan's steps this worker's lock lapses, and another worker takes it.
      void redis.set(lock, 'another worker');
      return false;
    });
    expect(outcome).toEqual({ added: 0 });
    expect(await redis.get(lock)).toBe('another worker');
    expect(await redis.exists(`${prefix}lapsed:claimants:seeded`)).toBe(1);
  });
});

describe('the Redis-lane queue and the claims of a job that runs', () => {
  const log = capturingLogger('debug');
  const ctx = queueOnOwnPrefix({ sweepEveryMs: SWEEP_MS, logger: log.logger });

  it('never takes a lane from a wake job that is still running, however long its drain takes', async () => {
    const { queue, redis, prefix } = ctx;
    const total = 3;
    for (let n = 0; n < total; n++) {
      const envelope = { ...message(500 + n), from: { id: '+15550004444' } };
      expect(await queue.enqueue(envelope)).toBe('accepted');
    }
    const lanes = new RedisLanes(redis, { prefix, name: 'inbound' });
    const calls: string[] = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    await queue.consume(async (envelope) => {
      calls.push(envelope.id);
      // The first envelope holds its drain while the sweep looks, many times over.
      if (calls.length === 1) await released;
    });
    await until(
      () => calls.length,
      (n) => n === 1,
      10_000,
      20,
    );
    const [holder] = [...(await lanes.claimants()).entries()];
    expect(holder).toBeDefined();
    const [wake, held] = holder!;
    // Sweeps that saw the running job's claim (two in a row suffice to take a claim of a job
    // that is over): the claim stays the running job's.
    const sweeps = () => log.lines.filter((l) => l.event === 'queue.swept' && l.claimants === 1);
    const before = sweeps().length;
    await until(
      () => sweeps().length - before,
      (n) => n >= 5,
      10_000,
      20,
    );
    expect(sweeps().every((l) => l.over === 0)).toBe(true);
    expect(log.lines.filter((l) => l.event === 'queue.claims_restored')).toEqual([]);
    expect([...(await lanes.claimants()).entries()]).toEqual([[wake, held]]);
    expect(calls).toEqual(['whatsapp:redelivery.500']);
    release();
    await until(
      () => calls.length,
      (n) => n === total,
      10_000,
      20,
    );
    expect(calls).toEqual(Array.from({ length: total }, (_, n) => `whatsapp:redelivery.${500 + n}`));
  });
});
