import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { startOwnRedis, type TestRedisServer } from '../helpers/redis-server.ts';
import { until } from '../helpers/until.ts';

/** Far longer than an answer takes (about 11 s: the wait's subscription, then the accept, fail): a bound, not a timing. */
const ANSWER_BOUND_MS = 60_000;

/**
 * `POST /api/chat` waits for its replies through the bus (Redis pub/sub). While Redis is away it
 * answers 503 `unavailable` with Retry-After, as `?wait=false` does, instead of holding the
 * request until Redis is back; once it is back, the client's retry (same `message_id`) is answered.
 */
describe('POST /api/chat while Redis is away', () => {
  let redis: TestRedisServer;
  let closeRedis: (() => Promise<void>) | undefined;
  let running: RunningHub;

  beforeAll(async () => {
    ({ redis, close: closeRedis } = await startOwnRedis('sbt-chat-redis-'));
    running = await startTestHub({ redisUrl: redis.url, redisPrefix: 'chat-wait-away:' });
  }, 60_000);
  afterAll(async () => {
    await running?.stop();
    await closeRedis?.();
  });

  it('answers 503 with Retry-After rather than waiting for Redis, and the retry completes once it is back', async () => {
    const api = apiClient(running.url);
    const session = await api.createSession();
    await redis.stop();

    const res = await fetch(`${running.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${session.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'hello', message_id: 'm1' }),
      signal: AbortSignal.timeout(ANSWER_BOUND_MS),
    });
    expect({
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      body: await res.json(),
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

    await redis.start();
    const retried = await until(
      () => api.chat(session.token, 'hello', { message_id: 'm1' }),
      (r) => r.status === 200,
      60_000,
      250,
    );
    expect(retried.json).toMatchObject({
      status: 'completed',
      replies: [{ role: 'assistant', text: expect.stringContaining('hello') }],
    });
  }, 180_000);
});
