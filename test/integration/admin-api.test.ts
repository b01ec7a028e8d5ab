import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSessions, type SessionCursor } from '../../src/store/admin-sessions.ts';
import type { Db } from '../../src/store/db.ts';
import { eraseUserRows } from '../../src/store/erasure.ts';
import { createSession } from '../../src/store/sessions.ts';
import { sessionStats } from '../../src/store/stats.ts';
import { adminClient, eventually, processed } from '../helpers/admin.ts';
import { useTestDb } from '../helpers/database.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';

const ADMIN_TOKEN = 'operator-secret-for-tests-32-characters';
const PHONE = '+4915112345678';

describe('operator API', () => {
  let running: RunningHub;
  let closed: RunningHub;
  let admin: ReturnType<typeof adminClient>;
  let api: ReturnType<typeof apiClient>;
  /** The operator's exchanges are checked against the hub's OpenAPI document. */
  let contract: ReturnType<typeof openApiContract>;
  const breaches: string[] = [];

  /** A WhatsApp-style message through the queue, processed by the engine. */
  async function whatsapp(text: string, thread?: string) {
    const id = `whatsapp:wamid.${randomUUID()}`;
    await running.hub.ingress.accept({
      id,
      channel: 'whatsapp',
      bot: 'default',
      from: { id: PHONE, name: 'Ana' },
      ...(thread ? { thread } : {}),
      text,
      meta: {},
      receivedAt: new Date().toISOString(),
    });
    await processed(running.hub.db, id);
    const { rows } = await running.hub.db.query<{ session_id: string }>(
      'SELECT session_id FROM messages WHERE envelope_id = $1',
      [id],
    );
    return rows[0]!.session_id;
  }

  beforeAll(async () => {
    [running, closed] = await Promise.all([
      startTestHub({ adminToken: ADMIN_TOKEN }),
      startTestHub({ adminToken: undefined }),
    ]);
    contract = openApiContract(await (await fetch(`${running.url}/openapi.json`)).json());
    admin = adminClient(running.url, ADMIN_TOKEN, (e) => breaches.push(...contract.check(e)));
    api = apiClient(running.url);
  });
  afterAll(async () => {
    await Promise.all([running?.stop(), closed?.stop()]);
  });

  it('answers 401 without or with a wrong token, and 403 when ADMIN_TOKEN is not set', async () => {
    const routes: [string, string][] = [
      ['GET', '/api/admin/sessions'],
      ['GET', `/api/admin/sessions/${randomUUID()}`],
      ['GET', `/api/admin/sessions/${randomUUID()}/messages`],
      ['POST', `/api/admin/sessions/${randomUUID()}/end`],
      ['GET', '/api/admin/stats'],
      ['DELETE', `/api/users/${randomUUID()}`],
    ];
    for (const [method, route] of routes) {
      const none = await adminClient(running.url, undefined)(method, route);
      expect(none.status, `${method} ${route}`).toBe(401);
      expect(none.json.error.code).toBe('unauthorized');
      const wrong = await adminClient(running.url, 'not-the-token')(method, route);
      expect(wrong.status, `${method} ${route}`).toBe(401);
      const disabled = await adminClient(closed.url, ADMIN_TOKEN)(method, route);
      expect(disabled.status, `${method} ${route}`).toBe(403);
      expect(disabled.json.error.code).toBe('admin_disabled');
    }
    // A session token is not an operator token.
    const s = await api.createSession();
    expect((await adminClient(running.url, s.token)('GET', '/api/admin/sessions')).status).toBe(401);
  });

  it('lists sessions newest first, filtered by bot, channel, state and user, page by page', async () => {
    const a = await api.createSession();
    const b = await api.createSession('support');
    const c = await api.createSession();
    await api.chat(a.token, 'hello');
    await api.chat(c.token, 'one');
    await api.chat(c.token, 'two');
    const ended = await api.call('DELETE', '/api/session', { token: b.token });
    expect(ended.status).toBe(200);
    await processed(running.hub.db, `api:${b.session_id}:end`);
    const wa = await whatsapp('hi there');

    const all = await admin('GET', '/api/admin/sessions?limit=200');
    expect(all.status).toBe(200);
    const { rows: expectedOrder } = await running.hub.db.query<{ id: string }>(
      'SELECT id FROM sessions ORDER BY created_at DESC, id DESC',
    );
    expect(all.json.sessions.map((s: { session_id: string }) => s.session_id)).toEqual(
      expectedOrder.map((r) => r.id),
    );
    expect(all.json.next_before).toBeNull();

    const first = all.json.sessions.find((s: { session_id: string }) => s.session_id === c.session_id);
    expect(first).toMatchObject({
      session_id: c.session_id,
      bot: 'default',
      channel: 'api',
      native_key: c.session_id,
      user_id: null,
      auth_level: 'anonymous',
      state: 'active',
      ended_at: null,
      end_reason: null,
      message_count: 2,
    });
    expect(Date.parse(first.created_at)).toBeLessThanOrEqual(Date.parse(first.last_activity_at));

    const support = await admin('GET', '/api/admin/sessions?bot=support');
    expect(support.json.sessions.map((s: { session_id: string }) => s.session_id)).toEqual([b.session_id]);
    expect(support.json.sessions[0]).toMatchObject({ state: 'ended', end_reason: 'ended by user' });

    const onWhatsapp = await admin('GET', '/api/admin/sessions?channel=whatsapp');
    expect(onWhatsapp.json.sessions).toHaveLength(1);
    expect(onWhatsapp.json.sessions[0]).toMatchObject({
      session_id: wa,
      native_key: PHONE,
      message_count: 1,
      state: 'active',
    });
    const userId = onWhatsapp.json.sessions[0].user_id;
    expect(userId).toMatch(/^[0-9a-f-]{36}$/);
    const byUser = await admin('GET', `/api/admin/sessions?user_id=${userId}`);
    expect(byUser.json.sessions.map((s: { session_id: string }) => s.session_id)).toEqual([wa]);

    const endedOnly = await admin('GET', '/api/admin/sessions?state=ended');
    expect(endedOnly.json.sessions.map((s: { session_id: string }) => s.session_id)).toEqual([b.session_id]);

    // Quiet for two hours: idle under the default 30 minutes.
    await running.hub.db.query(
      `UPDATE sessions SET last_activity_at = now() - interval '2 hours' WHERE id = $1`,
      [a.session_id],
    );
    const idle = await admin('GET', '/api/admin/sessions?state=idle');
    expect(idle.json.sessions.map((s: { session_id: string }) => s.session_id)).toEqual([a.session_id]);
    expect(idle.json.sessions[0].state).toBe('idle');
    const active = await admin('GET', '/api/admin/sessions?state=active&bot=default');
    const activeIds = active.json.sessions.map((s: { session_id: string }) => s.session_id);
    expect(activeIds).toContain(c.session_id);
    expect(activeIds).toContain(wa);
    expect(activeIds).not.toContain(a.session_id);
    expect(activeIds).not.toContain(b.session_id);
    const openIds = expectedOrder.map((r) => r.id).filter((id) => id !== a.session_id && id !== b.session_id);
    expect(activeIds).toEqual(openIds);

    // Pages of two follow the same order, with no row twice and none left out.
    const paged: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await admin('GET', `/api/admin/sessions?limit=2${cursor ? `&before=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      expect(page.json.sessions.length).toBeLessThanOrEqual(2);
      paged.push(...page.json.sessions.map((s: { session_id: string }) => s.session_id));
      cursor = page.json.next_before;
      pages++;
    } while (cursor);
    expect(paged).toEqual(expectedOrder.map((r) => r.id));
    expect(pages).toBe(Math.ceil(expectedOrder.length / 2));

    const bad = await admin('GET', '/api/admin/sessions?state=sleeping&before=nope');
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('invalid_request');
  });

  it('uses the idle timeout of each bot and channel, in the filter and in the state', async () => {
    const x = await api.createSession('support');
    // The greeting's turn must be in first: its commit would make the session active again.
    await processed(running.hub.db, `api:${x.session_id}:start`);
    await running.hub.db.query(
      `UPDATE sessions SET last_activity_at = now() - interval '10 minutes' WHERE id = $1`,
      [x.session_id],
    );
    const timeout = (bot: string) => (bot === 'support' ? 5 * 60_000 : 60 * 60_000);
    const idle = await listSessions(running.hub.db, { state: 'idle', limit: 200 }, timeout);
    expect(idle.sessions.map((s) => s.id)).toContain(x.session_id);
    expect(idle.sessions.every((s) => s.state === 'idle')).toBe(true);
    const active = await listSessions(running.hub.db, { state: 'active', limit: 200 }, timeout);
    expect(active.sessions.map((s) => s.id)).not.toContain(x.session_id);
    expect(active.sessions.every((s) => s.state === 'active')).toBe(true);
    // Ten quiet minutes on a bot with an hour's timeout: active.
    const generous = await listSessions(running.hub.db, { state: 'active', limit: 200 }, () => 3_600_000);
    expect(generous.sessions.map((s) => s.id)).toContain(x.session_id);
  });

  it('shows a session with its state, and its transcript page by page', async () => {
    const s = await api.createSession();
    await api.chat(s.token, 'first');
    await api.chat(s.token, 'second');
    const detail = await admin('GET', `/api/admin/sessions/${s.session_id}`);
    expect(detail.status).toBe(200);
    expect(detail.json).toMatchObject({
      session_id: s.session_id,
      bot: 'default',
      channel: 'api',
      state: 'active',
      message_count: 2,
      last_seq: 6,
    });
    expect(detail.json.session_state).toEqual({
      variables: { last_message: 'second' },
      context: {},
      kbs: [],
      tools: [],
      suggestions: [],
      waiting_for_input: false,
    });

    const page1 = await admin('GET', `/api/admin/sessions/${s.session_id}/messages?limit=4`);
    expect(page1.status).toBe(200);
    expect(page1.json.messages.map((m: { seq: number; role: string }) => `${m.seq}:${m.role}`)).toEqual([
      '1:system',
      '2:assistant',
      '3:user',
      '4:assistant',
    ]);
    expect(page1.json.messages[2]).toMatchObject({
      text: 'first',
      delivery_status: 'received',
      envelope_id: expect.stringMatching(`^api:${s.session_id}:`),
      payload: {},
    });
    expect(page1.json.messages[3]).toMatchObject({
      text: 'You said: first (message #1 in this session)',
      delivery_status: 'sent',
      in_reply_to: page1.json.messages[2].envelope_id,
    });
    expect(page1.json.next_after).toBe(4);
    const page2 = await admin('GET', `/api/admin/sessions/${s.session_id}/messages?after=4&limit=4`);
    expect(page2.json.messages.map((m: { text: string }) => m.text)).toEqual([
      'second',
      'You said: second (message #2 in this session)',
    ]);
    expect(page2.json.next_after).toBe(6);

    const unknown = randomUUID();
    expect((await admin('GET', `/api/admin/sessions/${unknown}`)).status).toBe(404);
    expect((await admin('GET', `/api/admin/sessions/${unknown}/messages`)).status).toBe(404);
    expect((await admin('GET', '/api/admin/sessions/not-a-uuid')).status).toBe(400);
  });

  it('ends a session through the queue: the engine closes it, the token dies, a second end is 409', async () => {
    const s = await api.createSession();
    await api.chat(s.token, 'before the end');
    const res = await admin('POST', `/api/admin/sessions/${s.session_id}/end`, { reason: 'abuse report' });
    expect(res.status).toBe(202);
    expect(res.json).toEqual({
      session_id: s.session_id,
      status: 'ending',
      envelope_id: `api:${s.session_id}:end`,
    });
    expect((await api.chat(s.token, 'still there?')).status).toBe(401);
    const ended = await eventually(async () => {
      const r = await admin('GET', `/api/admin/sessions/${s.session_id}`);
      return r.json.ended_at ? r.json : undefined;
    }, 'the engine to end the session');
    expect(ended).toMatchObject({ state: 'ended', end_reason: 'abuse report' });
    const listed = await admin('GET', '/api/admin/sessions?state=ended&limit=200');
    expect(
      listed.json.sessions.find((x: { session_id: string }) => x.session_id === s.session_id),
    ).toMatchObject({
      state: 'ended',
      end_reason: 'abuse report',
    });
    const transcript = await admin('GET', `/api/admin/sessions/${s.session_id}/messages`);
    expect(transcript.json.messages.at(-1)).toMatchObject({ role: 'system', text: 'session ended' });

    const again = await admin('POST', `/api/admin/sessions/${s.session_id}/end`);
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('already_ended');
    expect((await admin('POST', `/api/admin/sessions/${randomUUID()}/end`)).status).toBe(404);
    expect((await admin('POST', `/api/admin/sessions/${s.session_id}/end`, { reason: 7 })).status).toBe(400);
  });

  it('ends a threaded channel session in its own lane (identity and thread from its key)', async () => {
    const sessionId = await whatsapp('in a thread', 'thread-7');
    const before = await admin('GET', `/api/admin/sessions/${sessionId}`);
    expect(before.json.native_key).toBe(`${PHONE}#thread-7`);
    const res = await admin('POST', `/api/admin/sessions/${sessionId}/end`);
    expect(res.status).toBe(202);
    const ended = await eventually(async () => {
      const r = await admin('GET', `/api/admin/sessions/${sessionId}`);
      return r.json.ended_at ? r.json : undefined;
    }, 'the engine to end the threaded session');
    expect(ended).toMatchObject({ state: 'ended', end_reason: 'ended by operator' });
    // The un-threaded session of the same person is still open.
    const open = await admin('GET', '/api/admin/sessions?channel=whatsapp&state=active');
    expect(open.json.sessions.map((s: { native_key: string }) => s.native_key)).toEqual([PHONE]);
  });

  it('counts sessions, messages, endings, durations and errors exactly', async () => {
    const db = running.hub.db;
    // A past day of its own, so that nothing else the tests did falls in the range.
    const day = '2025-03-04';
    const at = (time: string) => `${day}T${time}Z`;
    const sessions = [
      // id, bot, channel, created, ended, reason, message_count
      [randomUUID(), 'support', 'whatsapp', at('09:10:00'), at('09:11:40'), 'ended by user', 2],
      [randomUUID(), 'support', 'whatsapp', at('09:30:00'), at('09:50:00'), 'idle', 4],
      [randomUUID(), 'support', 'whatsapp', at('10:05:00'), null, null, 1],
      [randomUUID(), 'support', 'teams', at('10:20:00'), at('10:20:10'), 'idle', 0],
    ] as const;
    for (const [id, bot, channel, created, ended, reason, count] of sessions) {
      await db.query(
        `INSERT INTO sessions (id, bot, channel, native_key, created_at, last_activity_at, ended_at, end_reason, message_count)
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)`,
        [id, bot, channel, `stats-${id}`, created, ended, reason, count],
      );
    }
    const [s1, s2, s3] = [sessions[0][0], sessions[1][0], sessions[2][0]];
    const messages: [string, number, string, string][] = [
      [s1, 1, 'user', at('09:10:05')],
      [s1, 2, 'assistant', at('09:10:06')],
      [s1, 3, 'user', at('09:11:00')],
      [s1, 4, 'assistant', at('09:11:01')],
      [s2, 1, 'user', at('09:31:00')],
      [s2, 2, 'assistant', at('09:31:01')],
      [s2, 3, 'system', at('09:49:00')],
      [s3, 1, 'user', at('10:06:00')],
      [s3, 2, 'assistant', at('10:06:01')],
      [s3, 3, 'assistant', at('10:06:02')],
    ];
    for (const [sessionId, seq, role, created] of messages) {
      await db.query(
        `INSERT INTO messages (session_id, seq, role, content, delivery_status, created_at)
         VALUES ($1, $2, $3, 'x', 'sent', $4)`,
        [sessionId, seq, role, created],
      );
    }
    for (const [sessionId, type, created] of [
      [s1, 'session.start', at('09:10:00')],
      [s2, 'session.start', at('09:30:00')],
      [s2, 'error', at('09:31:00')],
      [s3, 'checkout', at('10:06:00')],
    ] as const) {
      await db.query(
        `INSERT INTO session_events (session_id, bot, channel, type, created_at) VALUES ($1, 'support', 'whatsapp', $2, $3)`,
        [sessionId, type, created],
      );
    }

    const res = await admin('GET', `/api/admin/stats?from=${at('00:00:00')}&to=${day}T23:59:59Z&bucket=hour`);
    expect(res.status).toBe(200);
    expect(res.json.bucket).toBe('hour');
    expect(res.json.buckets).toEqual([
      {
        bucket: at('09:00:00.000'),
        bot: 'support',
        channel: 'whatsapp',
        sessions_started: 2,
        sessions_ended: 2,
        ended_by_reason: { 'ended by user': 1, idle: 1 },
        messages_in: 3,
        messages_out: 3,
      },
      {
        bucket: at('10:00:00.000'),
        bot: 'support',
        channel: 'teams',
        sessions_started: 1,
        sessions_ended: 1,
        ended_by_reason: { idle: 1 },
        messages_in: 0,
        messages_out: 0,
      },
      {
        bucket: at('10:00:00.000'),
        bot: 'support',
        channel: 'whatsapp',
        sessions_started: 1,
        sessions_ended: 0,
        ended_by_reason: {},
        messages_in: 1,
        messages_out: 2,
      },
    ]);
    // Durations 100 s and 1200 s; message counts 2 and 4 (percentile_cont interpolates).
    const whatsappEnded = res.json.ended_sessions.find((e: { channel: string }) => e.channel === 'whatsapp');
    expect(whatsappEnded.sessions).toBe(2);
    expect(whatsappEnded.duration_seconds.p50).toBeCloseTo(650, 6);
    expect(whatsappEnded.duration_seconds.p90).toBeCloseTo(1090, 6);
    expect(whatsappEnded.duration_seconds.p99).toBeCloseTo(1189, 6);
    expect(whatsappEnded.message_count.p50).toBeCloseTo(3, 6);
    expect(whatsappEnded.message_count.p90).toBeCloseTo(3.8, 6);
    expect(whatsappEnded.message_count.p99).toBeCloseTo(3.98, 6);
    expect(res.json.ended_sessions.find((e: { channel: string }) => e.channel === 'teams')).toEqual({
      bot: 'support',
      channel: 'teams',
      sessions: 1,
      duration_seconds: { p50: 10, p90: 10, p99: 10 },
      message_count: { p50: 0, p90: 0, p99: 0 },
    });
    expect(res.json.errors).toEqual([{ bot: 'support', errors: 1, turns: 4, error_rate: 0.25 }]);
    expect(res.json.events).toEqual([
      { type: 'checkout', count: 1 },
      { type: 'error', count: 1 },
      { type: 'session.start', count: 2 },
    ]);

    const daily = await admin('GET', `/api/admin/stats?from=${at('00:00:00')}&to=2025-03-05T00:00:00Z`);
    expect(
      daily.json.buckets.map((b: { bucket: string; channel: string; sessions_started: number }) => [
        b.bucket,
        b.channel,
        b.sessions_started,
      ]),
    ).toEqual([
      [at('00:00:00.000'), 'teams', 1],
      [at('00:00:00.000'), 'whatsapp', 3],
    ]);

    expect((await admin('GET', '/api/admin/stats?bucket=week')).status).toBe(400);
    expect((await admin('GET', `/api/admin/stats?from=${at('10:00:00')}&to=${at('09:00:00')}`)).status).toBe(
      400,
    );
  });

  it('counts what happened today by default (last 7 days, daily buckets)', async () => {
    const { rows } = await running.hub.db.query<{ bot: string; channel: string; n: number }>(
      `SELECT bot, channel, count(*)::int AS n FROM sessions WHERE created_at > now() - interval '7 days'
       GROUP BY bot, channel`,
    );
    const s = await api.createSession('support');
    await api.chat(s.token, 'counted');
    const res = await admin('GET', '/api/admin/stats');
    expect(res.status).toBe(200);
    expect(res.json.bucket).toBe('day');
    expect(Date.parse(res.json.to) - Date.parse(res.json.from)).toBe(7 * 86_400_000);
    const started = (bot: string, channel: string) =>
      res.json.buckets
        .filter((b: { bot: string; channel: string }) => b.bot === bot && b.channel === channel)
        .reduce((n: number, b: { sessions_started: number }) => n + b.sessions_started, 0);
    const earlier = (bot: string, channel: string) =>
      rows.find((r) => r.bot === bot && r.channel === channel)?.n ?? 0;
    expect(started('support', 'api')).toBe(earlier('support', 'api') + 1);
    expect(started('default', 'api')).toBe(earlier('default', 'api'));
  });
  it("shows the embedded hub's queue: the inbox's envelopes waiting and set aside", async () => {
    await whatsapp('queued, then handled');
    // The inbox marks an envelope handled just after its turn's commit.
    const answer = await eventually(async () => {
      const res = await admin('GET', '/api/admin/queue');
      expect(res.status).toBe(200);
      return res.json.queues[0].depth === 0 && res.json;
    }, 'the inbox to be empty');
    expect(answer).toEqual({
      queues: [{ queue: 'inbound', driver: 'in-process', depth: 0, deadLetters: 0 }],
      scheduler: { driver: 'table', failed: 0 },
    });
  });

  it('names the parameter a refusal is about, on the debug log as on every operator route', async () => {
    const session = (await api.createSession()).session_id;
    const answers = await Promise.all(
      [
        '/api/admin/sessions/not-a-uuid/debug',
        `/api/admin/sessions/${session}/debug?after=-1`,
        `/api/admin/sessions/${session}/debug?limit=1000`,
        `/api/admin/sessions/${session}/messages?limit=1000`,
      ].map(async (path) => {
        const res = await admin('GET', path);
        return { status: res.status, code: res.json.error.code, field: res.json.error.message.split(':')[0] };
      }),
    );
    expect(answers).toEqual([
      { status: 400, code: 'invalid_request', field: 'id' },
      { status: 400, code: 'invalid_request', field: 'after' },
      { status: 400, code: 'invalid_request', field: 'limit' },
      { status: 400, code: 'invalid_request', field: 'limit' },
    ]);
  });

  it("every exchange of the operator's above matched the OpenAPI document", () => {
    expect(contract.judged.some((e) => e.path.startsWith('/api/admin/sessions/') && e.status === 200)).toBe(
      true,
    );
    expect(breaches).toEqual([]);
  });
});

describe('operator queries on the embedded PGlite', () => {
  let db: Db;
  useTestDb('pglite', (opened) => {
    db = opened;
  });

  it('lists with a cursor, counts with percentiles and erases a user, as on PostgreSQL', async () => {
    const user = randomUUID();
    await db.query('INSERT INTO users (id) VALUES ($1)', [user]);
    await db.query(`INSERT INTO user_identities (channel, native_id, user_id) VALUES ('whatsapp', $1, $2)`, [
      PHONE,
      user,
    ]);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { snapshot } = await createSession(db, {
        bot: 'default',
        channel: 'whatsapp',
        nativeKey: i === 0 ? PHONE : `${PHONE}#t${i}`,
      });
      ids.push(snapshot.session.id);
      await db.query(
        `INSERT INTO messages (session_id, seq, role, content, delivery_status) VALUES ($1, 1, 'user', 'x', 'received')`,
        [snapshot.session.id],
      );
    }
    await db.query(
      `UPDATE sessions SET ended_at = created_at + interval '60 seconds', end_reason = 'idle', message_count = 1 WHERE id = $1`,
      [ids[2]],
    );
    const seen: string[] = [];
    let before: SessionCursor | undefined;
    for (;;) {
      const page = await listSessions(db, { limit: 1, before }, () => 60_000);
      seen.push(...page.sessions.map((s) => s.id));
      if (!page.next) break;
      before = page.next;
    }
    expect(seen).toEqual([...ids].reverse());
    const open = await listSessions(db, { limit: 10, state: 'active' }, () => 60_000);
    expect(open.sessions.map((s) => s.id)).toEqual([ids[1], ids[0]]);

    const stats = await sessionStats(db, {
      from: new Date(Date.now() - 3_600_000),
      to: new Date(Date.now() + 3_600_000),
      bucket: 'hour',
    });
    expect(stats.ended_sessions).toEqual([
      {
        bot: 'default',
        channel: 'whatsapp',
        sessions: 1,
        duration_seconds: { p50: 60, p90: 60, p99: 60 },
        message_count: { p50: 1, p90: 1, p99: 1 },
      },
    ]);
    expect(stats.buckets.reduce((n, b) => n + b.messages_in, 0)).toBe(3);

    const erased = await eraseUserRows(db, user);
    expect(erased).toMatchObject({ messages: 3, identities: 1, memory: 0 });
    expect(erased?.sessions.map((s) => s.id).sort()).toEqual([...ids].sort());
    expect((await db.query('SELECT 1 FROM sessions')).rows).toEqual([]);
    expect(await eraseUserRows(db, user)).toBeUndefined();
  });
});
