import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentVia, followEvents } from '../helpers/agents.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { startOwnRedis, type TestRedisServer } from '../helpers/redis-server.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'agent-events-redis-away-admin-token-0123456789';
/** Far longer than an answer takes (about 5 s: the subscription's bound): a bound, not a timing. */
const ANSWER_BOUND_MS = 60_000;

/**
 * `GET /api/agent/events` subscribes (Redis pub/sub) before it answers. While Redis is away it
 * answers 503 `unavailable` with Retry-After, so the console shows the connection lost and retries,
 * instead of 200 with no `ready` and no events until Redis is back.
 */
describe('GET /api/agent/events while Redis is away', () => {
  let redis: TestRedisServer;
  let closeRedis: (() => Promise<void>) | undefined;
  let running: RunningHub;

  beforeAll(async () => {
    ({ redis, close: closeRedis } = await startOwnRedis('sbt-events-redis-'));
    running = await startTestHub({
      redisUrl: redis.url,
      redisPrefix: 'agent-events-away:',
      adminToken: ADMIN_TOKEN,
    });
  }, 60_000);
  afterAll(async () => {
    await running?.stop();
    await closeRedis?.();
  });

  it('answers 503 with Retry-After rather than an empty stream, and the reconnection gets ready once Redis is back', async () => {
    const made = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Ada',
      email: 'ada@example.com',
      bots: ['*'],
    });
    const connectionsBefore = await redis.connectionNames();
    await redis.stop();

    const controller = new AbortController();
    const bound = setTimeout(() => controller.abort(), ANSWER_BOUND_MS);
    try {
      const res = await fetch(`${running.url}/api/agent/events`, {
        headers: { authorization: `Bearer ${made.token}` },
        signal: controller.signal,
      });
      const contentType = res.headers.get('content-type') ?? '';
      expect({
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        body: contentType.startsWith('application/json') ? await res.json() : contentType,
      }).toEqual({
        status: 503,
        retryAfter: '2',
        body: {
          error: {
            code: 'unavailable',
            message: 'a service the hub depends on is not reachable right now; retry shortly',
          },
        },
      });
    } finally {
      clearTimeout(bound);
      controller.abort();
    }

    await redis.start();
    // Every Redis connection of the hub is back (its scheduler's worker's too) before the test goes
    // on: a hub stopped while its BullMQ worker was still reconnecting did not stop.
    await until(
      () => redis.connectionNames(),
      (names) => names === connectionsBefore,
      60_000,
      250,
    );
    const stream = await until(
      () => followEvents(running.url, made.token).catch(() => undefined),
      (s) => s !== undefined,
      60_000,
      250,
    );
    try {
      expect((await stream!.waitFor((e) => e.event === 'ready')).data).toEqual({
        agent_id: made.agent_id,
      });
    } finally {
      await stream?.close();
    }
  }, 180_000);
});
