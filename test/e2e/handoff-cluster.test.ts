import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentClient, createAgentVia, eventsStatus, followEvents } from '../helpers/agents.ts';
import { Cluster } from '../helpers/cluster.ts';
import { apiClient, REPO_ROOT } from '../helpers/hub.ts';
import { TEST_REDIS_URL } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-handoff-cluster-0123456789';
const ROUNDS = 100;

/**
 * Two gateways and two workers on one PostgreSQL and one Redis, each a real process: the person
 * on one gateway, the agents on both, the engine and timers in whichever worker.
 */
describe('human handoff across processes', () => {
  const cluster = new Cluster({
    ADMIN_TOKEN,
    CONFIG_DIR: path.join(REPO_ROOT, 'test/fixtures/handoff'),
    SCHEDULER_POLL_MS: '50',
  });
  let db: pg.Client;
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true });
  const prefix = () => cluster.env.REDIS_PREFIX!;
  /** The pending wait-timeout job of the session's handoff (scheduler ids, BullMQ's job hash). */
  const waitTimer = async (sessionId: string) => {
    const { rows } = await db.query<{ id: string }>(`SELECT id FROM handoffs WHERE session_id = $1`, [
      sessionId,
    ]);
    const id = `handoff-wait:${rows[0]!.id}`;
    const jobId = (await redis.hget(`${prefix()}scheduler:ids`, id))!;
    const [timestamp, delay] = await redis.hmget(`${prefix()}bull:scheduled:${jobId}`, 'timestamp', 'delay');
    return { id, jobId, dueAt: Number(timestamp) + Number(delay) };
  };
  let person: ReturnType<typeof apiClient>;
  let ana: { id: string; token: string };
  let bo: { id: string; token: string };
  let onFirst: ReturnType<typeof agentClient>;
  let onSecond: ReturnType<typeof agentClient>;

  beforeAll(async () => {
    await cluster.init();
    await Promise.all([cluster.addGateway(), cluster.addGateway(), cluster.addWorker(), cluster.addWorker()]);
    db = new pg.Client({ connectionString: cluster.database!.url });
    await db.connect();
    await redis.connect();
    const [g0, g1] = cluster.gateways.map((g) => g.url) as [string, string];
    person = apiClient(g0);
    const a = await createAgentVia(g0, ADMIN_TOKEN, {
      name: 'Ana',
      email: 'ana@example.com',
      bots: ['*'],
      capacity: 1000,
    });
    const b = await createAgentVia(g1, ADMIN_TOKEN, {
      name: 'Bo',
      email: 'bo@example.com',
      bots: ['*'],
      capacity: 1000,
    });
    ana = { id: a.agent_id, token: a.token };
    bo = { id: b.agent_id, token: b.token };
    // Ana on the first gateway, Bo on the second; both offline (new agents are), so conversations wait.
    onFirst = agentClient(g0, { token: ana.token });
    onSecond = agentClient(g1, { token: bo.token });
  });
  afterAll(async () => {
    await db?.end();
    redis.disconnect();
    await cluster.stop();
  });

  async function waitingConversation(): Promise<{ session_id: string; token: string }> {
    const s = await person.createSession('helpdesk');
    const asked = await person.chat(s.token, 'a human please');
    expect(asked.json.replies.map((r: { text: string }) => r.text)).toEqual([
      'Connecting you to an agent...',
    ]);
    return s;
  }

  it(`two agents on two gateways claim the same conversation at once: exactly one wins, ${ROUNDS} rounds`, async () => {
    // Opened ten at a time: a hundred at once only measures the pools of a loaded machine.
    const sessions: { session_id: string; token: string }[] = [];
    for (let opened = 0; opened < ROUNDS; opened += 10)
      sessions.push(...(await Promise.all(Array.from({ length: 10 }, () => waitingConversation()))));
    let anaWins = 0;
    for (const s of sessions) {
      const [a, b] = await Promise.all([
        onFirst.call('POST', `/api/agent/conversations/${s.session_id}/claim`),
        onSecond.call('POST', `/api/agent/conversations/${s.session_id}/claim`),
      ]);
      const statuses = [a.status, b.status].sort();
      expect(statuses).toEqual([200, 409]);
      const loser = a.status === 409 ? a : b;
      expect(loser.json.error.code).toBe('held_by_other');
      if (a.status === 200) anaWins++;
      const winner = a.status === 200 ? ana.id : bo.id;
      const { rows } = await db.query('SELECT agent_id, state FROM handoffs WHERE session_id = $1', [
        s.session_id,
      ]);
      expect(rows).toEqual([{ agent_id: winner, state: 'assigned' }]);
    }
    // Both gateways won some rounds: the race was real.
    expect(anaWins).toBeGreaterThan(0);
    expect(anaWins).toBeLessThan(ROUNDS);
    expect(cluster.crashes()).toEqual([]);
  });

  it('SIGKILL of a worker mid-handoff: nothing lost, the order kept', async () => {
    const s = await waitingConversation();
    expect((await onFirst.call('POST', `/api/agent/conversations/${s.session_id}/claim`)).status).toBe(200);
    const expected: string[] = [];
    for (let n = 0; n < 20; n++) {
      if (n === 7) void cluster.workers.shift()!.stop('SIGKILL');
      if (n === 12) await cluster.addWorker();
      const text = `p${n}`;
      // Resent, as a platform would, until a gateway accepts it (a worker may be restarting).
      await until(
        () => person.chat(s.token, text, { message_id: text }, '?wait=false').catch(() => undefined),
        (res) => res?.status === 202,
        15_000,
        100,
      );
      expected.push(`user:${text}`);
      if (n % 4 === 3) {
        const said = await onFirst.call('POST', `/api/agent/conversations/${s.session_id}/messages`, {
          body: { text: `a${n}` },
        });
        expect(said.status).toBe(202);
        expected.push(`agent:a${n}`);
      }
    }
    const rows = await until(
      async () =>
        (
          await db.query<{ role: string; content: string }>(
            `SELECT role, content FROM messages WHERE session_id = $1 AND role IN ('user', 'agent') ORDER BY seq`,
            [s.session_id],
          )
        ).rows.map((r) => `${r.role}:${r.content}`),
      (r) => r.length >= expected.length + 1,
      60_000,
    );
    // The first user row asked for the human; then everything in the order it was sent, once.
    expect(rows.slice(1)).toEqual(expected);
    const bot = await db.query(
      `SELECT count(*)::int AS n FROM messages WHERE session_id = $1 AND role = 'assistant' AND content LIKE 'bot:%'`,
      [s.session_id],
    );
    expect(bot.rows[0]).toEqual({ n: 0 });
  });

  it('the wait timeout fires once after the workers restart', async () => {
    const s = await person.createSession('quick');
    const asked = await person.chat(s.token, 'billing please');
    expect(asked.json.replies.map((r: { text: string }) => r.text)).toEqual(['Connecting you to billing...']);
    // Every worker dies before the timer (1.2 s) is due; new ones start after it was due (as the
    // scheduler's job in Redis says: its creation time plus its delay).
    await Promise.all(cluster.workers.splice(0).map((w) => w.stop('SIGKILL')));
    const timer = await waitTimer(s.session_id);
    await until(
      () => Date.now(),
      (now) => now > timer.dueAt,
      10_000,
    );
    await Promise.all([cluster.addWorker(), cluster.addWorker()]);
    const back = await until(
      async () =>
        (
          await db.query<{ content: string }>(
            `SELECT content FROM messages WHERE session_id = $1 AND content LIKE 'The bot is back%'`,
            [s.session_id],
          )
        ).rows.map((r) => r.content),
      (r) => r.length > 0,
      30_000,
    );
    expect(back).toEqual(['The bot is back (timeout).']);
    // Nothing more can fire once the job finished: its id is released and the job is gone.
    await until(
      () => redis.hget(`${prefix()}scheduler:ids`, timer.id),
      (jobId) => jobId === null,
      30_000,
    );
    expect(await redis.exists(`${prefix()}bull:scheduled:${timer.jobId}`)).toBe(0);
    const again = await db.query(
      `SELECT count(*)::int AS n FROM messages WHERE session_id = $1 AND content LIKE 'The bot is back%'`,
      [s.session_id],
    );
    expect(again.rows[0]).toEqual({ n: 1 });
    expect((await person.chat(s.token, 'hi')).json.replies.map((r: { text: string }) => r.text)).toEqual([
      'bot: hi',
    ]);
  });

  it('signing out through one gateway ends that sign-in’s event stream on the other at once', async () => {
    const [g0, g1] = cluster.gateways.map((g) => g.url) as [string, string];
    await createAgentVia(g0, ADMIN_TOKEN, { name: 'Cy', email: 'cy@example.com', bots: ['*'] });
    const browser = agentClient(g0);
    expect((await browser.login('cy@example.com', 'correct horse battery')).status).toBe(200);
    const cookie = browser.cookie!;
    const stream = await followEvents(g1, { cookie });
    try {
      await stream.waitFor((e) => e.event === 'ready');
      const out = await browser.call('POST', '/api/agent/logout', {
        headers: { 'x-requested-with': 'fetch' },
      });
      expect(out.status).toBe(200);
      // Well before the stream's own 30 s check: the sign-out was announced across the bus.
      expect(await stream.endsWithin(10_000)).toBe(true);
      expect(await eventsStatus(g1, { cookie })).toBe(401);
    } finally {
      await stream.close();
    }
  });
});
