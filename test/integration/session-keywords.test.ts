import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebAdapter, loadWebConfig } from '../../adapters/web/index.ts';
import { createWhatsAppAdapter, loadWhatsAppConfig } from '../../adapters/whatsapp/index.ts';
import type { HubConfig } from '../../src/config/env.ts';
import { sweepIdleSessions } from '../../src/lifecycle/idle-sweep.ts';
import { listMessages } from '../../src/store/messages.ts';
import { findOpenSnapshotByKey } from '../../src/store/sessions.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { adminClient } from '../helpers/admin.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';
import { postWhatsAppWebhook } from '../helpers/whatsapp-cloud.ts';
import { TestSocket, wsUrl } from '../helpers/ws-client.ts';

const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/keywords');
const APP_SECRET = 'test-app-secret';
const ACCESS_TOKEN = 'EAAJB-test-token';
const NUMBER = '106540352242922';
const ADMIN_TOKEN = 'keywords-admin-token-0123456789-abcdefghijklmnop';

interface Setup {
  /** Where people connect; with two hubs, the second is another process's gateway and worker. */
  hubs: RunningHub[];
  graph: GraphApi;
}

/** Hubs on the keyword fixtures with the web and WhatsApp (local Graph API) channels. */
async function startHubs(count: number, shared: Partial<HubConfig>, graph: GraphApi): Promise<RunningHub[]> {
  const whatsapp = loadWhatsAppConfig(
    {
      WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
      WHATSAPP_APP_SECRET: APP_SECRET,
      WHATSAPP_VERIFY_TOKEN: 'verify',
      WHATSAPP_GRAPH_URL: graph.url,
      WHATSAPP_NUMBERS: `${NUMBER}:hub`,
    },
    '/tmp/unused',
  )!;
  const hubs: RunningHub[] = [];
  for (let i = 0; i < count; i++)
    hubs.push(
      await startTestHub(
        { configDir: FIXTURES, adminToken: ADMIN_TOKEN, ...shared },
        { adapters: [createWebAdapter(loadWebConfig({})), createWhatsAppAdapter(whatsapp)] },
      ),
    );
  return hubs;
}

/** The same scenarios on the embedded hub and on Redis with two workers. */
function scenarios(name: string, setup: () => Setup) {
  describe(name, () => {
    const sockets: TestSocket[] = [];
    let serial = 0;
    afterAll(() => {
      for (const s of sockets) s.ws.terminate();
    });

    const hub = (i = 0) => setup().hubs[i % setup().hubs.length]!;
    const db = () => hub().hub.db;
    const api = (i = 0) => apiClient(hub(i).url);
    const admin = () => adminClient(hub().url, ADMIN_TOKEN);

    async function webSession(bot: string, i = 0) {
      const socket = await TestSocket.open(wsUrl(hub(i).url));
      sockets.push(socket);
      const welcome = await socket.hello({ bot });
      await socket.reply('hi');
      return { socket, id: welcome.sessionId as string };
    }

    /** Says `text` over the socket and waits for the reply that matches. */
    async function say(socket: TestSocket, text: string, reply: string | RegExp) {
      socket.send({ type: 'message', id: `m${++serial}`, text });
      return socket.reply(reply);
    }

    async function apiSession(bot: string, i = 0) {
      const { session_id, token } = await api(i).createSession(bot);
      return { id: session_id, token };
    }

    async function chat(token: string, text: string, i = 0): Promise<string[]> {
      const res = await api(i).chat(token, text);
      expect(res.status).toBe(200);
      return (res.json.replies as { text: string }[]).map((r) => r.text);
    }

    const rows = async (sessionId: string) =>
      (await listMessages(db(), sessionId, { limit: 100 })).map((m) => `${m.role}:${m.content}`);

    it('SEND TO SESSION reaches the other web session live, ordered in its history', async () => {
      const a = await webSession('hub', 0);
      const b = await webSession('hub', 1);
      await say(b.socket, 'before', 'echo before');
      expect((await say(a.socket, `send ${b.id} ready`, /^sent|^refused/)).text).toBe('sent');
      const shown = await b.socket.reply('Notification: ready');
      expect(shown.role).toBe('assistant');
      expect(await rows(b.id)).toEqual([
        'system:session started',
        'assistant:hi',
        'user:before',
        'assistant:echo before',
        'assistant:Notification: ready',
      ]);
      // The sender's own history holds only its own exchange.
      expect((await rows(a.id)).slice(2)).toEqual([`user:send ${b.id} ready`, 'assistant:sent']);
    });

    it('two sessions sending to each other at once both get through: nobody waits for the other', async () => {
      const a = await webSession('hub', 0);
      const b = await webSession('hub', 1);
      a.socket.send({ type: 'message', id: `x${++serial}`, text: `send ${b.id} from-a` });
      b.socket.send({ type: 'message', id: `x${++serial}`, text: `send ${a.id} from-b` });
      await a.socket.reply('Notification: from-b');
      await b.socket.reply('Notification: from-a');
    });

    it('SEND TO SESSION reaches a WhatsApp session through the local Graph API', async () => {
      const from = `1650888${String(1000 + ++serial).padStart(4, '0')}`;
      const payload = doc.variant(doc.textMessage, { from, suffix: from, timestamp: new Date() });
      const res = await postWhatsAppWebhook(hub(1).url, payload, APP_SECRET);
      expect(res.status).toBe(200);
      const snap = await until(
        () => findOpenSnapshotByKey(db(), { bot: 'hub', channel: 'whatsapp', nativeKey: `+${from}` }),
        (s) => (s?.session.lastSeq ?? 0) >= 3,
      );
      const sender = await apiSession('hub');
      expect(await chat(sender.token, `send ${snap!.session.id} shipped`)).toEqual(['sent']);
      const sent = await until(
        () =>
          setup()
            .graph.to(from)
            .find((r) => r.body.text?.body === 'Notification: shipped'),
        (r) => r !== undefined,
      );
      expect(sent!.body).toMatchObject({ to: from, type: 'text' });
    });

    it('SEND TO SESSION is refused, testably, for another bot’s, an unknown and an ended session; nothing is sent', async () => {
      const target = await apiSession('hub');
      const other = await apiSession('other');
      const [refusal] = await chat(other.token, `send ${target.id}`);
      expect(refusal).toBe(`refused: SEND TO SESSION: this bot has no session ${target.id}`);
      const sender = await apiSession('hub');
      expect(await chat(sender.token, 'send 00000000-0000-4000-8000-000000000000 x')).toEqual([
        'refused: SEND TO SESSION: this bot has no session 00000000-0000-4000-8000-000000000000',
      ]);
      expect(await chat(sender.token, 'send not-a-session x')).toEqual([
        'refused: SEND TO SESSION: this bot has no session not-a-session',
      ]);
      const ended = await apiSession('hub');
      expect((await api().call('DELETE', '/api/session', { token: ended.token })).status).toBeLessThan(300);
      await until(
        async () =>
          (await db().query('SELECT ended_at FROM sessions WHERE id = $1', [ended.id])).rows[0]?.ended_at,
        (v) => v !== null && v !== undefined,
      );
      expect(await chat(sender.token, `send ${ended.id} x`)).toEqual([
        `refused: SEND TO SESSION: session ${ended.id} has ended`,
      ]);
      // The statement form fails the turn (the bot's apology); the refusal is logged as the dialog error.
      const [apology] = await chat(sender.token, `sendraw ${other.id} x`);
      expect(apology).toMatch(/Sorry/);
      const { rows: outbound } = await db().query(
        `SELECT count(*)::int AS n FROM messages WHERE session_id = ANY($1::uuid[]) AND payload ? 'origin'`,
        [[target.id, ended.id, other.id]],
      );
      expect(outbound[0]!.n).toBe(0);
    });

    it('a sub-session runs its script within the parent’s turn, its TALKs are the parent’s, and MERGE brings its variables back', async () => {
      const parent = await apiSession('hub');
      const replies = await chat(parent.token, 'sub');
      expect(replies[0]).toMatch(/^working in a sub-session: [0-9a-f-]{36}$/);
      const childId = replies[0]!.split(': ')[1]!;
      expect(childId).not.toBe(parent.id);
      expect(replies.slice(1)).toEqual(['before merge: ', 'merged: done / child / parent only']);
      const { rows: child } = await db().query(
        `SELECT s.parent_id, s.ended_at, s.end_reason, s.channel, st.variables, st.context
         FROM sessions s JOIN session_state st ON st.session_id = s.id WHERE s.id = $1`,
        [childId],
      );
      expect(child[0]).toMatchObject({
        parent_id: parent.id,
        end_reason: 'merged',
        channel: 'api',
        variables: { task_result: 'done', greeting: 'child' },
        context: { task: 'specialized' },
      });
      expect(child[0]!.ended_at).not.toBeNull();
      const state = (await api().call('GET', '/api/session', { token: parent.token })).json;
      expect(state.state.variables).toEqual({ greeting: 'child', kept: 'parent only', task_result: 'done' });
      // The parent's context is its own: the child's stays with the child.
      expect(state.state.context).toEqual({});
    });

    it('a sub-session outlives the turn that made it, and merges in a later one', async () => {
      const parent = await apiSession('hub');
      const [, kept] = await chat(parent.token, 'subkeep');
      const childId = kept!.replace('kept ', '');
      const { rows } = await db().query('SELECT ended_at FROM sessions WHERE id = $1 AND parent_id = $2', [
        childId,
        parent.id,
      ]);
      expect(rows[0]?.ended_at).toBeNull();
      expect(await chat(parent.token, 'submerge', 1)).toEqual(['merged later: done']);
      expect(
        (await db().query('SELECT end_reason FROM sessions WHERE id = $1', [childId])).rows[0]!.end_reason,
      ).toBe('merged');
    });

    it('a sub-session ends with its parent, and is never idled out on its own', async () => {
      const parent = await apiSession('hub');
      const [, kept] = await chat(parent.token, 'subkeep');
      const childId = kept!.replace('kept ', '');
      expect((await api().call('DELETE', '/api/session', { token: parent.token })).status).toBeLessThan(300);
      const child = await until(
        async () =>
          (await db().query('SELECT ended_at, end_reason FROM sessions WHERE id = $1', [childId])).rows[0],
        (r) => r?.ended_at !== null,
      );
      expect(child!.end_reason).toBe('parent ended');
    });

    it('HEAR in a sub-session is refused with a clear error, and nothing of the run is kept', async () => {
      const parent = await apiSession('hub');
      const replies = await chat(parent.token, 'subhear');
      expect(replies).toEqual(['Sorry, something went wrong on my side. Please try again.']);
      const { rows } = await db().query(
        `SELECT data FROM session_events WHERE session_id = $1 AND type = 'dialog.error'`,
        [parent.id],
      );
      expect(rows[0]!.data).toMatchObject({
        script: 'asks.bas',
        line: 2,
        message: expect.stringContaining('HEAR cannot wait for an answer in a sub-session'),
      });
      const { rows: children } = await db().query('SELECT 1 FROM sessions WHERE parent_id = $1', [parent.id]);
      expect(children).toHaveLength(0);
    });

    it('APPLY SESSION TEMPLATE loads the template, visible in GET /api/session', async () => {
      const s = await apiSession('hub');
      expect(await chat(s.token, 'template')).toEqual(['applied']);
      const { json } = await api().call('GET', '/api/session', { token: s.token });
      expect(json.state).toMatchObject({
        variables: { tier: 'gold' },
        context: { role: 'You are a patient support agent.' },
        kbs: ['faq'],
        tools: ['lookup_order'],
        suggestions: [{ text: 'Talk to a person', value: 'agent' }],
      });
    });

    it('DEBUG SHOW is written to the session’s debug log and not told to the person while debug is off', async () => {
      const s = await apiSession('hub');
      expect(await chat(s.token, 'debug')).toEqual(['debugged']);
      const log = await admin()('GET', `/api/admin/sessions/${s.id}/debug`);
      expect(log.status).toBe(200);
      expect(log.json.entries.map((e: { topic: string }) => e.topic)).toEqual([
        'session',
        'context',
        'variables',
      ]);
      const [session, context, variables] = log.json.entries;
      expect(session.snapshot).toMatchObject({
        sessionId: s.id,
        bot: 'hub',
        channel: 'api',
        authLevel: 'anonymous',
      });
      expect(session.snapshot.messageCount).toBe(1);
      expect(context.snapshot).toEqual({ context: { mood: 'curious' }, kbs: [], tools: [] });
      expect(variables.snapshot).toEqual({ variables: { color: 'blue' } });
    });

    it('DEBUG SHOW is told to the person as well when the bot’s debug setting is on', async () => {
      const s = await apiSession('loud');
      const replies = await chat(s.token, 'show me');
      expect(replies).toHaveLength(2);
      expect(replies[0]).toMatch(/^\[debug variables\] /);
      expect(JSON.parse(replies[0]!.replace('[debug variables] ', ''))).toEqual({
        variables: { color: 'green' },
      });
      expect(replies[1]).toBe('debugged');
      const log = await admin()('GET', `/api/admin/sessions/${s.id}/debug`);
      expect(log.json.entries).toHaveLength(1);
    });

    it('a TypeScript bot does the same through ctx.sessions', async () => {
      const target = await webSession('typed', 1);
      const s = await apiSession('typed');
      expect(await chat(s.token, `send ${target.id} hello there`)).toEqual(['sent']);
      await target.socket.reply('typed: hello there');
      const hubSession = await apiSession('hub');
      expect(await chat(s.token, `send ${hubSession.id} x`)).toEqual(['refused (other_bot)']);
      expect(await chat(s.token, 'sub')).toEqual([
        'child has its own id',
        'before merge: nothing',
        'merged: done / child',
      ]);
      expect(await chat(s.token, 'template')).toEqual(['applied']);
      expect(await chat(s.token, 'debug')).toEqual(['debugged true']);
      const { json } = await api().call('GET', '/api/session', { token: s.token });
      expect(json.state).toMatchObject({ variables: { tier: 'gold', task_result: 'done' }, kbs: ['faq'] });
      const log = await admin()('GET', `/api/admin/sessions/${s.id}/debug`);
      expect(log.json.entries).toHaveLength(1);
    });

    // Last: the sweep ends every session of the file's database that it finds idle.
    it('the idle sweep ends parents, never a sub-session on its own: it ends with its parent', async () => {
      const parent = await apiSession('hub');
      const [, kept] = await chat(parent.token, 'subkeep');
      const childId = kept!.replace('kept ', '');
      const { rows: open } = await db().query<{ n: number }>(
        'SELECT count(*)::int AS n FROM sessions WHERE ended_at IS NULL AND parent_id IS NULL',
      );
      const { hub: h } = hub();
      const queued = await sweepIdleSessions(
        { db: h.db, bots: h.bots, ingress: h.ingress, logger: h.logger },
        new Date(Date.now() + 24 * 60 * 60_000),
      );
      expect(queued).toBe(open[0]!.n);
      const child = await until(
        async () =>
          (await db().query('SELECT ended_at, end_reason FROM sessions WHERE id = $1', [childId])).rows[0],
        (r) => r?.ended_at !== null,
      );
      expect(child!.end_reason).toBe('parent ended');
    });
  });
}

describe('embedded hub (in-process queue)', () => {
  let embedded: Setup;
  beforeAll(async () => {
    const graph = await startGraphApi(ACCESS_TOKEN);
    embedded = { graph, hubs: await startHubs(1, {}, graph) };
  });
  afterAll(async () => {
    for (const h of embedded?.hubs ?? []) await h.stop();
    await embedded?.graph.close();
  });
  scenarios('session keywords', () => embedded);
});

describe('Redis, two hubs: two gateways and two workers on one database', () => {
  let redis: Setup;
  let database: TestDatabase;
  const prefix = testRedisPrefix();
  beforeAll(async () => {
    database = await createTestDatabase();
    const graph = await startGraphApi(ACCESS_TOKEN);
    redis = {
      graph,
      hubs: await startHubs(
        2,
        { databaseUrl: database.url, redisUrl: TEST_REDIS_URL, redisPrefix: prefix.prefix },
        graph,
      ),
    };
  });
  afterAll(async () => {
    for (const h of redis?.hubs ?? []) await h.stop();
    await redis?.graph.close();
    await database?.drop();
    await prefix.cleanup();
  });
  scenarios('session keywords', () => redis);
});
