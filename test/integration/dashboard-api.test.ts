import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clearLiveRows, computeRows } from '../../src/analytics/rollup.ts';
import { recordDeliveries } from '../../src/store/messages.ts';
import { adminClient, processed } from '../helpers/admin.ts';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'dashboard-api-admin-token-0123456789abcdef';
const PHONE = '+4915112340000';
const HOUR_MS = 3_600_000;

describe('dashboard API', () => {
  let running: RunningHub;
  let admin: ReturnType<typeof adminClient>;
  let api: ReturnType<typeof apiClient>;
  let supervisor: ReturnType<typeof agentClient>;
  /** Every answer of the operator's and the supervisor's below, against the OpenAPI document. */
  let contract: ReturnType<typeof openApiContract>;
  const breaches: string[] = [];
  let plain: ReturnType<typeof agentClient>;
  let supervisorId = '';
  let plainId = '';
  let webSession = '';
  let whatsappSession = '';

  async function whatsapp(text: string, who: { bot?: string; phone?: string } = {}) {
    const id = `whatsapp:wamid.${randomUUID()}`;
    await running.hub.ingress.accept({
      id,
      channel: 'whatsapp',
      bot: who.bot ?? 'default',
      from: { id: who.phone ?? PHONE, name: 'Ana' },
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

  const count = async (sql: string, params: unknown[] = []) =>
    Number((await running.hub.db.query<{ n: string }>(sql, params)).rows[0]!.n);

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN });
    contract = openApiContract(await (await fetch(`${running.url}/openapi.json`)).json());
    admin = adminClient(running.url, ADMIN_TOKEN, (e) => breaches.push(...contract.check(e)));
    api = apiClient(running.url);
    const sup = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Sue Pervisor',
      email: 'sue@shop.test',
      role: 'supervisor',
      bots: ['*'],
    });
    supervisorId = sup.agent_id;
    supervisor = agentClient(running.url, {
      token: sup.token,
      onExchange: (e) => breaches.push(...contract.check(e)),
    });
    const ag = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Al Agent',
      email: 'al@shop.test',
      role: 'agent',
      bots: ['*'],
    });
    plainId = ag.agent_id;
    plain = agentClient(running.url, { token: ag.token });

    const s = await api.createSession();
    webSession = s.session_id;
    expect((await api.chat(s.token, 'hello pineapple world')).status).toBe(200);
    expect((await api.chat(s.token, 'second message')).status).toBe(200);
    whatsappSession = await whatsapp('greetings from the phone');
    await whatsapp('sign up');
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('is for supervisors, admins and ADMIN_TOKEN: 401 without sign-in, 403 for a plain agent', async () => {
    for (const route of [
      '/api/admin/analytics/messages',
      '/api/admin/audit',
      '/api/admin/transcripts/search?q=x',
      `/api/admin/transcripts/${webSession}`,
      `/api/admin/transcripts/${webSession}/inspect`,
      '/api/admin/queue',
    ]) {
      expect((await plain.call('GET', route)).status, route).toBe(403);
      expect((await adminClient(running.url, undefined)('GET', route)).status, route).toBe(401);
      expect((await supervisor.call('GET', route)).status, route).toBe(200);
      expect((await admin('GET', route)).status, route).toBe(200);
    }
  });

  it('counts messages per channel and direction as the database does, in one shape for every metric', async () => {
    const res = await admin('GET', '/api/admin/analytics/messages?bucket=hour');
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ metric: 'messages', bucket: 'hour', bot: null });
    expect(res.json.series.map((s: { name: string }) => s.name)).toEqual([
      'api in',
      'api out',
      'whatsapp in',
      'whatsapp out',
    ]);
    const total = (name: string) => res.json.series.find((s: { name: string }) => s.name === name).total;
    const db = (channel: string, roles: string[]) =>
      count(
        `SELECT count(*) AS n FROM messages m JOIN sessions s ON s.id = m.session_id
         WHERE s.channel = $1 AND m.role = ANY($2::text[])`,
        [channel, roles],
      );
    expect(total('api in')).toBe(await db('api', ['user']));
    expect(total('api in')).toBe(2);
    expect(total('api out')).toBe(await db('api', ['assistant', 'agent']));
    expect(total('whatsapp in')).toBe(2);
    expect(total('whatsapp out')).toBe(await db('whatsapp', ['assistant', 'agent']));
    expect(res.json.series[0].points).toHaveLength(24);
    for (const metric of [
      'sessions',
      'response-time',
      'handoffs',
      'resolution',
      'satisfaction',
      'tools',
      'knowledge',
      'errors',
    ]) {
      const m = await admin('GET', `/api/admin/analytics/${metric}?bucket=day`);
      expect(m.status, metric).toBe(200);
      expect(Object.keys(m.json).sort()).toEqual(['bot', 'bucket', 'from', 'metric', 'series', 'to']);
      for (const s of m.json.series) {
        expect(Object.keys(s).sort()).toEqual(['name', 'points', 'total', 'unit']);
        expect(s.points).toHaveLength(30);
      }
    }
    // Today, by day: its counts summed from its hours, the rest computed over the day.
    const byDay = await admin('GET', '/api/admin/analytics/messages?bucket=day');
    expect(byDay.json.series.map((s: { name: string; total: number }) => [s.name, s.total])).toEqual(
      res.json.series.map((s: { name: string; total: number }) => [s.name, s.total]),
    );
    const active = await admin('GET', '/api/admin/analytics/sessions?bucket=day');
    expect(active.json.series.find((s: { name: string }) => s.name === 'active').total).toBe(
      await count(`SELECT count(DISTINCT session_id) AS n FROM messages WHERE role = 'user'`),
    );
    const sessions = await admin('GET', '/api/admin/analytics/sessions?bucket=day');
    expect(sessions.json.series.find((s: { name: string }) => s.name === 'new').total).toBe(
      await count('SELECT count(*) AS n FROM sessions WHERE parent_id IS NULL'),
    );
    const response = await admin('GET', '/api/admin/analytics/response-time?bucket=day');
    expect(response.json.series.map((s: { name: string; unit: string }) => [s.name, s.unit])).toEqual([
      ['p50', 'ms'],
      ['p95', 'ms'],
    ]);
    expect(response.json.series[0].points.at(-1).v).toBeGreaterThanOrEqual(0);
  });

  it('filters by bot, and refuses a bad metric or range', async () => {
    const other = await admin('GET', '/api/admin/analytics/messages?bot=support');
    expect(other.json.series).toEqual([]);
    expect((await admin('GET', '/api/admin/analytics/nonsense')).status).toBe(400);
    expect((await admin('GET', '/api/admin/analytics/messages?bucket=week')).status).toBe(400);
    expect(
      (await admin('GET', '/api/admin/analytics/messages?from=2025-01-01T00:00:00Z&to=2025-12-01T00:00:00Z'))
        .status,
    ).toBe(400);
  });

  it('rolls closed buckets up once, and answers from the rollup after the messages are gone', async () => {
    const db = running.hub.db;
    const at = new Date(Math.floor((Date.now() - 5 * 24 * HOUR_MS) / HOUR_MS) * HOUR_MS + 60_000);
    const id = randomUUID();
    await db.query(
      `INSERT INTO sessions (id, bot, channel, native_key, created_at, last_activity_at) VALUES ($1, 'default', 'web', $2, $3, $3)`,
      [id, randomUUID(), at],
    );
    await db.query(
      `INSERT INTO messages (session_id, seq, role, content, envelope_id, delivery_status, payload, created_at)
       VALUES ($1, 1, 'user', 'old', $2, 'received', jsonb_build_object('receivedAt', $4::text), $3),
              ($1, 2, 'assistant', 'old reply', NULL, 'failed', '{}', $3)`,
      [id, `web:${randomUUID()}`, at, new Date(at.getTime() - 1500).toISOString()],
    );
    // The reply failed then, too (a failure is counted when it happens).
    await db.query('UPDATE messages SET updated_at = $2 WHERE session_id = $1', [id, at]);
    await db.query(
      `UPDATE messages SET in_reply_to = (SELECT envelope_id FROM messages WHERE session_id = $1 AND seq = 1) WHERE session_id = $1 AND seq = 2`,
      [id],
    );
    const from = new Date(at.getTime() - 60_000).toISOString();
    const to = new Date(at.getTime() + HOUR_MS).toISOString();
    const q = `from=${from}&to=${to}&bucket=hour`;
    const first = await admin('GET', `/api/admin/analytics/messages?${q}`);
    expect(first.json.series.map((s: { name: string; total: number }) => [s.name, s.total])).toEqual([
      ['web in', 1],
      ['web out', 1],
    ]);
    const errors = await admin('GET', `/api/admin/analytics/errors?${q}`);
    expect(errors.json.series.find((s: { name: string }) => s.name === 'failed deliveries').total).toBe(1);
    const response = await admin('GET', `/api/admin/analytics/response-time?${q}`);
    expect(response.json.series[0].points[0].v).toBe(1500);
    expect(
      await count('SELECT count(*) AS n FROM analytics_rolled WHERE grain = $1 AND bucket = $2', [
        'hour',
        new Date(Math.floor(at.getTime() / HOUR_MS) * HOUR_MS),
      ]),
    ).toBe(1);
    // Message retention removes the rows; the rolled-up hour still counts them.
    await db.query('DELETE FROM sessions WHERE id = $1', [id]);
    expect(await computeRows(db, new Date(from), new Date(to), 'hour')).toEqual([]);
    const again = await admin('GET', `/api/admin/analytics/messages?${q}`);
    expect(again.json.series).toEqual(first.json.series);
  });

  it('counts a reply that fails after hours of retries, though the hour it was written is rolled up', async () => {
    const db = running.hub.db;
    // A reply written three hours ago, retried since (DELIVERY_GIVE_UP_AFTER_SECONDS is 4 hours).
    const at = new Date(Math.floor((Date.now() - 3 * HOUR_MS) / HOUR_MS) * HOUR_MS + 60_000);
    const id = randomUUID();
    await db.query(
      `INSERT INTO sessions (id, bot, channel, native_key, created_at, last_activity_at) VALUES ($1, 'support', 'web', $2, $3, $3)`,
      [id, randomUUID(), at],
    );
    await db.query(
      `INSERT INTO messages (session_id, seq, role, content, envelope_id, delivery_status, payload, created_at, updated_at)
       VALUES ($1, 1, 'assistant', 'a reply the platform keeps refusing', NULL, 'queued', '{}', $2, $2)`,
      [id, at],
    );
    const q = `bot=support&from=${new Date(at.getTime() - 60_000).toISOString()}&bucket=hour`;
    const failed = async () =>
      (await admin('GET', `/api/admin/analytics/errors?${q}`)).json.series.find(
        (s: { name: string }) => s.name === 'failed deliveries',
      ).total;
    // The dashboard is open meanwhile: the reply's hour, closed for over an hour, is rolled up.
    expect(await failed()).toBe(0);
    expect(
      await count('SELECT count(*) AS n FROM analytics_rolled WHERE grain = $1 AND bucket = $2', [
        'hour',
        new Date(Math.floor(at.getTime() / HOUR_MS) * HOUR_MS),
      ]),
    ).toBe(1);
    // Its budget spent, the delivery gives it up now.
    await recordDeliveries(db, id, [{ seq: 1, status: 'failed', error: 'platform answered 503' }]);
    // Open buckets are shared between dashboards for LIVE_SHARE_MS: the failure shows at the next computation.
    await until(failed, (n) => n === 1);
  });

  it("charts a handoff's wait when an agent answers it, though it waited hours and the hour it was asked in is rolled up", async () => {
    const sessionId = await whatsapp('I need a person', { bot: 'support', phone: '+4915112349999' });
    // Handed over three hours ago (at night, say), and waiting since.
    const requestedAt = new Date(Math.floor((Date.now() - 3 * HOUR_MS) / HOUR_MS) * HOUR_MS + 60_000);
    await running.hub.db.query(
      `INSERT INTO handoffs (id, session_id, bot, channel, state, requested_at) VALUES ($1, $2, 'support', 'whatsapp', 'waiting', $3)`,
      [randomUUID(), sessionId, requestedAt],
    );
    const q = `bot=support&from=${new Date(requestedAt.getTime() - 60_000).toISOString()}&bucket=hour`;
    const waits = async () => {
      const { json } = await admin('GET', `/api/admin/analytics/handoffs?${q}`);
      return json.series
        .find((s: { name: string }) => s.name === 'wait p50')
        .points.map((p: { v: number | null }) => p.v)
        .filter((v: number | null) => v !== null) as number[];
    };
    // The dashboard is open meanwhile: the hour it was asked in is rolled up, with no wait yet.
    expect(await waits()).toEqual([]);
    expect((await supervisor.call('POST', `/api/agent/conversations/${sessionId}/claim`)).status).toBe(200);
    const [wait] = await until(waits, (w) => w.length === 1);
    expect(wait).toBeGreaterThanOrEqual(Date.now() - requestedAt.getTime() - 60_000);
  });

  it("charts a handoff's wait once, up to its first claim, when it is transferred later (across a rollup too)", async () => {
    const WAIT_MS = 10 * 60_000;
    // Before the last 24 hours, which the dashboard reads above rolled up by hour already.
    const SHIFT_MS = 50 * HOUR_MS;
    const sessionId = await whatsapp('a person, please', { phone: '+4915112348888' });
    const id = randomUUID();
    // Asked WAIT_MS ago (on the database's clock, as the claim's time is), claimed now.
    await running.hub.db.query(
      `INSERT INTO handoffs (id, session_id, bot, channel, state, requested_at)
       VALUES ($1, $2, 'default', 'whatsapp', 'waiting', now() - $3 * interval '1 millisecond')`,
      [id, sessionId, WAIT_MS],
    );
    expect((await supervisor.call('POST', `/api/agent/conversations/${sessionId}/claim`)).status).toBe(200);
    // That was SHIFT_MS ago: the claim's hour is closed, and the dashboard rolls it up (with the wait).
    await running.hub.db.query(
      `UPDATE handoffs SET requested_at = requested_at - $2 * interval '1 millisecond',
         assigned_at = assigned_at - $2 * interval '1 millisecond',
         first_assigned_at = first_assigned_at - $2 * interval '1 millisecond'
       WHERE id = $1`,
      [id, SHIFT_MS],
    );
    const { rows } = await running.hub.db.query<{ requested_at: Date; assigned_at: Date }>(
      'SELECT requested_at, assigned_at FROM handoffs WHERE id = $1',
      [id],
    );
    const { requested_at: requestedAt, assigned_at: claimedAt } = rows[0]!;
    const claimHour = Math.floor(claimedAt.getTime() / HOUR_MS) * HOUR_MS;
    const from = new Date(Math.floor(requestedAt.getTime() / HOUR_MS) * HOUR_MS);
    const waits = async () => {
      const { json } = await admin(
        'GET',
        `/api/admin/analytics/handoffs?bot=default&from=${from.toISOString()}&bucket=hour`,
      );
      return json.series
        .find((s: { name: string }) => s.name === 'wait p50')
        .points.filter((p: { v: number | null }) => p.v !== null) as { t: string; v: number }[];
    };
    const before = await waits();
    expect(before).toHaveLength(1);
    expect(before[0]!.v).toBeGreaterThanOrEqual(WAIT_MS);
    expect(before[0]!.v).toBeLessThan(HOUR_MS);
    expect(
      await count('SELECT count(*) AS n FROM analytics_rolled WHERE grain = $1 AND bucket = $2', [
        'hour',
        new Date(claimHour),
      ]),
    ).toBe(1);

    // Later (half an hour in the review's case), the supervisor hands it to a colleague.
    const moved = await supervisor.call('POST', `/api/agent/conversations/${sessionId}/transfer`, {
      body: { agent_id: plainId },
    });
    expect(moved.status).toBe(200);
    const { rows: after } = await running.hub.db.query<{ assigned_at: Date; agent_id: string }>(
      'SELECT assigned_at, agent_id FROM handoffs WHERE id = $1',
      [id],
    );
    // The holder's time is the new holder's (the absent-agent sweep counts from it)...
    expect(after[0]).toMatchObject({ agent_id: plainId });
    expect(after[0]!.assigned_at.getTime()).toBeGreaterThan(claimedAt.getTime());
    // ...and the wait is still the first one, counted once: computed afresh over the whole span,
    const computed = (await computeRows(running.hub.db, from, new Date(Date.now() + HOUR_MS), 'hour')).filter(
      (r) => r.metric === 'handoff_wait_ms' && r.bot === 'default' && r.key === 'n',
    );
    expect(computed.map((r) => [Date.parse(r.bucket), r.value])).toEqual([[claimHour, 1]]);
    // and as the dashboard charts it (not the live rows it shared before the transfer).
    clearLiveRows();
    expect(await waits()).toEqual(before);
  });

  it('finds a message by a word, with filters', async () => {
    const res = await supervisor.call('GET', '/api/admin/transcripts/search?q=pineapple');
    expect(res.status).toBe(200);
    // The person's message, and the bot's echo of it.
    expect(res.json.results.map((r: { role: string }) => r.role).sort()).toEqual(['assistant', 'user']);
    expect(res.json.results.find((r: { role: string }) => r.role === 'user')).toMatchObject({
      session_id: webSession,
      channel: 'api',
      snippet: 'hello «pineapple» world',
    });
    expect(
      (await admin('GET', '/api/admin/transcripts/search?q=pineapple&channel=whatsapp')).json.results,
    ).toEqual([]);
    expect(
      (await admin('GET', '/api/admin/transcripts/search?q=greetings&channel=whatsapp')).json.results[0]
        .session_id,
    ).toBe(whatsappSession);
    expect((await admin('GET', '/api/admin/transcripts/search')).status).toBe(400);
  });

  it('finds the newest matches of a common word too (more than the index path takes)', async () => {
    const id = randomUUID();
    await running.hub.db.query(
      `INSERT INTO sessions (id, bot, channel, native_key) VALUES ($1, 'default', 'web', $2)`,
      [id, randomUUID()],
    );
    await running.hub.db.query(
      `INSERT INTO messages (session_id, seq, role, content, delivery_status, created_at)
       SELECT $1, g, 'user', 'zebra number ' || g, 'received', now() - make_interval(secs => 5000 - g)
       FROM generate_series(1, 2500) AS g`,
      [id],
    );
    const res = await admin('GET', '/api/admin/transcripts/search?q=zebra&limit=3');
    expect(res.json.results.map((r: { seq: number }) => r.seq)).toEqual([2500, 2499, 2498]);
    const rare = await admin('GET', '/api/admin/transcripts/search?q=zebra%201234');
    expect(rare.json.results.map((r: { seq: number }) => r.seq)).toEqual([1234]);
    await running.hub.db.query('DELETE FROM sessions WHERE id = $1', [id]);
  });

  it('opens and exports a transcript, and follows the person across sessions', async () => {
    const res = await supervisor.call('GET', `/api/admin/transcripts/${webSession}`);
    expect(res.status).toBe(200);
    expect(
      res.json.messages
        .filter((m: { role: string }) => m.role === 'user')
        .map((m: { text: string }) => m.text),
    ).toEqual(['hello pineapple world', 'second message']);
    const text = await supervisor.call('GET', `/api/admin/transcripts/${webSession}/export?format=text`);
    expect(text.headers.get('content-disposition')).toContain(`transcript-${webSession}.txt`);
    expect(text.text).toContain('user: hello pineapple world');
    const json = await supervisor.call('GET', `/api/admin/transcripts/${webSession}/export?format=json`);
    expect(json.json.messages.some((m: { text: string }) => m.text === 'second message')).toBe(true);
    expect((await admin('GET', `/api/admin/transcripts/${randomUUID()}`)).status).toBe(404);

    // The WhatsApp person (their phone is a user identity), whose web session is linked to them too.
    const { rows } = await running.hub.db.query<{ user_id: string }>(
      `SELECT user_id FROM user_identities WHERE channel = 'whatsapp' AND native_id = $1`,
      [PHONE],
    );
    const userId = rows[0]!.user_id;
    await running.hub.db.query('UPDATE sessions SET user_id = $1 WHERE id = $2', [userId, webSession]);
    const person = await admin('GET', `/api/admin/people/${userId}/sessions`);
    expect(person.json.sessions.map((s: { session_id: string }) => s.session_id).sort()).toEqual(
      [webSession, whatsappSession].sort(),
    );
    const viaTranscript = await admin('GET', `/api/admin/transcripts/${whatsappSession}`);
    expect(viaTranscript.json.user_id).toBe(userId);
    expect(viaTranscript.json.person_sessions).toHaveLength(2);
  });

  it('shows where a dialog waits: script, line, and what HEAR waits for', async () => {
    const res = await admin('GET', `/api/admin/transcripts/${whatsappSession}/inspect`);
    expect(res.status).toBe(200);
    expect(res.json.dialog.hear).toEqual({ variable: 'name', type: 'NAME', choices: null, tries: 0 });
    expect(res.json.dialog.frames.at(-1)).toMatchObject({ script: 'signup.bas', line: 6 });
    expect(res.json.events.length).toBeGreaterThan(0);
    expect(res.json).toHaveProperty('variables');
    expect(res.json).toHaveProperty('debug');
  });

  it('writes every read, export, search and inspection to the audit log, with who and from where', async () => {
    expect((await admin('GET', `/api/admin/sessions/${webSession}/messages`)).status).toBe(200);
    const all = await admin('GET', `/api/admin/audit?session_id=${webSession}`);
    expect(all.status).toBe(200);
    const actions = all.json.entries.map(
      (e: { action: string; actor: string; via: string }) => `${e.actor}:${e.action}:${e.via}`,
    );
    expect(actions).toContain('operator:transcript.read:admin-api');
    expect(actions).toContain('agent:transcript.read:admin-api');
    expect(actions).toContain('agent:transcript.export:admin-api');
    const mine = await admin('GET', `/api/admin/audit?actor=${supervisorId}`);
    expect(mine.json.entries.every((e: { agent_id: string }) => e.agent_id === supervisorId)).toBe(true);
    const search = mine.json.entries.find((e: { action: string }) => e.action === 'transcript.search');
    expect(search).toMatchObject({ agent_name: 'Sue Pervisor', ip: expect.any(String), session_id: null });
    expect(JSON.stringify(mine.json)).not.toContain('pineapple');
    const ops = await admin('GET', '/api/admin/audit?actor=operator');
    expect(ops.json.entries.every((e: { actor: string }) => e.actor === 'operator')).toBe(true);
  });

  it('writes a read of the DEBUG SHOW log to the audit log, before it answers', async () => {
    const before = await admin('GET', `/api/admin/audit?session_id=${webSession}`);
    const debugReads = (entries: { action: string }[]) => entries.filter((e) => e.action === 'session.debug');
    const res = await fetch(`${running.url}/api/admin/sessions/${webSession}/debug`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'user-agent': 'debug-reader/1.0' },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ session_id: webSession, entries: expect.any(Array) });
    const after = await admin('GET', `/api/admin/audit?session_id=${webSession}`);
    expect(debugReads(after.json.entries).length).toBe(debugReads(before.json.entries).length + 1);
    expect(after.json.entries[0]).toMatchObject({
      actor: 'operator',
      action: 'session.debug',
      via: 'admin-api',
      session_id: webSession,
      user_agent: 'debug-reader/1.0',
      ip: expect.any(String),
    });
    // An unknown session is a 404 and reads nothing, so nothing is written.
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect((await admin('GET', `/api/admin/sessions/${unknown}/debug`)).status).toBe(404);
    expect((await admin('GET', `/api/admin/audit?session_id=${unknown}`)).json.entries).toEqual([]);
  });

  it('writes a read of one session (its variables) through the admin API to the audit log, before it answers', async () => {
    const inspections = async () =>
      (await admin('GET', `/api/admin/audit?session_id=${webSession}`)).json.entries.filter(
        (e: { action: string; via: string }) => e.action === 'session.inspect' && e.via === 'admin-api',
      ).length;
    const before = await inspections();
    const res = await fetch(`${running.url}/api/admin/sessions/${webSession}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'user-agent': 'session-reader/1.0' },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ session_id: webSession, session_state: expect.any(Object) });
    expect(await inspections()).toBe(before + 1);
    const latest = (await admin('GET', `/api/admin/audit?session_id=${webSession}`)).json.entries[0];
    expect(latest).toMatchObject({
      actor: 'operator',
      action: 'session.inspect',
      via: 'admin-api',
      session_id: webSession,
      user_agent: 'session-reader/1.0',
      ip: expect.any(String),
    });
    // An unknown session is a 404 and reads nothing, so nothing is written.
    const unknown = '00000000-0000-4000-8000-00000000000a';
    expect((await admin('GET', `/api/admin/sessions/${unknown}`)).status).toBe(404);
    expect((await admin('GET', `/api/admin/audit?session_id=${unknown}`)).json.entries).toEqual([]);
  });

  it('shows a supervisor or admin agent of one bot that bot\'s sessions and numbers only; ADMIN_TOKEN and a "*" supervisor every bot\'s', async () => {
    const phone = '+4915112349999';
    const ofSupport = await whatsapp('papaya for support', { bot: 'support', phone });
    const ofDefault = await whatsapp('papaya for default', { bot: 'default', phone });
    const { rows } = await running.hub.db.query<{ user_id: string }>(
      `SELECT user_id FROM user_identities WHERE channel = 'whatsapp' AND native_id = $1`,
      [phone],
    );
    const person = rows[0]!.user_id;
    const { rows: others } = await running.hub.db.query<{ user_id: string }>(
      `SELECT user_id FROM user_identities WHERE channel = 'whatsapp' AND native_id = $1`,
      [PHONE],
    );
    const defaultOnlyPerson = others[0]!.user_id;
    const scoped = async (name: string, role: string, bots: string[]) => {
      const made = await createAgentVia(running.url, ADMIN_TOKEN, {
        name,
        email: `${name.toLowerCase()}-${randomUUID().slice(0, 8)}@shop.test`,
        role,
        bots,
      });
      return {
        id: made.agent_id,
        client: agentClient(running.url, {
          token: made.token,
          onExchange: (e) => breaches.push(...contract.check(e)),
        }),
      };
    };
    const sessionIds = (results: { session_id: string }[]) => [...new Set(results.map((r) => r.session_id))];
    const totals = (answer: { series: { name: string; total: number | null }[] }) =>
      answer.series.map((s) => [s.name, s.total]);
    // The hour's numbers are computed live and shared for a moment: read once they hold the messages above.
    const supportMessages = await until(
      () => admin('GET', '/api/admin/analytics/messages?bot=support'),
      (r) =>
        r.json.series.some((s: { name: string; total: number }) => s.name === 'whatsapp in' && s.total > 0),
      20_000,
    );
    expect(totals(supportMessages.json)).not.toEqual(
      totals((await admin('GET', '/api/admin/analytics/messages')).json),
    );

    const viewers = [
      await scoped('Sam', 'supervisor', ['support']),
      await scoped('Ada', 'admin', ['support']),
    ];
    for (const { client: viewer } of viewers) {
      for (const route of [
        `/api/admin/transcripts/${ofDefault}`,
        `/api/admin/transcripts/${ofDefault}/inspect`,
        `/api/admin/transcripts/${ofDefault}/export?format=json`,
        `/api/admin/transcripts/${ofDefault}/export?format=text`,
        '/api/admin/transcripts/search?q=papaya&bot=default',
        '/api/admin/analytics/messages?bot=default',
        '/api/admin/analytics/response-time?bot=default&format=csv',
      ]) {
        const refused = await viewer.call('GET', route);
        expect(refused.status, route).toBe(403);
        expect(refused.json.error.code, route).toBe('forbidden');
      }
      for (const route of [
        `/api/admin/transcripts/${ofSupport}/inspect`,
        `/api/admin/transcripts/${ofSupport}/export?format=json`,
        '/api/admin/analytics/messages?bot=support',
      ])
        expect((await viewer.call('GET', route)).status, route).toBe(200);

      const transcript = await viewer.call('GET', `/api/admin/transcripts/${ofSupport}`);
      expect(transcript.status).toBe(200);
      expect(transcript.json.identities.map((i: { native_id: string }) => i.native_id)).toContain(phone);
      expect(transcript.json.person_sessions.map((s: { session_id: string }) => s.session_id)).toEqual([
        ofSupport,
      ]);
      const found = await viewer.call('GET', '/api/admin/transcripts/search?q=papaya');
      expect(found.status).toBe(200);
      expect(sessionIds(found.json.results)).toEqual([ofSupport]);
      expect((await viewer.call('GET', `/api/admin/people/${person}/sessions`)).json).toMatchObject({
        identities: [expect.objectContaining({ native_id: phone })],
        sessions: [expect.objectContaining({ session_id: ofSupport, bot: 'support' })],
      });
      const stranger = await viewer.call('GET', `/api/admin/people/${defaultOnlyPerson}/sessions`);
      expect(stranger.json).toEqual({ user_id: defaultOnlyPerson, identities: [], sessions: [] });

      expect((await viewer.call('GET', '/api/admin/analytics')).json.bots).toEqual(['support']);
      // Without bot=, the numbers of its bots: here its one bot's, percentiles included.
      const messages = await viewer.call('GET', '/api/admin/analytics/messages');
      expect(messages.json.bot).toBeNull();
      // Compared with the support bot's numbers read at the same moment: a turn of an earlier
      // message may still be committing (the first read above waited for one message only).
      await until(
        async () => {
          const [mine, support] = await Promise.all([
            viewer.call('GET', '/api/admin/analytics/messages'),
            admin('GET', '/api/admin/analytics/messages?bot=support'),
          ]);
          return { mine: totals(mine.json), support: totals(support.json) };
        },
        ({ mine, support }) => JSON.stringify(mine) === JSON.stringify(support),
        20_000,
        250,
      );
      await until(
        async () => {
          const [mine, support] = await Promise.all([
            viewer.call('GET', '/api/admin/analytics/response-time'),
            admin('GET', '/api/admin/analytics/response-time?bot=support'),
          ]);
          return { mine: mine.json.series, support: support.json.series };
        },
        ({ mine, support }) => JSON.stringify(mine) === JSON.stringify(support),
        20_000,
        250,
      );
    }
    // A refused read read nothing, so the audit log has none.
    expect(
      await count('SELECT count(*) AS n FROM transcript_reads WHERE session_id = $1 AND agent_id = ANY($2)', [
        ofDefault,
        viewers.map((v) => v.id),
      ]),
    ).toBe(0);

    // Of several bots (not every one): their counts summed; percentiles only one bot at a time.
    const { client: both } = await scoped('Bo', 'supervisor', ['support', 'default']);
    const summed = (await both.call('GET', '/api/admin/analytics/messages')).json;
    const defaultMessages = (await admin('GET', '/api/admin/analytics/messages?bot=default')).json;
    const total = (answer: { series: { total: number }[] }) => answer.series.reduce((n, s) => n + s.total, 0);
    expect(total(summed)).toBe(total(supportMessages.json) + total(defaultMessages));
    const percentiles = (await both.call('GET', '/api/admin/analytics/response-time')).json;
    expect(
      percentiles.series.flatMap((s: { points: { v: number | null }[] }) => s.points.map((p) => p.v)),
    ).toEqual(percentiles.series.flatMap((s: { points: unknown[] }) => s.points.map(() => null)));

    // ADMIN_TOKEN and a supervisor of "*" see every bot.
    const everyBot = async (call: (method: string, route: string) => ReturnType<typeof admin>) => {
      expect(
        sessionIds((await call('GET', '/api/admin/transcripts/search?q=papaya')).json.results).sort(),
      ).toEqual([ofSupport, ofDefault].sort());
      expect((await call('GET', `/api/admin/transcripts/${ofDefault}`)).status).toBe(200);
      expect((await call('GET', `/api/admin/transcripts/${ofDefault}/inspect`)).status).toBe(200);
      expect((await call('GET', '/api/admin/analytics/messages?bot=default')).status).toBe(200);
      expect((await call('GET', `/api/admin/people/${person}/sessions`)).json.sessions).toHaveLength(2);
      expect((await call('GET', '/api/admin/analytics')).json.bots).toEqual(['default', 'support']);
    };
    await everyBot((method, route) => admin(method, route));
    await everyBot((method, route) => supervisor.call(method, route));

    // The audit log: a viewer of one bot sees the rows about its bot's sessions, whoever read
    // them, and its own rows (its searches); never another bot's sessions or their readers.
    const [sam, ada] = viewers as [(typeof viewers)[0], (typeof viewers)[0]];
    type Entry = { agent_id: string | null; session_id: string | null; action: string };
    const entries = async (call: (method: string, route: string) => ReturnType<typeof admin>) =>
      (await call('GET', '/api/admin/audit?limit=200')).json.entries as Entry[];
    const all = await entries((method, route) => admin(method, route));
    expect(all.some((e) => e.session_id === ofDefault)).toBe(true);
    const seen = await entries((method, route) => sam.client.call(method, route));
    expect(seen.some((e) => e.session_id === ofSupport && e.agent_id === ada.id)).toBe(true);
    expect(seen.some((e) => e.agent_id === sam.id && e.action === 'transcript.search')).toBe(true);
    const { rows: botOf } = await running.hub.db.query<{ id: string; bot: string }>(
      'SELECT id, bot FROM sessions WHERE id = ANY($1::uuid[])',
      [[...new Set(seen.flatMap((e) => (e.session_id ? [e.session_id] : [])))]],
    );
    const bots = new Map(botOf.map((r) => [r.id, r.bot]));
    for (const e of seen)
      expect(
        e.agent_id === sam.id || (e.session_id !== null && bots.get(e.session_id) === 'support'),
        JSON.stringify(e),
      ).toBe(true);
    const asked = await sam.client.call('GET', `/api/admin/audit?session_id=${ofDefault}`);
    expect(asked.json.entries).toEqual([]);
    expect(
      (await admin('GET', `/api/admin/audit?session_id=${ofDefault}`)).json.entries.length,
    ).toBeGreaterThan(0);
  });

  it('keeps audit rows of an erased person without their session ids', async () => {
    const before = await count('SELECT count(*) AS n FROM transcript_reads WHERE session_id = $1', [
      webSession,
    ]);
    expect(before).toBeGreaterThan(0);
    const { rows } = await running.hub.db.query<{ user_id: string }>(
      'SELECT user_id FROM sessions WHERE id = $1',
      [webSession],
    );
    expect((await admin('DELETE', `/api/users/${rows[0]!.user_id}`)).status).toBe(200);
    expect(
      await count('SELECT count(*) AS n FROM transcript_reads WHERE session_id = $1', [webSession]),
    ).toBe(0);
    expect(await count('SELECT count(*) AS n FROM transcript_reads WHERE erased')).toBeGreaterThanOrEqual(
      before,
    );
  });

  it("every answer above matched the OpenAPI document's schemas, and each dashboard route answered 200 at least once", async () => {
    expect((await admin('GET', '/api/admin/analytics')).json.metrics).toContain('messages');
    const answered = new Set(
      contract.judged
        .filter((e) => e.status === 200 && e.responseBody !== undefined)
        .map((e) => `${e.method} ${e.path.split('?')[0]!.replace(/[0-9a-f-]{36}/g, '{id}')}`),
    );
    for (const route of [
      'GET /api/admin/analytics',
      'GET /api/admin/analytics/messages',
      'GET /api/admin/audit',
      'GET /api/admin/transcripts/search',
      'GET /api/admin/transcripts/{id}',
      'GET /api/admin/transcripts/{id}/inspect',
      'GET /api/admin/transcripts/{id}/export',
      'GET /api/admin/people/{id}/sessions',
    ])
      expect(answered, route).toContain(route);
    expect(breaches).toEqual([]);
  });
});
