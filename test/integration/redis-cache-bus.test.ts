import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisBus } from '../../src/bus/redis-bus.ts';
import { createLayeredCache } from '../../src/cache/layered-cache.ts';
import { createMemoryCache } from '../../src/cache/memory-cache.ts';
import { createRedisCache } from '../../src/cache/redis-cache.ts';
import { RedisWrites } from '../../src/redis-writes.ts';
import { emptyState, type SessionSnapshot } from '../../src/store/records.ts';
import { silentLogger } from '../helpers/database.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';

const AT = '2026-11-21T10:00:00.000Z';
const snapshot = (id: string): SessionSnapshot => ({
  session: {
    id,
    bot: 'default',
    channel: 'api',
    nativeKey: id,
    userId: null,
    authLevel: 'anonymous',
    replyTo: null,
    meta: {},
    createdAt: AT,
    lastActivityAt: AT,
    expiresAt: null,
    endedAt: null,
    messageCount: 0,
    lastSeq: 0,
  },
  state: { ...emptyState(), variables: { x: 1 } },
});

describe('Redis cache and pub/sub', () => {
  const { prefix, cleanup } = testRedisPrefix();
  let redis: Redis;
  let sub: Redis;
  /** The workers' own connections. */
  const connections: Redis[] = [];

  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL);
    sub = new Redis(TEST_REDIS_URL);
  });
  afterAll(async () => {
    redis.disconnect();
    sub.disconnect();
    for (const c of connections) c.disconnect();
    await cleanup();
  });

  it('caches snapshots under keys that start with the session id, with a TTL', async () => {
    const cache = createRedisCache(redis, { prefix, ttlSeconds: 60 });
    await cache.set(snapshot('s-1'));
    expect(await cache.get('s-1')).toEqual(snapshot('s-1'));
    const keys = await redis.keys(`${prefix}s-1*`);
    expect(keys).toEqual([`${prefix}s-1:snapshot`]);
    const ttl = await redis.ttl(keys[0]!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);
    await cache.delete('s-1');
    expect(await cache.get('s-1')).toBeUndefined();
  });

  /**
   * A worker process's cache: its own memory in front of the shared Redis, on a Redis connection
   * of its own (as two processes have), so one worker's write-behind can still be on its way while
   * the other asks.
   */
  const worker = () => {
    const connection = new Redis(TEST_REDIS_URL);
    connections.push(connection);
    const cache = createLayeredCache(
      createMemoryCache({ maxSessions: 10, ttlSeconds: 60 }),
      createRedisCache(connection, { prefix, ttlSeconds: 60 }),
    );
    return { cache, connection };
  };
  /** The state version of the shared copy, as a third process sees it. */
  const sharedVersion = async (id: string) =>
    (await createRedisCache(redis, { prefix, ttlSeconds: 60 }).get(id))?.state.version;
  const untilShared = (id: string, version: number) =>
    until(
      () => sharedVersion(id),
      (v) => v === version,
      5_000,
      5,
    );

  it('gives a process its own copy only while no other process has committed a newer one', async () => {
    const [{ cache: a, connection: aConnection }, { cache: b }] = [worker(), worker()];
    const at = (version: number, x: number): SessionSnapshot => {
      const s = snapshot('s-2');
      return { ...s, state: { ...s.state, version, variables: { x } } };
    };
    await a.set(at(1, 1));
    await untilShared('s-2', 1);
    expect((await b.get('s-2'))?.state.variables).toEqual({ x: 1 });

    // a commits version 2 while its connection is busy for 300 ms (a slow network, a long
    // command): its write-behind waits on that connection. b, on its own, still sees version 1
    // shared and keeps its copy: the lag the engine's commit check covers (a stale turn is refused
    // and computed again).
    const busy = aConnection.blpop(`${prefix}nothing`, 0.3);
    await a.set(at(2, 2));
    expect((await b.get('s-2'))?.state).toMatchObject({ version: 1, variables: { x: 1 } });
    await busy;
    await untilShared('s-2', 2);
    // Once the shared copy says version 2, b's copy of version 1 is not used.
    expect((await b.get('s-2'))?.state).toMatchObject({ version: 2, variables: { x: 2 } });
    expect((await a.get('s-2'))?.state.version).toBe(2);
    // A shared copy older than the local one (a lost write-behind): neither is trusted.
    await createRedisCache(redis, { prefix, ttlSeconds: 60 }).set(at(1, 1));
    expect(await a.get('s-2')).toBeUndefined();
    await a.delete('s-2');
    expect(await b.get('s-2')).toBeUndefined();
  });

  it('keeps the states of a drain in the process until its last turn, then shares that one', async () => {
    const [{ cache: a }, { cache: b }] = [worker(), worker()];
    const at = (version: number): SessionSnapshot => {
      const s = snapshot('s-3');
      return { ...s, state: { ...s.state, version, variables: { version } } };
    };
    await a.set(at(1));
    await a.set(at(2), { localOnly: true });
    await a.set(at(3), { localOnly: true });
    await untilShared('s-3', 1);
    // Redis saw only version 1; the process that holds the lane has its latest state.
    expect((await b.get('s-3'))?.state.version).toBe(1);
    expect((await a.get('s-3', { trustLocal: true }))?.state.version).toBe(3);
    await a.set(at(4));
    await untilShared('s-3', 4);
    expect((await b.get('s-3'))?.state.version).toBe(4);
  });

  it("uses once, instead of asking Redis, what a lane's claim read from the shared cache", async () => {
    const { cache, connection } = worker();
    const at = (version: number): SessionSnapshot => {
      const s = snapshot('s-4');
      return { ...s, state: { ...s.state, version, variables: { version } } };
    };
    const shared = createRedisCache(redis, { prefix, ttlSeconds: 60 });
    const stored = (version: number) => `${version}|${JSON.stringify(at(version))}`;
    await cache.set(at(1), { localOnly: true });
    // What this process's connection asks Redis, from here on (once connected).
    await connection.ping();
    const asked: string[] = [];
    const sendCommand = connection.sendCommand.bind(connection);
    connection.sendCommand = (command, stream) => {
      asked.push(command.name);
      return sendCommand(command, stream);
    };
    // The claim saw version 1 shared, and the lane's session id: no round trip for either.
    cache.prime('lane-4', 's-4', stored(1));
    expect(await cache.getSessionId('lane-4')).toBe('s-4');
    expect((await cache.get('s-4'))?.state.version).toBe(1);
    expect(asked).toEqual([]);
    // The claim saw version 2 (another process's turn): its snapshot replaces the local one.
    cache.prime('lane-4', 's-4', stored(2));
    expect((await cache.get('s-4'))?.state.variables).toEqual({ version: 2 });
    expect(asked).toEqual([]);
    // Used once: the next read asks Redis again (which holds no copy: neither is trusted).
    expect(await cache.get('s-4')).toBeUndefined();
    expect(asked).toEqual(['evalsha']);
    // The claim saw no shared copy: no local copy is trusted either.
    await cache.set(at(3), { localOnly: true });
    cache.prime('lane-4', 's-4', null);
    expect(await cache.get('s-4')).toBeUndefined();
    // This process's own write after the claim makes what the claim saw stale: Redis is asked.
    await shared.set(at(5));
    cache.prime('lane-4', 's-4', stored(4));
    await cache.set(at(5), { localOnly: true });
    expect((await cache.get('s-4'))?.state.version).toBe(5);
    expect(asked.slice(-1)).toEqual(['evalsha']);
  });

  it('delivers published messages to every subscriber of a topic, once each, and stops after unsubscribe', async () => {
    const bus = createRedisBus(redis, sub, { prefix, logger: silentLogger });
    const a: unknown[] = [];
    const b: unknown[] = [];
    const offA = await bus.subscribe('t1', (m) => a.push(m));
    const offB = await bus.subscribe('t1', (m) => b.push(m));
    // A last message on the topic is the signal: Redis delivers a connection's messages in order.
    const through = (list: unknown[], n: string) =>
      until(() => list.some((m) => (m as { n: unknown }).n === n), Boolean, 5_000, 5);
    await bus.publish('t1', { n: 1 });
    await bus.publish('other', { n: 2 });
    await bus.publish('t1', { n: 'end 1' });
    await Promise.all([through(a, 'end 1'), through(b, 'end 1')]);
    expect(a).toEqual([{ n: 1 }, { n: 'end 1' }]);
    expect(b).toEqual([{ n: 1 }, { n: 'end 1' }]);
    await offA();
    await bus.publish('t1', { n: 3 });
    await bus.publish('t1', { n: 'end 2' });
    await through(b, 'end 2');
    expect(a).toEqual([{ n: 1 }, { n: 'end 1' }]);
    expect(b).toEqual([{ n: 1 }, { n: 'end 1' }, { n: 3 }, { n: 'end 2' }]);
    await offB();
  });

  it('with batched writes: the cache writes and notices of one moment go in one command, in order', async () => {
    const connection = new Redis(TEST_REDIS_URL);
    connections.push(connection);
    await connection.ping();
    const writes = new RedisWrites(connection);
    const cache = createRedisCache(connection, { prefix, ttlSeconds: 60, writes });
    const bus = createRedisBus(connection, sub, { prefix, logger: silentLogger, writes });
    const heard: unknown[] = [];
    const off = await bus.subscribe('batched', (m) => heard.push(m));
    // The script loaded (a first EVALSHA may be answered NOSCRIPT and sent again as EVAL).
    await writes.del(`${prefix}nothing`);
    const asked: string[] = [];
    const sendCommand = connection.sendCommand.bind(connection);
    connection.sendCommand = (command, stream) => {
      asked.push(command.name);
      return sendCommand(command, stream);
    };
    await Promise.all([
      cache.set(snapshot('s-5')),
      bus.publish('batched', { n: 1 }),
      cache.setSessionId('lane-5', 's-5'),
      cache.delete('s-5'),
      bus.publish('batched', { n: 2 }),
    ]);
    expect(asked).toEqual(['evalsha']);
    expect([await cache.get('s-5'), await cache.getSessionId('lane-5')]).toEqual([undefined, 's-5']);
    await until(
      () => heard.length,
      (n) => n === 2,
      5_000,
      5,
    );
    expect(heard).toEqual([{ n: 1 }, { n: 2 }]);
    await off();
  });

  it('subscribes a topic again once its last subscriber has left (two at once share one SUBSCRIBE)', async () => {
    const bus = createRedisBus(redis, sub, { prefix, logger: silentLogger });
    const through = (list: unknown[], n: string) =>
      until(() => list.some((m) => (m as { n: unknown }).n === n), Boolean, 5_000, 5);
    const a: unknown[] = [];
    const b: unknown[] = [];
    const [offA, offB] = await Promise.all([
      bus.subscribe('t2', (m) => a.push(m)),
      bus.subscribe('t2', (m) => b.push(m)),
    ]);
    await bus.publish('t2', { n: 'end 1' });
    await Promise.all([through(a, 'end 1'), through(b, 'end 1')]);
    await offA();
    await offB();
    const c: unknown[] = [];
    const offC = await bus.subscribe('t2', (m) => c.push(m));
    await bus.publish('t2', { n: 'end 2' });
    await through(c, 'end 2');
    expect(c).toEqual([{ n: 'end 2' }]);
    expect(a).toEqual([{ n: 'end 1' }]);
    expect(b).toEqual([{ n: 'end 1' }]);
    await offC();
  });
});

describe('a hub with Redis: the cache is only a cache', () => {
  const { prefix, cleanup } = testRedisPrefix();
  let running: RunningHub;

  beforeAll(async () => {
    running = await startTestHub({ redisUrl: TEST_REDIS_URL, redisPrefix: prefix });
  });
  afterAll(async () => {
    await running?.stop();
    await cleanup();
  });

  it('loses nothing when every cached key disappears mid-conversation', async () => {
    const api = apiClient(running.url);
    const s = await api.createSession();
    expect((await api.chat(s.token, 'one')).json.replies[0].text).toContain('message #1');
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const keys = await redis.keys(`${prefix}*`);
      expect(keys).toContain(`${prefix}${s.session_id}:snapshot`);
      await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
    expect((await api.chat(s.token, 'two')).json.replies[0].text).toContain('message #2');
    const state = await api.call('GET', '/api/session', { token: s.token });
    expect(state.json.state.variables).toEqual({ last_message: 'two' });
  });

  it('recomputes a turn when the cache holds an older state than PostgreSQL', async () => {
    const api = apiClient(running.url);
    const s = await api.createSession();
    await api.chat(s.token, 'one');
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const key = `${prefix}${s.session_id}:snapshot`;
      const stale = await redis.get(key);
      await api.chat(s.token, 'two');
      // Put the older snapshot back, as a lagging writer would.
      await redis.set(key, stale!);
    } finally {
      redis.disconnect();
    }
    const third = await api.chat(s.token, 'three');
    expect(third.json.replies[0].text).toBe('You said: three (message #3 in this session)');
    const history = await api.history(s.token);
    expect(
      history.json.messages
        .filter((m: { role: string }) => m.role === 'user')
        .map((m: { text: string }) => m.text),
    ).toEqual(['one', 'two', 'three']);
  });
});
