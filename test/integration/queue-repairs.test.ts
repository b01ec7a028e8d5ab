import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { repairAndAnswer, strandedMessage } from '../helpers/stranded-lane.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'operator-secret-for-queue-repairs-tests';

describe('a worker hub repairs the shared queue, and counts it', () => {
  const redis = testRedisPrefix();
  let gateway: RunningHub;
  let worker: RunningHub | undefined;
  let connection: Redis;

  beforeAll(async () => {
    // The gateway alone first: it queues, and nothing drains until the worker starts.
    gateway = await startTestHub(
      { redisUrl: TEST_REDIS_URL, redisPrefix: redis.prefix, adminToken: ADMIN_TOKEN },
      { role: 'gateway' },
    );
    connection = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    connection?.disconnect();
    await worker?.stop();
    await gateway?.stop();
    await redis.cleanup();
  });

  it('a message whose lane a wake job that no longer exists held is answered, and switchboard_queue_repairs_total says so', async () => {
    // The session's lane ends up claimed by a job that is gone (as when a run ends without
    // releasing its claim), and the wake job the accept added is gone too.
    const auth = await strandedMessage(gateway.url, connection, redis.prefix, 'hello');
    // What an operator sees of it (the exchanges checked against the OpenAPI document).
    const contract = openApiContract(await (await fetch(`${gateway.url}/openapi.json`)).json());
    const breaches: string[] = [];
    const admin = adminClient(gateway.url, ADMIN_TOKEN, (e) => breaches.push(...contract.check(e)));
    const queues = async () => {
      const res = await admin('GET', '/api/admin/queue');
      expect(res.status).toBe(200);
      return res.json.queues as { queue: string; depth: number; stranded: { lanes: number; jobs: number } }[];
    };
    const stuck = await queues();
    expect(stuck.map((q) => q.queue)).toEqual(['inbound', 'outbound']);
    expect(stuck[0]).toMatchObject({
      driver: 'redis-lanes',
      // The session's start (its greeting) and the message, in one lane.
      depth: 2,
      readyLanes: 0,
      wakeJob: null,
      claimed: { lanes: 1, jobs: 1 },
      stranded: { lanes: 1, jobs: 1 },
    });

    // A worker starts: its sweep hands the lane back, and the message is answered.
    worker = await repairAndAnswer(gateway, redis.prefix, auth);
    const counted = await worker.hub.metrics.registry.getSingleMetricAsString(
      'switchboard_queue_repairs_total',
    );
    expect(counted).toContain('switchboard_queue_repairs_total{queue="inbound",repair="claims"} 1');
    // Nothing left stuck, nothing queued.
    expect((await until(queues, (q) => q[0]!.depth === 0, 10_000, 50))[0]).toMatchObject({
      claimed: { lanes: 0, jobs: 0 },
      stranded: { lanes: 0, jobs: 0 },
    });
    expect(breaches).toEqual([]);
  });
});
