import fs from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebAdapter, loadWebConfig } from '../../adapters/web/index.ts';
import { createAgentVia, followEvents } from '../helpers/agents.ts';
import { tempDir } from '../helpers/database.ts';
import { freePort } from '../helpers/free-port.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TestRedisServer } from '../helpers/redis-server.ts';
import { until } from '../helpers/until.ts';
import { TestSocket, wsUrl } from '../helpers/ws-client.ts';

const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/web');
const HANDOFF = path.join(REPO_ROOT, 'test/fixtures/handoff');
const PASSWORD = 'bus-reconnect-test-password';
const ADMIN_TOKEN = 'bus-reconnect-tests-admin-token-0123456789';

/**
 * A gateway whose pub/sub connection is lost while a turn completes (Redis restarted, a network
 * blip, or Redis cutting a subscriber that read too slowly): the notice published meanwhile is
 * gone, so whatever was fed by it must catch up from PostgreSQL once the subscription is back.
 * The gap is made with a Redis of the test's own: a password set, so that only the connections
 * already open work on (the hub's publisher, its queue), then every pub/sub client cut; the
 * password taken away again lets the subscriber back.
 */
describe('a gateway whose Redis subscription was lost and came back', () => {
  let dir: string;
  let redis: TestRedisServer;
  let admin: Redis;
  let hub: RunningHub;
  /** The handoff bots, for agents' event streams. */
  let desk: RunningHub;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    dir = await tempDir('sbt-bus-');
    redis = new TestRedisServer(await freePort(), dir);
    await redis.start();
    admin = new Redis(redis.url);
    hub = await startTestHub(
      { configDir: FIXTURES, redisUrl: redis.url, redisPrefix: 'bus-reconnect:' },
      { adapters: [createWebAdapter(loadWebConfig({}))] },
    );
    desk = await startTestHub({
      configDir: HANDOFF,
      adminToken: ADMIN_TOKEN,
      redisUrl: redis.url,
      redisPrefix: 'bus-reconnect-desk:',
    });
  });

  afterAll(async () => {
    for (const s of sockets) s.ws.terminate();
    await hub?.stop();
    await desk?.stop();
    admin?.disconnect();
    await redis?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** Cuts the hub's subscriber and keeps it out until `reopen`. */
  async function cutSubscriber(): Promise<() => Promise<void>> {
    await admin.config('SET', 'requirepass', PASSWORD);
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    return async () => {
      await admin.config('SET', 'requirepass', '');
    };
  }

  const replyRows = async (sessionId: string, text: string) =>
    (
      await hub.hub.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM messages WHERE session_id = $1 AND role = 'assistant' AND content = $2`,
        [sessionId, text],
      )
    ).rows[0]!.n;

  it('a web socket gets the reply of a turn that completed while the subscription was away', async () => {
    const socket = await TestSocket.open(wsUrl(hub.url));
    sockets.push(socket);
    const { sessionId } = await socket.hello();
    await socket.messagesThrough(2);

    const reopen = await cutSubscriber();
    socket.send({ type: 'message', id: 'gap', text: 'in the gap' });
    expect(await socket.nextOfType('ack')).toMatchObject({ id: 'gap', status: 'accepted' });
    // Committed (and announced, to nobody) while the subscriber is out.
    await until(
      () => replyRows(sessionId, 'echo in the gap #1'),
      (n) => n === 1,
      20_000,
      50,
    );
    await reopen();
    await until(
      () => admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub') as Promise<string>,
      (list) => list.includes('name=switchboard-sub'),
      20_000,
      50,
    );

    // Nothing else happens in the session: the reply must come from the catch-up alone.
    await socket.reply('echo in the gap #1', 20_000);
    // And the subscription itself is back: the next turn's notice arrives as before.
    socket.send({ type: 'message', id: 'after', text: 'after the gap' });
    await socket.reply('echo after the gap #2', 20_000);
    expect(socket.messages().map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  }, 60_000);

  it("an agent's event stream gets the events published while the subscription was away", async () => {
    const agent = await createAgentVia(desk.url, ADMIN_TOKEN, {
      name: 'Gap',
      email: 'gap@example.com',
      bots: ['helpdesk'],
    });
    const stream = await followEvents(desk.url, agent.token);
    await stream.waitFor((e) => e.event === 'ready');
    const api = apiClient(desk.url);
    const person = await api.createSession('helpdesk');

    const reopen = await cutSubscriber();
    expect((await api.chat(person.token, 'I want a human please', {}, '?wait=false')).status).toBe(202);
    // Kept (and announced, to nobody) while the subscriber is out.
    await until(
      async () =>
        (
          await desk.hub.db.query(
            `SELECT id FROM agent_events WHERE type = 'conversation.waiting' AND session_id = $1`,
            [person.session_id],
          )
        ).rows.length,
      (n) => n === 1,
      20_000,
      50,
    );
    await reopen();

    // The same stream, not a reconnection: the console has nothing to resume from here.
    const waiting = await stream.waitFor(
      (e) => e.event === 'conversation.waiting' && e.data.session_id === person.session_id,
      20_000,
    );
    expect(waiting.id).toMatch(/^\d+$/);
    // Live again: the next event comes by the bus, and none comes twice.
    expect((await api.chat(person.token, 'still there?', {}, '?wait=false')).status).toBe(202);
    await stream.waitFor(
      (e) => e.event === 'conversation.message' && e.data.session_id === person.session_id,
      20_000,
    );
    const ids = stream.events.filter((e) => e.id !== undefined).map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(await stream.endsWithin(0)).toBe(false);
    await stream.close();
  }, 60_000);
});
