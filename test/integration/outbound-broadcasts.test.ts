import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimRecipients, insertBroadcast, settleRecipient } from '../../src/outbound/broadcast-store.ts';
import { BROADCAST_TICK_JOB, BroadcastService } from '../../src/outbound/broadcasts.ts';
import { setOptOut } from '../../src/outbound/opt-out.ts';
import { OutboundService } from '../../src/outbound/service.ts';
import type { ChannelAdapter } from '../../src/ports.ts';
import { endSessionThroughQueue } from '../../src/sessions.ts';
import type { Db } from '../../src/store/db.ts';
import { findOpenSnapshotByKey, loadSnapshot } from '../../src/store/sessions.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { adminClient, eventually } from '../helpers/admin.ts';
import { dbFailingOnce, failOnce } from '../helpers/away.ts';
import { silentLogger } from '../helpers/database.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';
import { postWhatsAppWebhook, whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const APP_SECRET = 'test-app-secret';
const ACCESS_TOKEN = 'EAAJB-test-token';
const NUMBER = '106540352242922';
const ADMIN_TOKEN = 'broadcast-test-admin-token-0123456789abcdef';

describe('POST /api/admin/broadcasts: one message to many', () => {
  let graph: GraphApi;
  let running: RunningHub;
  let admin: ReturnType<typeof adminClient>;
  const breaches: string[] = [];
  let serial = 0;
  let whatsapp: ChannelAdapter;

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    whatsapp = whatsAppCloudAdapter({
      graphUrl: graph.url,
      numbers: `${NUMBER}:default`,
      accessToken: ACCESS_TOKEN,
      appSecret: APP_SECRET,
    });
    running = await startTestHub(
      {
        configDir: FIXTURE_CONFIG,
        adminToken: ADMIN_TOKEN,
        schedulerPollMs: 100,
        broadcastRateLimits: { whatsapp: 500 },
      },
      { adapters: [whatsapp] },
    );
    const raw = adminClient(running.url, ADMIN_TOKEN);
    const contract = openApiContract(await (await fetch(`${running.url}/openapi.json`)).json());
    // Every answer is checked against the OpenAPI document.
    admin = async (method, route, body, headers) => {
      const res = await raw(method, route, body, headers);
      breaches.push(
        ...contract.check({
          method,
          path: route,
          status: res.status,
          requestBody: body,
          responseBody: res.json,
        }),
      );
      return res;
    };
  });
  afterAll(async () => {
    await running?.stop();
    await graph?.close();
  });

  const person = () => `1650888${String(1000 + ++serial).padStart(4, '0')}`;
  const say = async (waId: string, text: string) => {
    const payload = doc.variant(doc.textMessage, {
      from: waId,
      suffix: `${waId}-${text}`,
      timestamp: new Date(),
    });
    (payload as unknown as { entry: { changes: { value: { messages: { text: { body: string } }[] } }[] }[] })
      .entry[0]!.changes[0]!.value.messages[0]!.text.body = text;
    const res = await postWhatsAppWebhook(running.url, payload, APP_SECRET);
    expect(res.status).toBe(200);
  };
  const templatesTo = (waId: string, name: string) =>
    graph
      .to(waId)
      .filter((r) => r.body.type === 'template' && (r.body.template as { name: string }).name === name);
  const textsTo = (waId: string) =>
    graph.to(waId).flatMap((r) => (r.body.type === 'text' ? [(r.body.text as { body: string }).body] : []));
  const completed = (id: string) =>
    eventually(
      async () => {
        const p = (await admin('GET', `/api/admin/broadcasts/${id}`)).json;
        return p.status === 'completed' ? p : undefined;
      },
      `broadcast ${id} completed`,
      30_000,
    );
  const outboundRows = async () =>
    Number((await running.hub.db.query('SELECT count(*) AS n FROM outbound_messages')).rows[0]!.n);

  it('sends a template to a list once each (duplicates in the list count once), skipping opted-out people', async () => {
    const people = Array.from({ length: 12 }, person);
    const stopped = people[3]!;
    await say(stopped, 'STOP');
    await eventually(
      async () => textsTo(stopped).some((t) => t.includes('Send START')),
      'the stop confirmation',
    );
    const res = await admin('POST', '/api/admin/broadcasts', {
      bot: 'default',
      channel: 'whatsapp',
      to: [...people.map((p) => `+${p}`), `+${people[0]}`, people[1]],
      template: { name: 'spring_sale', language: 'en' },
      rate_per_second: 50,
    });
    expect(res.status).toBe(202);
    expect(res.json).toEqual({
      broadcast_id: expect.any(String),
      total: 12,
      opted_out: 1,
      rate_per_second: 50,
    });
    const done = await completed(res.json.broadcast_id);
    expect(done).toMatchObject({ total: 12, queued: 0, failed: 0, opted_out: 1, channel: 'whatsapp' });
    expect(done.sent + done.delivered).toBe(11);
    for (const p of people) expect(templatesTo(p, 'spring_sale')).toHaveLength(p === stopped ? 0 : 1);
  });

  it('caps the pace at the channel limit, and reaches an audience filtered by activity and variables', async () => {
    const [a, b, c] = [person(), person(), person()];
    for (const p of [a, b, c]) await say(p, 'hello');
    await eventually(async () => [a, b, c].every((p) => textsTo(p).length > 0), 'the greetings');
    await running.hub.db.query(
      `UPDATE session_state SET variables = variables || '{"tier":"gold"}'::jsonb
       WHERE session_id IN (SELECT id FROM sessions WHERE channel = 'whatsapp' AND native_key = ANY($1))`,
      [[`+${a}`, `+${b}`]],
    );
    await running.hub.db.query(
      `UPDATE sessions SET last_activity_at = now() - interval '10 days' WHERE native_key = $1`,
      [`+${b}`],
    );
    const res = await admin('POST', '/api/admin/broadcasts', {
      bot: 'default',
      channel: 'whatsapp',
      audience: {
        last_active_after: new Date(Date.now() - 86_400_000).toISOString(),
        variables: { tier: 'gold' },
        has_identity: 'phone',
      },
      text: 'Gold members: early access today',
      rate_per_second: 100_00,
    });
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ total: 1, opted_out: 0, rate_per_second: 500 });
    await completed(res.json.broadcast_id);
    expect(textsTo(a)).toContain('Gold members: early access today');
    expect(textsTo(b)).not.toContain('Gold members: early access today');
    expect(textsTo(c)).not.toContain('Gold members: early access today');
  });

  it('counts a recipient the channel refuses as failed (free text outside the 24-hour window)', async () => {
    const never = person();
    const res = await admin('POST', '/api/admin/broadcasts', {
      bot: 'default',
      channel: 'whatsapp',
      to: [never],
      text: 'Hello there',
    });
    expect(res.status).toBe(202);
    const done = await completed(res.json.broadcast_id);
    expect(done).toMatchObject({ total: 1, failed: 1, sent: 0, delivered: 0 });
    expect(graph.to(never)).toHaveLength(0);
  });

  it('replays an idempotency key with the first answer (200) and refuses it with another body (409)', async () => {
    const body = {
      bot: 'default',
      channel: 'whatsapp',
      to: [person(), person()],
      template: { name: 'reminder', language: 'en' },
      idempotency_key: `campaign-${serial}`,
    };
    const first = await admin('POST', '/api/admin/broadcasts', body);
    expect(first.status).toBe(202);
    const again = await admin('POST', '/api/admin/broadcasts', body);
    expect(again.status).toBe(200);
    expect(again.json).toEqual(first.json);
    const other = await admin('POST', '/api/admin/broadcasts', { ...body, to: [person()] });
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe('idempotency_conflict');
    await completed(first.json.broadcast_id);
    for (const p of body.to) expect(templatesTo(p, 'reminder')).toHaveLength(1);
    const { rows } = await running.hub.db.query(
      'SELECT count(*) AS n FROM broadcasts WHERE idempotency_key = $1',
      [body.idempotency_key],
    );
    expect(Number(rows[0]!.n)).toBe(1);
  });

  it('a broadcast whose run cannot be scheduled answers 503; its retry with the idempotency key runs it, once each', async () => {
    const body = {
      bot: 'default',
      channel: 'whatsapp',
      to: [person(), person()],
      template: { name: 'scheduler_away', language: 'en' },
      idempotency_key: `scheduler-away-${serial}`,
    };
    const away = failOnce(running.hub.scheduler, 'schedule', (name) => name === BROADCAST_TICK_JOB);
    try {
      const first = await admin('POST', '/api/admin/broadcasts', body);
      expect(first.status).toBe(503);
      expect(first.json.error.code).toBe('unavailable');
      expect(away.failures).toBe(1);
    } finally {
      away.restore();
    }
    const again = await admin('POST', '/api/admin/broadcasts', body);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ total: 2, opted_out: 0 });
    const done = await completed(again.json.broadcast_id);
    expect(done).toMatchObject({ total: 2, queued: 0, failed: 0 });
    // Retried again once it runs: the same broadcast, nobody gets it twice.
    const third = await admin('POST', '/api/admin/broadcasts', body);
    expect(third.json).toEqual(again.json);
    await completed(again.json.broadcast_id);
    for (const p of body.to) expect(templatesTo(p, 'scheduler_away')).toHaveLength(1);
  });

  it('a broadcast without an idempotency key whose run cannot be scheduled answers 503 and is never run', async () => {
    const to = [person(), person()];
    const away = failOnce(running.hub.scheduler, 'schedule', (name) => name === BROADCAST_TICK_JOB);
    try {
      const res = await admin('POST', '/api/admin/broadcasts', {
        bot: 'default',
        channel: 'whatsapp',
        to,
        template: { name: 'never_started', language: 'en' },
      });
      expect(res.status).toBe(503);
    } finally {
      away.restore();
    }
    const { rows } = await running.hub.db.query(
      'SELECT status, error FROM outbound_messages WHERE native_key = ANY($1::text[])',
      [to.map((p) => `+${p}`)],
    );
    expect(rows).toEqual(
      to.map(() => ({
        status: 'failed',
        error: 'not sent: the request failed before the broadcast was scheduled (503)',
      })),
    );
    for (const p of to) expect(graph.to(p)).toHaveLength(0);
  });

  /**
   * An outbound and a broadcast service over the running hub, sending through WhatsApp, no rate
   * limits; the broadcast service's ticks read and write through `tickDb` when given.
   */
  const services = (tickDb?: Db) => {
    const { db, bots, ingress, scheduler } = running.hub;
    const adapters = new Map([[whatsapp.channel, whatsapp]]);
    const outbound = new OutboundService({ db, bots, ingress, scheduler, logger: silentLogger, adapters });
    const service = new BroadcastService({
      db: tickDb ?? db,
      bots,
      scheduler,
      logger: silentLogger,
      outbound,
      adapters,
      rateLimits: {},
    });
    return { outbound, service };
  };

  /** A WhatsApp template broadcast to `to` (their sessions, when given), committed as its POST would. */
  const insertTemplateBroadcast = (
    id: string,
    template: string,
    to: string[],
    sessionIds?: (string | null)[],
  ) =>
    running.hub.db.transaction((tx) =>
      insertBroadcast(
        tx,
        {
          id,
          bot: 'default',
          channel: 'whatsapp',
          text: `[template ${template} (en)]`,
          template: { name: template, language: 'en' },
          subject: null,
          ratePerSecond: 50,
          audience: { to: to.length },
          idempotencyKey: null,
          requestHash: null,
        },
        { kind: 'keys', nativeKeys: to.map((p) => `+${p}`), ...(sessionIds ? { sessionIds } : {}) },
      ),
    );

  it('a tick that died after claiming recipients (one already handed over) is resumed without a duplicate', async () => {
    const { db } = running.hub;
    const { outbound, service } = services();
    const people = [person(), person(), person()];
    const template = { name: 'crash_notice', language: 'en' };
    const id = '0d9f4a52-5c43-4b7e-9f3e-1b2a3c4d5e6f';
    await insertTemplateBroadcast(id, 'crash_notice', people);
    // The dead tick: all three claimed, the first handed to its lane, none settled.
    const claimed = await claimRecipients(db, id, 3);
    expect(claimed).toHaveLength(3);
    const first = claimed[0]!;
    const placed = await outbound.place(whatsapp.outbound, {
      bot: 'default',
      channel: 'whatsapp',
      nativeKey: first.nativeKey,
      template,
      key: first.id,
      now: new Date(),
    });
    if (!placed.ok) throw new Error(placed.message);
    const message = { ...first, nativeKey: placed.nativeKey, replyTo: placed.replyTo ?? null };
    const session = await outbound.sessionFor(message);
    await outbound.handOver(session!, message);
    await eventually(async () => graph.to(first.nativeKey.slice(1)).length === 1, 'the first one sent');

    await service.tick(id);
    const done = await completed(id);
    expect(done).toMatchObject({ total: 3, queued: 0, failed: 0, opted_out: 0 });
    for (const p of people) expect(templatesTo(p, 'crash_notice')).toHaveLength(1);
    const history = await db.query(`SELECT count(*) AS n FROM messages WHERE envelope_id = ANY($1::text[])`, [
      claimed.map((c) => `outbound:operator:${c.id}`),
    ]);
    expect(Number(history.rows[0]!.n)).toBe(3);
  });

  it('completes when a recipient’s session ended between the hand-over and their turn: the message goes into their new session', async () => {
    const { db, ingress } = running.hub;
    const { outbound, service } = services();
    const [ended, other] = [person(), person()];
    await say(ended, 'hello');
    const session = await eventually(
      async () =>
        (await findOpenSnapshotByKey(db, { bot: 'default', channel: 'whatsapp', nativeKey: `+${ended}` }))
          ?.session,
      'the session of the person who wrote',
    );
    const id = '3c5e7a9b-1d2f-4a6b-8c0d-2e4f6a8b0c1d';
    await insertTemplateBroadcast(id, 'ended_notice', [ended, other], [session.id, null]);
    // A tick handed the first recipient to their open session; the session's end was ahead of it
    // in the lane (the person's END, an idle-out, an operator's DELETE).
    const claimed = await claimRecipients(db, id, 2);
    const first = claimed.find((r) => r.nativeKey === `+${ended}`)!;
    await endSessionThroughQueue({ db, ingress }, session, 'test');
    await eventually(
      async () => (await loadSnapshot(db, session.id))?.session.endedAt ?? undefined,
      'the session ended',
    );
    await outbound.handOver(session, first);
    await settleRecipient(db, first.id, 'queued', { sessionId: session.id });

    await service.tick(id);
    const done = await completed(id);
    expect(done).toMatchObject({ total: 2, queued: 0, failed: 0, opted_out: 0 });
    expect(done.sent + done.delivered).toBe(2);
    for (const p of [ended, other]) expect(templatesTo(p, 'ended_notice')).toHaveLength(1);
    const { rows } = await db.query('SELECT session_id FROM messages WHERE envelope_id = $1', [
      `outbound:operator:${first.id}`,
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.session_id).not.toBe(session.id);
  });

  it('a tick whose database read fails once goes on at its next try: the broadcast is dispatched and completes', async () => {
    const { db } = running.hub;
    const reads = {
      findBroadcast: 'SELECT * FROM broadcasts WHERE id',
      hasWaitingRecipients: "status IN ('pending', 'dispatching') LIMIT 1",
      markBroadcastFinished: 'SET finished_at = now()',
    };
    for (const [read, fragment] of Object.entries(reads)) {
      const people = [person(), person()];
      const id = randomUUID();
      await insertTemplateBroadcast(id, 'db_blip', people);
      // A worker whose tick meets PostgreSQL away at one read; the hub's own worker runs the retry.
      const failing = dbFailingOnce(db, fragment);
      const runner = services(failing.db).service;
      await runner.tick(id);
      expect({ read, failures: failing.failures }).toEqual({ read, failures: 1 });
      const done = await eventually(
        async () => {
          const p = (await admin('GET', `/api/admin/broadcasts/${id}`)).json;
          return p.status === 'completed' && p.dispatched_at !== null ? p : undefined;
        },
        `broadcast ${id} (${read} failed once) dispatched and completed`,
        30_000,
      );
      expect(done).toMatchObject({ total: 2, queued: 0, failed: 0, opted_out: 0 });
      for (const p of people) expect(templatesTo(p, 'db_blip')).toHaveLength(1);
    }
  });

  it('skips and counts a person who opts out after the broadcast was accepted, before their turn', async () => {
    const { db } = running.hub;
    const { service } = services();
    const people = [person(), person(), person()];
    const id = '7a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
    const accepted = await insertTemplateBroadcast(id, 'late_stop', people);
    expect(accepted).toEqual({ total: 3, optedOut: 0 });
    await setOptOut(db, { bot: 'default', channel: 'whatsapp', nativeId: `+${people[1]}` }, true);
    await service.tick(id);
    const done = await completed(id);
    expect(done).toMatchObject({ total: 3, queued: 0, failed: 0, opted_out: 1 });
    expect(done.sent + done.delivered).toBe(2);
    expect(people.map((p) => templatesTo(p, 'late_stop').length)).toEqual([1, 0, 1]);
  });

  it('switchboard broadcast start --watch starts one and shows its progress bar until it completes', async () => {
    const people = [person(), person()];
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        path.join(REPO_ROOT, 'bin/switchboard.js'),
        'broadcast',
        'start',
        '--url',
        running.url,
        '--bot',
        'default',
        '--channel',
        'whatsapp',
        '--to',
        people.map((p) => `+${p}`).join(','),
        '--template',
        '{"name":"cli_notice","language":"en"}',
        '--watch',
        '--interval',
        '100',
      ],
      { env: { PATH: process.env.PATH ?? '', ADMIN_TOKEN }, timeout: 60_000 },
    );
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^broadcast [0-9a-f-]{36}: 2 recipients \(0 opted out\) at 500\/s$/);
    expect(lines.at(-1)).toMatch(
      /^\[█{30}\] 2\/2 100% {2}sent \d · delivered \d · failed 0 · opted out 0 · queued 0$/,
    );
    for (const p of people) expect(templatesTo(p, 'cli_notice')).toHaveLength(1);
    const id = lines[0]!.split(' ')[1]!.replace(':', '');
    const status = await promisify(execFile)(
      process.execPath,
      [path.join(REPO_ROOT, 'bin/switchboard.js'), 'broadcast', 'status', id, '--url', running.url, '--json'],
      { env: { PATH: process.env.PATH ?? '', ADMIN_TOKEN }, timeout: 60_000 },
    );
    expect(JSON.parse(status.stdout)).toMatchObject({ broadcast_id: id, status: 'completed', total: 2 });
  });

  it('answers bad input with a clear 4xx and queues nothing', async () => {
    const before = await outboundRows();
    const base = {
      bot: 'default',
      channel: 'whatsapp',
      to: [person()],
      template: { name: 'x', language: 'en' },
    };
    const session = await apiClient(running.url).createSession('default');
    const cases: [unknown, number, string][] = [
      [{ ...base, bot: 'nobody' }, 404, 'unknown_bot'],
      [{ ...base, channel: 'pager' }, 400, 'unknown_channel'],
      [{ ...base, to: [person(), 'not a phone'] }, 400, 'invalid_recipient'],
      [{ ...base, text: 'both' }, 400, 'invalid_request'],
      [{ ...base, audience: {} }, 400, 'invalid_request'],
      [{ ...base, to: [] }, 400, 'invalid_request'],
      [{ ...base, rate_per_second: 0 }, 400, 'invalid_request'],
      [{ ...base, to: undefined, audience: { has_identity: 'fax' } }, 400, 'invalid_audience'],
      [{ ...base, to: undefined, audience: { shoe_size: 42 } }, 400, 'invalid_request'],
      [
        { bot: 'default', channel: 'api', to: [session.session_id], template: base.template },
        422,
        'not_supported',
      ],
      [
        { bot: 'default', channel: 'api', to: ['6f1c1f9e-7d43-4e43-9a53-4a3f8f0e2b11'], text: 'hi' },
        404,
        'unknown_session',
      ],
    ];
    for (const [body, code, error] of cases) {
      const res = await admin('POST', '/api/admin/broadcasts', body);
      expect({ body, status: res.status, code: res.json?.error?.code }).toEqual({
        body,
        status: code,
        code: error,
      });
    }
    expect((await adminClient(running.url, undefined)('POST', '/api/admin/broadcasts', base)).status).toBe(
      401,
    );
    expect((await admin('GET', '/api/admin/broadcasts/6f1c1f9e-7d43-4e43-9a53-4a3f8f0e2b11')).status).toBe(
      404,
    );
    expect(await outboundRows()).toBe(before);
  });

  it('writes to open API sessions by id, and lists broadcasts', async () => {
    const client = apiClient(running.url);
    const sessions = [await client.createSession('default'), await client.createSession('default')];
    const res = await admin('POST', '/api/admin/broadcasts', {
      bot: 'default',
      channel: 'api',
      to: sessions.map((s) => s.session_id),
      text: 'We are closed on Monday',
    });
    expect(res.status).toBe(202);
    expect(res.json.total).toBe(2);
    await eventually(async () => {
      for (const s of sessions) {
        const history = (await client.history(s.token)).json;
        const said = (history.messages as { role: string; text?: string; content?: string }[]).some(
          (m) => m.role === 'assistant' && (m.text ?? m.content) === 'We are closed on Monday',
        );
        if (!said) return false;
      }
      return true;
    }, 'the message in both sessions');
    const list = await admin('GET', '/api/admin/broadcasts');
    expect(list.status).toBe(200);
    expect(list.json.broadcasts.map((b: { broadcast_id: string }) => b.broadcast_id)).toContain(
      res.json.broadcast_id,
    );
  });

  it('answered as the OpenAPI document says, every time', () => {
    expect(breaches).toEqual([]);
  });
});
