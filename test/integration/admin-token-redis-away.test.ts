import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { startOwnRedis, type TestRedisServer } from '../helpers/redis-server.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'admin-token-redis-away-admin-token-0123456789';
/** Far longer than an answer takes: a bound, not a timing. */
const ANSWER_BOUND_MS = 60_000;

const UNAVAILABLE = {
  error: {
    code: 'unavailable',
    message: 'a service the hub depends on is not reachable right now; retry shortly',
  },
};

/**
 * The wrong-token throttle of ADMIN_TOKEN lives in Redis. While Redis is away the token is still
 * compared: ADMIN_TOKEN opens the routes that need only PostgreSQL, a wrong token is refused 503
 * (nothing can count it). The agents' sign-in throttle is PostgreSQL's and goes on as usual.
 */
describe('ADMIN_TOKEN routes while Redis is away', () => {
  let redis: TestRedisServer;
  let closeRedis: (() => Promise<void>) | undefined;
  let running: RunningHub;

  beforeAll(async () => {
    ({ redis, close: closeRedis } = await startOwnRedis('sbt-admin-redis-'));
    running = await startTestHub({
      redisUrl: redis.url,
      redisPrefix: 'admin-token-away:',
      adminToken: ADMIN_TOKEN,
    });
  }, 60_000);
  afterAll(async () => {
    await running?.stop();
    await closeRedis?.();
  });

  const listAgents = async (token: string) => {
    const res = await fetch(`${running.url}/api/admin/agents`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(ANSWER_BOUND_MS),
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
  };

  it('lets ADMIN_TOKEN through, refuses a wrong token 503, and agents still sign in', async () => {
    const made = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Ada',
      email: 'ada@example.com',
      password: 'correct horse battery',
      bots: ['*'],
    });
    const connectionsBefore = await redis.connectionNames();
    await redis.stop();

    const right = await listAgents(ADMIN_TOKEN);
    expect(right.status).toBe(200);
    expect(right.body.agents.map((a: { agent_id: string }) => a.agent_id)).toEqual([made.agent_id]);

    expect(await listAgents('a-wrong-token-that-is-long-enough-0123456789')).toEqual({
      status: 503,
      retryAfter: '2',
      body: UNAVAILABLE,
    });

    const browser = agentClient(running.url);
    const signIn = await browser.call('POST', '/api/agent/login', {
      body: { email: 'ada@example.com', password: 'correct horse battery' },
      headers: { origin: running.url },
    });
    expect(signIn.status).toBe(200);
    const wrong = await browser.call('POST', '/api/agent/login', {
      body: { email: 'ada@example.com', password: 'not the password' },
      headers: { origin: running.url },
    });
    expect(wrong.json).toEqual({
      error: { code: 'invalid_credentials', message: 'the e-mail address or the password is wrong' },
    });

    await redis.start();
    // Every Redis connection of the hub is back (its scheduler's worker's too) before the test goes
    // on: a hub stopped while its BullMQ worker was still reconnecting did not stop.
    await until(
      () => redis.connectionNames(),
      (names) => names === connectionsBefore,
      60_000,
      250,
    );
    expect((await listAgents('a-wrong-token-that-is-long-enough-0123456789')).status).toBe(401);
  }, 180_000);
});
