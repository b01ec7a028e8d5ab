import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LaneRunner } from '../../src/queue/lane-runner.ts';
import { RedisLanes } from '../../src/queue/redis-lanes.ts';
import { connectRedis } from '../../src/redis.ts';
import { logRedisOutages } from '../../src/redis-outage.ts';
import { createBullmqScheduler } from '../../src/scheduler/bullmq-scheduler.ts';
import type { Scheduler } from '../../src/scheduler/scheduler.ts';
import { tempDir } from '../helpers/database.ts';
import { freePort } from '../helpers/free-port.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { TestRedisServer } from '../helpers/redis-server.ts';
import { until } from '../helpers/until.ts';

const EVENTS = {
  'queue.producer_error': 'queue.producer_recovered',
  'queue.worker_error': 'queue.worker_recovered',
  'scheduler.queue_error': 'scheduler.queue_recovered',
  'scheduler.worker_error': 'scheduler.worker_recovered',
} as const;

describe('logRedisOutages', () => {
  /** A stand-in for a BullMQ Queue: its errors, and its backend's `ready`. */
  const fakeQueue = () => {
    const queue = new EventEmitter();
    const backend = new EventEmitter();
    return Object.assign(queue, { getBackend: () => backend, backend });
  };
  const refused = () =>
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });

  it('logs an outage once, counts the rest, and sums it up when a connection is ready again', () => {
    const { logger, lines } = capturingLogger('info');
    const queue = fakeQueue();
    let clock = 1_000;
    logRedisOutages(
      queue,
      logger,
      { error: 'x.error', recovered: 'x.recovered' },
      { queue: 'inbound' },
      () => clock,
    );
    queue.backend.emit('ready'); // the first connection: nothing to say
    for (let n = 0; n < 50; n++) queue.emit('error', refused());
    clock += 12_345;
    queue.backend.emit('ready');
    expect(
      lines.map(({ level, event, queue, err, errors, downMs }) => ({
        level,
        event,
        queue,
        err,
        errors,
        downMs,
      })),
    ).toEqual([
      {
        level: 40,
        event: 'x.error',
        queue: 'inbound',
        err: 'connect ECONNREFUSED 127.0.0.1:6379',
        errors: undefined,
        downMs: undefined,
      },
      { level: 30, event: 'x.recovered', queue: 'inbound', err: undefined, errors: 50, downMs: 12_345 },
    ]);
    // The next outage is logged again.
    queue.emit('error', refused());
    expect(lines.filter((l) => l.event === 'x.error')).toHaveLength(2);
  });

  it('logs every error that is not a lost connection', () => {
    const { logger, lines } = capturingLogger('info');
    const queue = fakeQueue();
    logRedisOutages(queue, logger, { error: 'x.error', recovered: 'x.recovered' });
    for (let n = 0; n < 3; n++) queue.emit('error', new Error('ERR Error running script: bad key'));
    expect(lines.filter((l) => l.event === 'x.error')).toHaveLength(3);
  });
});

/**
 * A real Redis stopped under a lane queue (producer and worker) and the durable scheduler (queue
 * and worker): each logs the outage once however often BullMQ retries, then its end.
 */
describe('Redis away: the queues and the scheduler log it once', () => {
  let dir: string;
  let server: TestRedisServer;
  const captured = capturingLogger('info');
  const clients: ReturnType<typeof connectRedis>[] = [];
  let runner: LaneRunner;
  let scheduler: Scheduler;
  /** Connection errors the queues' shared connection has seen (each is an error of its Queue too). */
  let producerErrors = 0;

  beforeAll(async () => {
    dir = await tempDir('sbt-redis-logs-');
    server = new TestRedisServer(await freePort(), dir);
    await server.start();
    const prefix = 'sbt-outage:';
    const { logger } = captured;
    const shared = connectRedis(server.url, logger, 'test-queues');
    clients.push(shared);
    shared.on('error', () => {
      producerErrors++;
    });
    runner = new LaneRunner({
      name: 'inbound',
      redisUrl: server.url,
      prefix,
      lanes: new RedisLanes(shared, { prefix, name: 'inbound' }),
      logger,
      connection: shared,
    });
    runner.start(async () => undefined as never, 1);
    scheduler = createBullmqScheduler({ redis: shared, redisUrl: server.url, prefix, logger });
    await scheduler.start();
  });
  afterAll(async () => {
    await scheduler?.stop();
    await runner?.stop();
    for (const c of clients) c.disconnect();
    await server?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('one warning per queue and worker, then one line each when Redis is back', async () => {
    const count = (event: string) => captured.lines.filter((l) => l.event === event).length;
    await server.stop();
    // BullMQ goes on retrying: wait for every part to have said so, and for many more errors.
    await until(
      () => Object.keys(EVENTS).every((event) => count(event) > 0) && producerErrors >= 10,
      (done) => done,
      60_000,
      100,
    );
    for (const event of Object.keys(EVENTS)) expect(count(event), event).toBe(1);

    await server.start();
    await until(
      () => Object.values(EVENTS).every((event) => count(event) > 0),
      (done) => done,
      60_000,
      100,
    );
    for (const [error, recovered] of Object.entries(EVENTS)) {
      expect(count(error), error).toBe(1);
      expect(count(recovered), recovered).toBe(1);
    }
    const producer = captured.lines.find((l) => l.event === 'queue.producer_recovered')!;
    expect(producer).toMatchObject({ queue: 'inbound', level: 30 });
    expect(producer.errors as number).toBeGreaterThanOrEqual(10);
    expect(producer.downMs as number).toBeGreaterThan(0);
  });
});
