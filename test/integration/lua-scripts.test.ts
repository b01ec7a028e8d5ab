import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CACHE_COMMANDS } from '../../src/cache/redis-cache.ts';
import { RATE_LIMIT_COMMANDS } from '../../src/limits/redis-rate-limiter.ts';
import { LANE_COMMANDS, type LaneCommands } from '../../src/queue/redis-lanes.ts';
import { defineLuaCommands, readLua } from '../../src/redis-scripts.ts';
import { WRITE_COMMANDS } from '../../src/redis-writes.ts';
import { SCHEDULER_COMMANDS } from '../../src/scheduler/bullmq-scheduler.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';

type Call = (...args: (string | number)[]) => Promise<unknown>;

/**
 * Each Lua script of `src/` run on its own, as the command its module defines, on real Redis
 * under this test's prefix: what it returns and which keys it changes.
 */
describe('Lua scripts, one by one, on real Redis', () => {
  const { prefix, cleanup } = testRedisPrefix();
  let redis: Redis & LaneCommands & Record<string, Call>;
  let n = 0;
  /** A fresh key space per test: `<prefix><n>:`. */
  const space = () => `${prefix}${++n}:`;

  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL) as typeof redis;
    defineLuaCommands(redis, [
      ...LANE_COMMANDS,
      ...RATE_LIMIT_COMMANDS,
      ...CACHE_COMMANDS,
      ...SCHEDULER_COMMANDS,
      ...WRITE_COMMANDS,
    ]);
  });
  afterAll(async () => {
    redis.disconnect();
    await cleanup();
  });

  it('every script is read from its .lua file, shared helpers first, and defined once per connection', () => {
    const push = LANE_COMMANDS.find((c) => c.name === 'lanePush')!;
    expect(push.lua.startsWith(readLua(import.meta.url, '../../src/queue/redis-lanes/wake.lua'))).toBe(true);
    expect(push.lua).toContain(readLua(import.meta.url, '../../src/queue/redis-lanes/push.lua'));
    const before = redis.lanePush;
    defineLuaCommands(redis, LANE_COMMANDS);
    expect(redis.lanePush).toBe(before);
  });

  /** The keys of one lane set under `base`, as `RedisLanes` names them. */
  const lanes = (base: string) => {
    const k = {
      base,
      dedupe: (id: string) => `${base}dedupe:${id}`,
      lane: (l: string) => `${base}lane:${l}`,
      sched: (l: string) => `${base}sched:${l}`,
      claims: (w: number) => `${base}claims:${w}`,
      claimants: `${base}claimants`,
      ready: `${base}ready`,
      epoch: `${base}epoch`,
      depth: `${base}depth`,
      waking: `${base}waking`,
      wakeSeq: `${base}wake-seq`,
      dead: `${base}dead`,
    };
    /** The eight keys both push scripts begin with, in their order. */
    const pushKeys = (lane: string, dedupeId: string) => [
      k.dedupe(dedupeId),
      k.lane(lane),
      k.sched(lane),
      k.ready,
      k.epoch,
      k.depth,
      k.waking,
      k.wakeSeq,
    ];
    return { ...k, pushKeys };
  };
  const push = (k: ReturnType<typeof lanes>, lane: string, item: string, dedupeId = '') =>
    redis.lanePush(...k.pushKeys(lane, dedupeId), item, 60_000, lane, dedupeId ? '1' : '0');
  /** lanePushBatch: [lane, item, dedupe id, rate window, the window's limit a minute] per item. */
  const pushBatchTo = (k: ReturnType<typeof lanes>, ...items: [string, string, string, string, number][]) =>
    redis.lanePushBatch(
      k.ready,
      k.epoch,
      k.depth,
      k.waking,
      k.wakeSeq,
      k.base,
      60_000,
      ...items.flatMap(([lane, item, id, w, limit]) => [lane, item, id, w, limit, 60_000]),
    );

  it('lanePush: queues, schedules a lane once, marks one wake job, and drops a duplicate', async () => {
    const k = lanes(space());
    expect(await push(k, 'a', 'one', 'm1')).toEqual([1, 1]);
    expect(await push(k, 'a', 'two')).toEqual([1, 0]);
    expect(await push(k, 'a', 'one again', 'm1')).toEqual([0, 0]);
    expect(await push(k, 'b', 'three')).toEqual([1, 0]);
    expect(await redis.lrange(k.lane('a'), 0, -1)).toEqual(['one', 'two']);
    expect(await redis.lrange(k.ready, 0, -1)).toEqual(['1|a', '2|b']);
    expect([await redis.get(k.sched('a')), await redis.get(k.depth), await redis.get(k.waking)]).toEqual([
      '1',
      '3',
      '1',
    ]);
  });

  it('lanePushBatch: queues items in order, each deduplicated and counted in its rate window in the same step; a full window or a duplicate changes nothing for that item', async () => {
    const k = lanes(space());
    const window = `${k.base}rl`;
    /** [lane, item, dedupe id, window] per item; every window here allows 2 a minute. */
    const pushBatch = (...items: [string, string, string, string][]) =>
      pushBatchTo(k, ...items.map((i): [string, string, string, string, number] => [...i, 2]));
    // One wake job marked for the batch; a duplicate within the batch is refused.
    expect(
      await pushBatch(['a', 'one', 'm1', window], ['a', 'one again', 'm1', window], ['b', 'x', '', '']),
    ).toEqual([1, 1, 0, 1]);
    // The window is the rate limiter's: a named hit it already holds is not counted twice.
    expect(await redis.switchboardRateHit!(window, 2, 60_000, 'id:m2', 1)).toEqual([1, 0, 0]);
    expect(
      await pushBatch(['a', 'two', 'm2', window], ['a', 'three', 'm3', window], ['b', 'y', 'm4', '']),
    ).toEqual([0, 1, 2, 1]);
    expect(await redis.lrange(k.lane('a'), 0, -1)).toEqual(['one', 'two']);
    expect(await redis.lrange(k.lane('b'), 0, -1)).toEqual(['x', 'y']);
    expect(await redis.lrange(k.ready, 0, -1)).toEqual(['1|a', '2|b']);
    expect(await redis.zrange(window, '0', '-1')).toEqual(['id:m1', 'id:m2']);
    expect(await redis.exists(k.dedupe('m3'))).toBe(0);
    expect(await redis.pttl(k.dedupe('m4'))).toBeGreaterThan(0);
    expect(await redis.get(k.depth)).toBe('4');
    expect(await redis.pttl(window)).toBeGreaterThan(0);
  });

  it('lanePushBatch: a window of expired hits lets the next one in and is trimmed then; a full window refuses without leaving a dedupe mark', async () => {
    const k = lanes(space());
    const window = `${k.base}rl`;
    const pushOne = (id: string, limit: number) => pushBatchTo(k, ['a', id, id, window, limit]);
    // Two hits older than the window (scores are Redis milliseconds), a limit of 2.
    await redis.zadd(window, 1, 'id:old1', 2, 'id:old2');
    expect(await pushOne('n1', 2)).toEqual([1, 1]);
    expect(await redis.zrange(window, '0', '-1')).toEqual(['id:n1']);
    expect(await pushOne('n2', 2)).toEqual([0, 1]);
    // Full of hits inside the window: refused, nothing counted, no mark, nothing queued.
    expect(await pushOne('n3', 2)).toEqual([0, 2]);
    expect(await redis.exists(k.dedupe('n3'))).toBe(0);
    expect(await redis.zrange(window, '0', '-1')).toEqual(['id:n1', 'id:n2']);
    // A hit the full window holds is let through (its dedupe mark gone: an erased person's replay).
    await redis.del(k.dedupe('n2'));
    expect(await pushOne('n2', 2)).toEqual([0, 1]);
    expect(await redis.zcard(window)).toBe(2);
    expect(await redis.lrange(k.lane('a'), 0, -1)).toEqual(['n1', 'n2', 'n2']);
    expect(await redis.get(k.depth)).toBe('3');
  });

  it('laneAckBatch: pops the handled prefix of a lane in one step and returns the chunk after it', async () => {
    const k = lanes(space());
    for (const item of ['v', 'w', 'x', 'y', 'z']) await push(k, 'a', item);
    await redis.sadd(k.claims(1), '1|a');
    const ack = (chunk: number, items: string[]) =>
      redis.laneAckBatch(k.depth, k.base, 'a', 1, 1, '1|a', chunk, items.length, ...items);
    // Last in each reply, the ready list's length (lane a is never claimed from it here).
    expect(await ack(2, ['v', 'w'])).toEqual([['x', 'y'], 1]);
    // Popped up to the first item that is not at the head any more.
    expect(await ack(5, ['x', 'q', 'y'])).toEqual([['y', 'z'], 1]);
    expect(await redis.get(k.depth)).toBe('2');
    expect(await ack(1, ['y', 'z'])).toEqual([1, 1]);
    expect([await redis.exists(k.lane('a'), k.sched('a')), await redis.scard(k.claims(1))]).toEqual([0, 0]);
  });

  it('laneClaim: takes ready lanes with their first items, marks the next job, and gives a restarted job its lanes back', async () => {
    const k = lanes(space());
    await push(k, 'a', 'a1');
    await push(k, 'a', 'a2');
    await push(k, 'b', 'b1');
    const claim = (wake: number) =>
      redis.laneClaim(k.claims(wake), k.ready, k.waking, k.wakeSeq, 1, k.base, 10, '', wake);
    expect(await claim(1)).toEqual([['1|a'], 2, [['a1', 'a2']], [null], 0]);
    expect(await redis.get(k.waking)).toBe('2');
    expect(await redis.smembers(k.claims(1))).toEqual(['1|a']);
    // Listed among the jobs that hold claims (laneClaimants).
    expect(await redis.smembers(k.claimants)).toEqual(['1']);
    // Job 1 runs again (its worker died): the same lane, no new job.
    expect(await claim(1)).toEqual([['1|a'], 0, [['a1', 'a2']], [null], 0]);
    // A lane whose epoch moved on comes back without items.
    await redis.set(k.sched('b'), '9');
    expect(await claim(2)).toEqual([['2|b'], 0, [null], [null], 0]);
    expect(await redis.exists(k.waking)).toBe(0);
  });

  it('laneClaim and laneTopUp: a job that empties the ready list keeps the mark for a while and takes the lanes that become ready; the mark of a newer job stops it', async () => {
    const k = lanes(space());
    await push(k, 'a', 'a1');
    const claim = (wake: number) =>
      redis.laneClaim(k.claims(wake), k.ready, k.waking, k.wakeSeq, 4, k.base, 10, '', wake, 60_000);
    const topUp = (wake: number, max: number, lingerMs: number, busy: boolean) =>
      redis.laneTopUp(
        k.claims(wake),
        k.ready,
        k.waking,
        k.wakeSeq,
        wake,
        max,
        k.base,
        10,
        lingerMs,
        busy ? '1' : '0',
        '',
      );
    expect(await claim(1)).toEqual([['1|a'], 0, [['a1']], [null], 1]);
    expect(await redis.get(k.waking)).toBe('1');
    expect(await redis.pttl(k.waking)).toBeGreaterThan(0);
    // A lane that becomes ready now marks no new job: the lingering job takes it.
    await push(k, 'b', 'b1');
    await push(k, 'c', 'c1');
    await push(k, 'd', 'd1');
    expect(await redis.get(k.waking)).toBe('1');
    // Room for two: the third lane marks the next job, which takes the mark.
    expect(await topUp(1, 2, 60_000, true)).toEqual([['2|b', '3|c'], 2, [['b1'], ['c1']], [null, null], 0]);
    expect(await redis.get(k.waking)).toBe('2');
    expect(await redis.smembers(k.claims(1))).toEqual(expect.arrayContaining(['1|a', '2|b', '3|c']));
    // Job 1 no longer holds the mark: it takes nothing.
    expect(await topUp(1, 4, 60_000, true)).toEqual([[], 0, [], [], 0]);
    expect(await claim(2)).toEqual([['4|d'], 0, [['d1']], [null], 1]);
    // Nothing ready, nothing to drain: the mark goes.
    expect(await topUp(2, 4, 60_000, false)).toEqual([[], 0, [], [], 0]);
    expect(await redis.exists(k.waking)).toBe(0);
    // Letting go with lanes ready marks the next job for them.
    await push(k, 'e', 'e1');
    expect(await redis.get(k.waking)).toBe('3');
    expect(await claim(3)).toEqual([['5|e'], 0, [['e1']], [null], 1]);
    await push(k, 'f', 'f1');
    expect(await topUp(3, 0, 0, true)).toEqual([[], 4, [], [], 0]);
    expect(await redis.get(k.waking)).toBe('4');
    expect(await redis.pttl(k.waking)).toBe(-1);
  });

  it("laneClaim with the session cache's prefix: each lane's cached session id and snapshot come with its items", async () => {
    const k = lanes(space());
    const cache = `${k.base}cache:`;
    await push(k, 'a', 'a1');
    await push(k, 'b', 'b1');
    await push(k, 'c', 'c1');
    await redis.set(`${cache}lane:a`, 's1');
    await redis.set(`${cache}s1:snapshot`, '3|{}');
    await redis.set(`${cache}lane:b`, 's2');
    expect(await redis.laneClaim(k.claims(1), k.ready, k.waking, k.wakeSeq, 3, k.base, 10, cache, 1)).toEqual(
      [['1|a', '2|b', '3|c'], 0, [['a1'], ['b1'], ['c1']], [['s1', '3|{}'], ['s2', null], null], 0],
    );
  });

  it('laneClaimants: the jobs that hold claimed lanes, with their entries; a job whose claims were all released leaves the index', async () => {
    const k = lanes(space());
    await push(k, 'a', 'a1');
    await push(k, 'b', 'b1');
    const claim = (wake: number) =>
      redis.laneClaim(k.claims(wake), k.ready, k.waking, k.wakeSeq, 1, k.base, 10, '', wake);
    await claim(1);
    await claim(2);
    // A job that took nothing is not listed.
    expect(await claim(3)).toEqual([[], 0, [], [], 0]);
    expect((await redis.smembers(k.claimants)).sort()).toEqual(['1', '2']);
    const held = await redis.laneClaimants(k.claimants, k.base);
    expect(
      Object.fromEntries(Array.from({ length: held.length / 2 }, (_, i) => [held[2 * i], held[2 * i + 1]])),
    ).toEqual({
      1: ['1|a'],
      2: ['2|b'],
    });
    // Job 1's lane is finished (its claim released in the same step): it leaves the index.
    await redis.lpop(k.lane('a'));
    expect(await redis.laneFinish(k.lane('a'), k.sched('a'), k.claims(1), 1, '1|a')).toBe(1);
    expect(await redis.laneClaimants(k.claimants, k.base)).toEqual(['2', ['2|b']]);
    expect(await redis.smembers(k.claimants)).toEqual(['2']);
  });

  it('switchboardWrites: sets with a TTL, deletes and publishes, in the order given', async () => {
    const base = space();
    const sub = new Redis(TEST_REDIS_URL);
    const heard: string[] = [];
    sub.on('message', (_ch: string, m: string) => heard.push(m));
    await sub.subscribe(`${base}ch`);
    await redis.set(`${base}gone`, 'x');
    await redis.switchboardWrites!(
      's',
      `${base}a`,
      'one',
      60,
      'p',
      `${base}ch`,
      'first',
      'd',
      `${base}gone`,
      's',
      `${base}a`,
      'two',
      60,
      'p',
      `${base}ch`,
      'second',
    );
    expect([await redis.get(`${base}a`), await redis.exists(`${base}gone`)]).toEqual(['two', 0]);
    expect(await redis.ttl(`${base}a`)).toBeGreaterThan(0);
    await until(
      () => heard.length,
      (n) => n === 2,
      5_000,
      5,
    );
    expect(heard).toEqual(['first', 'second']);
    sub.disconnect();
  });

  it('laneRead: the first items, only for the epoch that owns the lane', async () => {
    const k = lanes(space());
    await push(k, 'a', 'x');
    await push(k, 'a', 'y');
    expect(await redis.laneRead(k.lane('a'), k.sched('a'), 1, 1)).toEqual(['x']);
    expect(await redis.laneRead(k.lane('a'), k.sched('a'), 2, 10)).toBeNull();
  });

  it('laneAck: removes the acknowledged items from the head, in order, and stops at one that is not there', async () => {
    const k = lanes(space());
    for (const item of ['x', 'y', 'z']) await push(k, 'a', item);
    expect(await redis.laneAck(k.lane('a'), k.depth, 'x', 'q', 'y')).toBe(1);
    expect(await redis.laneAck(k.lane('a'), k.depth, 'y')).toBe(1);
    expect(await redis.lrange(k.lane('a'), 0, -1)).toEqual(['z']);
    expect(await redis.get(k.depth)).toBe('1');
  });

  it('laneAckBatch: per lane, acknowledges, and unschedules and releases the claim only when that left the lane empty; else reads the next chunk for its epoch', async () => {
    const k = lanes(space());
    for (const item of ['x', 'y', 'z']) await push(k, 'a', item);
    await push(k, 'b', 'p');
    await redis.sadd(k.claims(1), '1|a', '2|b');
    /** [lane, epoch, items] per lane, all claimed by job 1, chunks of 1. */
    const ackBatch = (...acks: [string, number, string[]][]) =>
      redis.laneAckBatch(
        k.depth,
        k.base,
        ...acks.flatMap(([lane, epoch, items]) => [
          lane,
          epoch,
          1,
          `${epoch}|${lane}`,
          1,
          items.length,
          ...items,
        ]),
      );
    // a: x acknowledged, y comes next; another epoch of b: nothing popped past a missing item, nothing read.
    // Last, the ready list's length (a and b were never claimed here).
    expect(await ackBatch(['a', 1, ['x', 'q']], ['b', 3, []])).toEqual([['y'], 0, 2]);
    expect(await redis.get(k.sched('a'))).toBe('1');
    expect(await redis.get(k.depth)).toBe('3');
    expect(await ackBatch(['a', 1, ['y', 'z']], ['b', 2, ['p']])).toEqual([1, 1, 2]);
    expect([
      await redis.exists(k.sched('a'), k.sched('b')),
      await redis.scard(k.claims(1)),
      await redis.get(k.depth),
    ]).toEqual([0, 0, '0']);
  });

  it('laneFinish: unschedules an empty lane (its own epoch only) and releases the claim; a lane with items stays', async () => {
    const k = lanes(space());
    await push(k, 'a', 'x');
    await redis.sadd(k.claims(1), '1|a');
    expect(await redis.laneFinish(k.lane('a'), k.sched('a'), k.claims(1), 1, '1|a')).toBe(0);
    await redis.lpop(k.lane('a'));
    await redis.set(k.sched('a'), '5'); // a newer epoch took the lane over
    expect(await redis.laneFinish(k.lane('a'), k.sched('a'), k.claims(1), 1, '1|a')).toBe(1);
    expect([await redis.get(k.sched('a')), await redis.scard(k.claims(1))]).toEqual(['5', 0]);
  });

  it('laneHandback: the owning epoch puts the lane back as ready under a new epoch and marks a wake; a stale one changes nothing', async () => {
    const k = lanes(space());
    await push(k, 'a', 'x');
    await redis.lpop(k.ready);
    await redis.del(k.waking);
    const handback = (epoch: number) =>
      redis.laneHandback(k.sched('a'), k.epoch, k.ready, k.waking, k.wakeSeq, epoch, 'a');
    expect(await handback(1)).toEqual([2, 2]);
    expect(await redis.lrange(k.ready, 0, -1)).toEqual(['2|a']);
    expect(await handback(1)).toEqual([0, 0]);
  });

  it('lanePendingWake: 0 when nothing is ready, else the marked wake job, marking one when none is', async () => {
    const k = lanes(space());
    expect(await redis.lanePendingWake(k.ready, k.waking, k.wakeSeq)).toBe(0);
    await push(k, 'a', 'x');
    expect(await redis.lanePendingWake(k.ready, k.waking, k.wakeSeq)).toBe(1);
    await redis.del(k.waking);
    expect(await redis.lanePendingWake(k.ready, k.waking, k.wakeSeq)).toBe(2);
    expect(await redis.get(k.waking)).toBe('2');
  });

  it('laneDeadLetter: moves the head item, and only it, to the dead letters with its record', async () => {
    const k = lanes(space());
    await push(k, 'a', 'x');
    await push(k, 'a', 'y');
    expect(await redis.laneDeadLetter(k.lane('a'), k.dead, k.depth, 'y', '{"r":1}')).toBe(0);
    expect(await redis.laneDeadLetter(k.lane('a'), k.dead, k.depth, 'x', '{"r":2}')).toBe(1);
    expect(await redis.lrange(k.lane('a'), 0, -1)).toEqual(['y']);
    expect(await redis.lrange(k.dead, 0, -1)).toEqual(['{"r":2}']);
    expect(await redis.get(k.depth)).toBe('1');
  });

  it('lanePruneDead: drops letters from the head while theirs was set aside before the cutoff, at most the number given; an unreadable one goes too', async () => {
    const k = lanes(space());
    const letter = (at: string) => JSON.stringify({ lane: 'a', item: at, error: 'e', attempts: 10, at });
    await redis.rpush(
      k.dead,
      letter('2026-01-01T00:00:00.000Z'),
      'not json',
      letter('2026-01-02T00:00:00.000Z'),
      letter('2026-01-03T00:00:00.000Z'),
      letter('2026-01-02T12:00:00.000Z'),
    );
    expect(await redis.lanePruneDead(k.dead, '2026-01-03T00:00:00.000Z', 2)).toBe(2);
    expect(await redis.llen(k.dead)).toBe(3);
    // The cutoff itself is kept, and what sits behind it waits for a later prune.
    expect(await redis.lanePruneDead(k.dead, '2026-01-03T00:00:00.000Z', 10)).toBe(1);
    expect(await redis.lrange(k.dead, 0, -1)).toEqual([
      letter('2026-01-03T00:00:00.000Z'),
      letter('2026-01-02T12:00:00.000Z'),
    ]);
    expect(await redis.lanePruneDead(k.dead, '2027-01-01T00:00:00.000Z', 10)).toBe(2);
    expect(await redis.exists(k.dead)).toBe(0);
    expect(await redis.lanePruneDead(k.dead, '2027-01-01T00:00:00.000Z', 10)).toBe(0);
  });

  it('switchboardRateHit: counts hits in the window, refuses over the limit with the wait, and counts a named hit once', async () => {
    const key = `${space()}rl`;
    const hit = (member: string, named = 0) => redis.switchboardRateHit!(key, 2, 60_000, member, named);
    expect(await hit('id:m1', 1)).toEqual([1, 0, 1]);
    expect(await hit('id:m1', 1)).toEqual([1, 0, 1]);
    expect(await hit('r2')).toEqual([1, 0, 0]);
    const [allowed, retryAfterMs, remaining] = (await hit('r3')) as number[];
    expect([allowed, remaining]).toEqual([0, 0]);
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(await redis.zcard(key)).toBe(2);
    expect(await redis.pttl(key)).toBeGreaterThan(0);
  });

  it('switchboardRatePeek: reads the window without recording a hit', async () => {
    const key = `${space()}rl`;
    expect(await redis.switchboardRatePeek!(key, 1, 60_000)).toEqual([1, 0, 1]);
    expect(await redis.exists(key)).toBe(0);
    await redis.switchboardRateHit!(key, 1, 60_000, 'r1', 0);
    const [allowed, retryAfterMs] = (await redis.switchboardRatePeek!(key, 1, 60_000)) as number[];
    expect(allowed).toBe(0);
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(await redis.zcard(key)).toBe(1);
  });

  it('sessionRevalidate: 1 for the same version (reading only the head), the snapshot for another, nothing when absent', async () => {
    const key = `${space()}snapshot`;
    expect(await redis.sessionRevalidate!(key, 7, 24)).toBeNull();
    await redis.set(key, `7|{"big":"${'x'.repeat(1000)}"}`);
    expect(await redis.sessionRevalidate!(key, 7, 24)).toBe(1);
    expect(await redis.sessionRevalidate!(key, 6, 24)).toBe(`7|{"big":"${'x'.repeat(1000)}"}`);
  });

  it('schedulerReleaseId: deletes the id only while it names that job', async () => {
    const key = `${space()}scheduler:ids`;
    await redis.hset(key, 'reminder', 'job-2');
    expect(await redis.schedulerReleaseId!(key, 'reminder', 'job-1')).toBe(0);
    expect(await redis.hget(key, 'reminder')).toBe('job-2');
    expect(await redis.schedulerReleaseId!(key, 'reminder', 'job-2')).toBe(1);
    expect(await redis.hexists(key, 'reminder')).toBe(0);
  });

  it('schedulerReplayId: names the replay while the id names the set-aside job or none, never over a newer job', async () => {
    const base = space();
    const ids = `${base}scheduler:ids`;
    const adding = `${base}scheduler:adding`;
    // The id names the set-aside job (as after its last failed run): the replay takes it.
    await redis.hset(ids, 'reminder', 'failed-1');
    expect(await redis.schedulerReplayId!(ids, adding, 'reminder', 'failed-1', 'replay-1', '{"r":1}')).toBe(
      1,
    );
    expect(await redis.hget(ids, 'reminder')).toBe('replay-1');
    expect(await redis.hgetall(adding)).toEqual({ 'replay-1': '{"r":1}' });
    // The id names a newer job (the owner scheduled it again since): nothing changes.
    await redis.hset(ids, 'reminder', 'newer');
    expect(await redis.schedulerReplayId!(ids, adding, 'reminder', 'failed-1', 'replay-2', '{"r":2}')).toBe(
      0,
    );
    expect(await redis.hget(ids, 'reminder')).toBe('newer');
    expect(await redis.hexists(adding, 'replay-2')).toBe(0);
    // The id names nothing (its job was set aside before ids went on naming such jobs).
    expect(await redis.schedulerReplayId!(ids, adding, 'other', 'failed-3', 'replay-3', '{"r":3}')).toBe(1);
    expect(await redis.hget(ids, 'other')).toBe('replay-3');
  });
});
