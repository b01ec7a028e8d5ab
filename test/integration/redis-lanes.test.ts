import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisLanes } from '../../src/queue/redis-lanes.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';

describe('lanes wait in a ready list, and one wake job claims several', () => {
  const { prefix, cleanup } = testRedisPrefix();
  let redis: Redis;
  let lanes: RedisLanes;

  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL);
    lanes = new RedisLanes(redis, { prefix, name: 'inbound' });
  });
  afterAll(async () => {
    redis.disconnect();
    await cleanup();
  });

  it('marks one wake job for lanes that become ready together, and hands the rest to the next', async () => {
    // The first ready lane marks wake job 1; lanes that become ready before it runs share it.
    expect(await lanes.push('a', 'a1')).toEqual({ status: 'accepted', wake: 1 });
    expect(await lanes.push('a', 'a2')).toEqual({ status: 'accepted' });
    expect(await lanes.push('b', 'b1')).toEqual({ status: 'accepted' });
    expect(await lanes.push('c', 'c1')).toEqual({ status: 'accepted' });

    // Job 1 takes two lanes, each with its first chunk, and marks job 2 for the lane left ready.
    const first = await lanes.claim(1, 2, 20);
    expect(first.lanes.map((l) => [l.lane, l.items])).toEqual([
      ['a', ['a1', 'a2']],
      ['b', ['b1']],
    ]);
    expect(first.next).toBe(2);

    // Job 1 run again (its worker died) gets back exactly the lanes it holds, and takes no new one.
    const again = await lanes.claim(1, 2, 20);
    expect(again.lanes.map((l) => l.lane).sort()).toEqual(['a', 'b']);
    expect(again.next).toBeUndefined();

    // A lane's last acknowledgement unschedules it and releases the claim in the same step.
    const b = first.lanes.find((l) => l.lane === 'b')!;
    expect(await lanes.ackAndNext(b, ['b1'], 20)).toBe('finished');
    expect((await lanes.claim(1, 2, 20)).lanes.map((l) => l.lane)).toEqual(['a']);
    const a = first.lanes.find((l) => l.lane === 'a')!;
    // a2 is still there: it comes with the acknowledgement.
    expect(await lanes.ackAndNext(a, ['a1'], 20)).toEqual(['a2']);
    expect(await lanes.ackAndNext(a, ['a2'], 20)).toBe('finished');
    expect(await redis.exists(`${prefix}inbound:claims:1`)).toBe(0);

    // Job 2 takes the last ready lane; with nothing left ready, the next push marks a new job.
    const second = await lanes.claim(2, 32, 20);
    expect(second.lanes.map((l) => [l.lane, l.items])).toEqual([['c', ['c1']]]);
    expect(second.next).toBeUndefined();
    expect(await lanes.pendingWake()).toBeUndefined();
    expect(await lanes.push('d', 'd1')).toEqual({ status: 'accepted', wake: 3 });
    // A producer that died before adding job 3: the sweep asks which job the ready lanes wait for.
    expect(await lanes.pendingWake()).toBe(3);
    expect(await lanes.depth()).toBe(2);
  });

  it('gives a claimed lane no items once a newer epoch owns it, and hands a lane back to a new job', async () => {
    const { wake } = (await lanes.push('e', 'e1')) as { wake?: number };
    const claimed = await lanes.claim(wake ?? 3, 32, 20);
    const e = claimed.lanes.find((l) => l.lane === 'e')!;
    expect(e.items).toEqual(['e1']);
    // Shutdown: the drainer hands the lane on under a new epoch; the old epoch may no longer read it.
    const handed = await lanes.handback('e', e.epoch);
    expect(handed?.epoch).toBeGreaterThan(e.epoch);
    expect(await lanes.read('e', e.epoch, 20)).toBeNull();
    expect(await lanes.ackAndNext(e, [], 20)).toBeNull();
    expect(await lanes.handback('e', e.epoch)).toBeUndefined();
    const next = await lanes.claim(handed?.wake ?? 99, 32, 20);
    expect(next.lanes.map((l) => [l.lane, l.epoch, l.items])).toEqual([['e', handed?.epoch, ['e1']]]);
  });

  async function setAside(lane: string, item: string): Promise<void> {
    await lanes.push(lane, item);
    expect(await lanes.deadLetter(lane, item, 'refused', 10)).toBe(true);
  }

  it('keeps every letter not yet requeued when a requeue fails part-way, and replays them later', async () => {
    await setAside('p', 'p1');
    await setAside('q', 'q1');
    await setAside('r', 'r1');

    const requeued: string[] = [];
    const failAtSecond = async (letter: { item: string }) => {
      if (requeued.length === 1) throw new Error('Redis went away');
      requeued.push(letter.item);
    };
    await expect(lanes.replayDeadLetters(failAtSecond)).rejects.toThrow('Redis went away');
    expect(requeued).toEqual(['p1']);
    // The one requeued is gone from the dead letters; the two after it wait, in their order.
    expect((await lanes.deadLetters()).map((d) => d.item)).toEqual(['q1', 'r1']);

    expect(await lanes.replayDeadLetters(async (letter) => requeued.push(letter.item))).toBe(2);
    expect(requeued).toEqual(['p1', 'q1', 'r1']);
    expect(await lanes.deadLetters()).toEqual([]);
    expect(await lanes.replayDeadLetters(async () => undefined)).toBe(0);
  });
});
