import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTransient } from '../../src/errors.ts';
import { OUTBOUND_SEND_JOB, OutboundService, sendJobId } from '../../src/outbound/service.ts';
import type { ChannelAdapter } from '../../src/ports.ts';
import type { JobHandler } from '../../src/scheduler/scheduler.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { adminClient, eventually } from '../helpers/admin.ts';
import { dbFailingOnce, failOnce } from '../helpers/away.ts';
import { silentLogger } from '../helpers/database.ts';
import { type GraphApi, graphError, startGraphApi } from '../helpers/graph-api.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';
import { postWhatsAppWebhook, whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const APP_SECRET = 'test-app-secret';
const ACCESS_TOKEN = 'EAAJB-test-token';
const NUMBER = '106540352242922';
const ADMIN_TOKEN = 'outbound-test-admin-token-0123456789abcdef';

describe('POST /api/admin/messages: the bot speaks first (WhatsApp Cloud, API sessions)', () => {
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
      { configDir: FIXTURE_CONFIG, adminToken: ADMIN_TOKEN, schedulerPollMs: 100 },
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

  const person = () => `1650777${String(1000 + ++serial).padStart(4, '0')}`;
  const queuedCount = async () =>
    Number((await running.hub.db.query('SELECT count(*) AS n FROM outbound_messages')).rows[0]!.n);
  const status = async (id: string) => (await admin('GET', `/api/admin/messages/${id}`)).json;
  const settled = (id: string, wanted: string) =>
    eventually(async () => {
      const s = await status(id);
      return s.status === wanted ? s : undefined;
    }, `message ${id} ${wanted}`);

  const write = async (from: string) => {
    const res = await postWhatsAppWebhook(
      running.url,
      doc.variant(doc.textMessage, { from, suffix: from, timestamp: new Date() }),
      APP_SECRET,
    );
    expect(res.status).toBe(200);
  };
  /** `waId` writes once; resolves with the user id the hub recorded for them. */
  const writeAndFindUser = async (waId: string) => {
    await write(waId);
    return eventually(async () => {
      const { rows } = await running.hub.db.query(
        `SELECT user_id FROM user_identities WHERE channel = 'whatsapp' AND native_id = $1`,
        [`+${waId}`],
      );
      return rows[0]?.user_id as string | undefined;
    }, 'the user record');
  };

  it('refuses free text to a number that never wrote (422 template_required) and queues nothing', async () => {
    const before = await queuedCount();
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: `+${person()}`,
      text: 'Your order is ready',
    });
    expect(res.status).toBe(422);
    expect(res.json.error.code).toBe('template_required');
    expect(await queuedCount()).toBe(before);
  });

  it('sends a template as a Cloud API template message, recorded in a new session as an assistant reply', async () => {
    const waId = person();
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: `+${waId}`,
      template: { name: 'order_ready', language: 'en_US', parameters: ['Sheena', 'A-1043'] },
    });
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ status: 'queued', session_id: expect.any(String) });
    await settled(res.json.message_id, 'sent');
    const sent = graph.to(waId);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.phoneNumberId).toBe(NUMBER);
    expect(sent[0]!.body).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: waId,
      type: 'template',
      template: {
        name: 'order_ready',
        language: { code: 'en_US' },
        components: [
          {
            type: 'body',
            parameters: [
              { type: 'text', text: 'Sheena' },
              { type: 'text', text: 'A-1043' },
            ],
          },
        ],
      },
    });
    const rows = await running.hub.db.query(
      `SELECT s.native_key, m.role FROM messages m JOIN sessions s ON s.id = m.session_id WHERE m.envelope_id = $1`,
      [`outbound:operator:${res.json.message_id}`],
    );
    expect(rows.rows).toEqual([{ native_key: `+${waId}`, role: 'assistant' }]);
    // The person answers within the same session: a message the bot wrote first opened it.
    await write(waId);
    await eventually(async () => graph.to(waId).length >= 2, 'the bot answers the person');
    const sessions = await running.hub.db.query(`SELECT id FROM sessions WHERE native_key = $1`, [
      `+${waId}`,
    ]);
    expect(sessions.rows.map((r) => r.id)).toEqual([res.json.session_id]);
  });

  it('passes template components through as the Cloud API defines them', async () => {
    const waId = person();
    const components = [
      { type: 'header', parameters: [{ type: 'image', image: { link: 'https://example.com/a.png' } }] },
      {
        type: 'button',
        sub_type: 'quick_reply',
        index: '0',
        parameters: [{ type: 'payload', payload: 'YES' }],
      },
    ];
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      template: { name: 'reminder', language: 'en', components },
    });
    expect(res.status).toBe(202);
    await settled(res.json.message_id, 'sent');
    expect(graph.to(waId)[0]!.body.template).toEqual({
      name: 'reminder',
      language: { code: 'en' },
      components,
    });
  });

  it('sends free text once the person has written (inside the 24-hour window)', async () => {
    const waId = person();
    await write(waId);
    await eventually(async () => graph.to(waId).length >= 1, 'the greeting');
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: `+${waId}`,
      text: 'Your order is ready',
    });
    expect(res.status).toBe(202);
    await settled(res.json.message_id, 'sent');
    const texts = graph
      .to(waId)
      .map((r) => (r.body.type === 'text' ? (r.body.text as { body: string }).body : ''));
    expect(texts).toContain('Your order is ready');
  });

  it('marks a template failed with the reason when the Graph API answers 131047', async () => {
    const waId = person();
    graph.script(
      (r) => r.body.to === waId,
      graphError(
        400,
        131047,
        'Re-engagement message',
        'Message failed to send because more than 24 hours have passed since the customer last replied to this number.',
      ),
    );
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      template: { name: 'order_ready', language: 'en' },
    });
    expect(res.status).toBe(202);
    const failed = await settled(res.json.message_id, 'failed');
    expect(failed.error).toMatch(/131047/);
  });

  it('replays an idempotency key with the first answer (200), and refuses it with another body (409)', async () => {
    const body = {
      bot: 'default',
      channel: 'whatsapp',
      to: person(),
      template: { name: 'order_ready', language: 'en' },
      idempotency_key: `order-${serial}`,
    };
    const first = await admin('POST', '/api/admin/messages', body);
    expect(first.status).toBe(202);
    const again = await admin('POST', '/api/admin/messages', body);
    expect(again.status).toBe(200);
    expect(again.json).toEqual(first.json);
    const other = await admin('POST', '/api/admin/messages', {
      ...body,
      template: { name: 'other', language: 'en' },
    });
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe('idempotency_conflict');
    await settled(first.json.message_id, 'sent');
    expect(graph.to(body.to)).toHaveLength(1);
  });

  const templatesTo = (waId: string, name: string) =>
    graph
      .to(waId)
      .filter((r) => r.body.type === 'template' && (r.body.template as { name: string }).name === name);

  it('a send whose queueing fails answers 503; its retry with the idempotency key sends it, once', async () => {
    const waId = person();
    const body = {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      template: { name: 'retried_now', language: 'en' },
      idempotency_key: `queue-away-${serial}`,
    };
    // The queue is away for the first request's hand-over (recorded, never queued).
    const away = failOnce(running.hub.ingress, 'accept', (e) => e.id.startsWith('outbound:operator:'));
    try {
      const first = await admin('POST', '/api/admin/messages', body);
      expect(first.status).toBe(503);
      expect(first.json.error.code).toBe('unavailable');
      expect(away.failures).toBe(1);
    } finally {
      away.restore();
    }
    const again = await admin('POST', '/api/admin/messages', body);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ status: 'queued', session_id: expect.any(String) });
    await settled(again.json.message_id, 'sent');
    // A further retry answers the same and sends nothing more.
    const third = await admin('POST', '/api/admin/messages', body);
    expect(third.status).toBe(200);
    expect(third.json).toEqual(again.json);
    await settled(again.json.message_id, 'sent');
    expect(templatesTo(waId, 'retried_now')).toHaveLength(1);
  });

  it('a scheduled send whose scheduling fails answers 503; its retry with the idempotency key sends it at send_at', async () => {
    const waId = person();
    const body = {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      template: { name: 'retried_later', language: 'en' },
      send_at: new Date(Date.now() + 1_500).toISOString(),
      idempotency_key: `scheduler-away-${serial}`,
    };
    const away = failOnce(running.hub.scheduler, 'schedule', (name) => name === OUTBOUND_SEND_JOB);
    try {
      const first = await admin('POST', '/api/admin/messages', body);
      expect(first.status).toBe(503);
      expect(away.failures).toBe(1);
    } finally {
      away.restore();
    }
    const again = await admin('POST', '/api/admin/messages', body);
    expect(again.status).toBe(200);
    expect(again.json.status).toBe('scheduled');
    await settled(again.json.message_id, 'sent');
    expect(templatesTo(waId, 'retried_later')).toHaveLength(1);
  });

  it('a send without an idempotency key whose queueing fails answers 503 and is never sent (failed)', async () => {
    const waId = person();
    const away = failOnce(running.hub.ingress, 'accept', (e) => e.id.startsWith('outbound:operator:'));
    try {
      const res = await admin('POST', '/api/admin/messages', {
        bot: 'default',
        channel: 'whatsapp',
        to: waId,
        template: { name: 'not_accepted', language: 'en' },
      });
      expect(res.status).toBe(503);
    } finally {
      away.restore();
    }
    const { rows } = await running.hub.db.query(
      'SELECT id, status, error FROM outbound_messages WHERE native_key = $1',
      [`+${waId}`],
    );
    expect(rows).toEqual([
      {
        id: expect.any(String),
        status: 'failed',
        error: 'not accepted: the request failed before the message was queued (503)',
      },
    ]);
    expect(await status(rows[0]!.id as string)).toMatchObject({ status: 'failed' });
    expect(graph.to(waId)).toHaveLength(0);
  });

  it('a scheduled send that finds the database away when it comes due fails as such, runs again, and is sent', async () => {
    const waId = person();
    const { db, bots, ingress, scheduler } = running.hub;
    // A second worker's outbound service whose first read of the message fails.
    const failing = dbFailingOnce(db, 'SELECT * FROM outbound_messages WHERE id');
    const handlers = new Map<string, JobHandler>();
    const worker = new OutboundService({
      db: failing.db,
      bots,
      ingress,
      scheduler: { ...scheduler, handle: (name: string, h: JobHandler) => void handlers.set(name, h) },
      logger: silentLogger,
      adapters: new Map([[whatsapp.channel, whatsapp]]),
    });
    worker.register();
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      template: { name: 'due_in_outage', language: 'en' },
      send_at: new Date(Date.now() + 60_000).toISOString(),
    });
    expect(res.status).toBe(202);
    // The job comes due on that worker while PostgreSQL is away: the run fails as a dependency
    // being away, which the scheduler does not count among the job's starts (scheduler-attempts
    // tests that), and it runs the job again: as attempt 1 once more.
    const job = { id: sendJobId(res.json.message_id), name: OUTBOUND_SEND_JOB, attempt: 1 };
    const run = () => handlers.get(OUTBOUND_SEND_JOB)!({ messageId: res.json.message_id }, job);
    const away = await run().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isTransient(away)).toBe(true);
    expect(failing.failures).toBe(1);
    await run();
    await settled(res.json.message_id, 'sent');
    expect(templatesTo(waId, 'due_in_outage')).toHaveLength(1);
  });

  it('answers bad input with a clear 4xx and queues nothing', async () => {
    const before = await queuedCount();
    const base = {
      bot: 'default',
      channel: 'whatsapp',
      to: person(),
      template: { name: 'x', language: 'en' },
    };
    const cases: [unknown, number, string][] = [
      [{ ...base, bot: 'nobody' }, 404, 'unknown_bot'],
      [{ ...base, channel: 'pager' }, 400, 'unknown_channel'],
      [{ ...base, to: 'not a phone' }, 400, 'invalid_recipient'],
      [{ ...base, send_at: new Date(Date.now() - 60_000).toISOString() }, 400, 'invalid_send_at'],
      [{ ...base, text: 'both' }, 400, 'invalid_request'],
      [{ bot: 'default', channel: 'whatsapp', to: base.to }, 400, 'invalid_request'],
      [{ bot: 'default', to: base.to, text: 'hi' }, 400, 'invalid_request'],
      [{ ...base, to: 'user:00000000-0000-4000-8000-000000000000' }, 404, 'unknown_recipient'],
    ];
    for (const [body, code, error] of cases) {
      const res = await admin('POST', '/api/admin/messages', body);
      expect({ body, status: res.status, code: res.json?.error?.code }).toEqual({
        body,
        status: code,
        code: error,
      });
    }
    const anonymous = await adminClient(running.url, undefined)('POST', '/api/admin/messages', base);
    expect(anonymous.status).toBe(401);
    expect(await queuedCount()).toBe(before);
  });

  it('writes into an open API session by its id; an unknown one is 404; templates there are 422 not_supported', async () => {
    const client = apiClient(running.url);
    const session = await client.createSession('default');
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'api',
      to: session.session_id,
      text: 'A note from the shop',
    });
    expect(res.status).toBe(202);
    expect(res.json.session_id).toBe(session.session_id);
    await eventually(async () => {
      const history = await fetch(`${running.url}/api/session/messages`, {
        headers: { authorization: `Bearer ${session.token}` },
      }).then((r) => r.json());
      return (history.messages as { role: string; text?: string; content?: string }[]).some(
        (m) => m.role === 'assistant' && (m.text ?? m.content) === 'A note from the shop',
      );
    }, 'the message in the session history');
    const unknown = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'api',
      to: '6f1c1f9e-7d43-4e43-9a53-4a3f8f0e2b11',
      text: 'hello',
    });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe('unknown_session');
    const template = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'api',
      to: session.session_id,
      template: { name: 'x', language: 'en' },
    });
    expect(template.status).toBe(422);
    expect(template.json.error.code).toBe('not_supported');
  });

  it('reaches a person by user:<id> on their most recent channel', async () => {
    const waId = person();
    const user = await writeAndFindUser(waId);
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      to: `user:${user}`,
      text: 'Hi again',
    });
    expect(res.status).toBe(202);
    await settled(res.json.message_id, 'sent');
    expect(
      graph.to(waId).some((r) => (r.body.text as { body?: string } | undefined)?.body === 'Hi again'),
    ).toBe(true);
  });

  it('STOP opts a person out (confirmed, no bot turn) until START; operator messages are refused meanwhile', async () => {
    const waId = person();
    const say = async (text: string) => {
      const payload = doc.variant(doc.textMessage, {
        from: waId,
        suffix: `${waId}-${text}`,
        timestamp: new Date(),
      });
      (
        payload as unknown as {
          entry: { changes: { value: { messages: { text: { body: string } }[] } }[] }[];
        }
      ).entry[0]!.changes[0]!.value.messages[0]!.text.body = text;
      const res = await postWhatsAppWebhook(running.url, payload, APP_SECRET);
      expect(res.status).toBe(200);
    };
    const bodies = () => graph.to(waId).map((r) => (r.body.text as { body?: string } | undefined)?.body);
    await say('stop');
    await eventually(async () => bodies().length >= 1, 'the confirmation');
    // The session's greeting may come first; the stop word itself gets no echo from the bot.
    await eventually(
      async () =>
        bodies().includes("You won't get messages from us here any more. Send START to get them again."),
      'the stop confirmation',
    );
    expect(bodies().some((b) => b?.startsWith('echo'))).toBe(false);
    const refused = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      text: 'Sale!',
    });
    expect(refused.status).toBe(409);
    expect(refused.json.error.code).toBe('opted_out');
    await say('START');
    await eventually(
      async () => bodies().includes('You will get our messages here again.'),
      'the start confirmation',
    );
    const sent = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      text: 'Sale!',
    });
    expect(sent.status).toBe(202);
    await settled(sent.json.message_id, 'sent');
    expect(bodies().some((b) => b?.startsWith('echo'))).toBe(false);
  });

  it('does not send a scheduled message to a person who opted out after it was scheduled (failed, opted_out)', async () => {
    const waId = person();
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      template: { name: 'late_reminder', language: 'en' },
      send_at: new Date(Date.now() + 1_500).toISOString(),
    });
    expect(res.status).toBe(202);
    const stop = await postWhatsAppWebhook(
      running.url,
      (() => {
        const payload = doc.variant(doc.textMessage, {
          from: waId,
          suffix: `${waId}-stop`,
          timestamp: new Date(),
        });
        (
          payload as unknown as {
            entry: { changes: { value: { messages: { text: { body: string } }[] } }[] }[];
          }
        ).entry[0]!.changes[0]!.value.messages[0]!.text.body = 'STOP';
        return payload;
      })(),
      APP_SECRET,
    );
    expect(stop.status).toBe(200);
    await eventually(async () => {
      const { rows } = await running.hub.db.query('SELECT 1 FROM outbound_opt_outs WHERE native_id = $1', [
        `+${waId}`,
      ]);
      return rows.length > 0;
    }, 'the opt-out recorded');
    const failed = await settled(res.json.message_id, 'failed');
    expect(failed.error).toBe('opted_out');
    expect(graph.to(waId).filter((r) => r.body.type === 'template')).toHaveLength(0);
  });

  it('erasing a person removes the messages sent or scheduled to them, and a scheduled one never goes', async () => {
    const waId = person();
    const user = await writeAndFindUser(waId);
    const sent = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      text: 'Your order is ready',
    });
    await settled(sent.json.message_id, 'sent');
    const later = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      template: { name: 'erased_reminder', language: 'en' },
      send_at: new Date(Date.now() + 1_500).toISOString(),
    });
    expect(later.status).toBe(202);
    const erased = await admin('DELETE', `/api/users/${user}`);
    expect(erased.status).toBe(200);
    for (const id of [sent.json.message_id, later.json.message_id])
      expect((await admin('GET', `/api/admin/messages/${id}`)).status).toBe(404);
    // The scheduled job comes due and finds nothing to send.
    await eventually(async () => {
      const { rows } = await running.hub.db.query('SELECT 1 FROM scheduled_jobs WHERE id = $1', [
        `outbound:${later.json.message_id}`,
      ]);
      return rows.length === 0;
    }, 'the scheduled job run');
    expect(graph.to(waId).filter((r) => r.body.type === 'template')).toHaveLength(0);
  });

  it('sends at send_at through the scheduler; DELETE cancels one not yet sent (204) and refuses one sent (409)', async () => {
    const waId = person();
    const at = new Date(Date.now() + 1_500).toISOString();
    const template = { name: 'reminder', language: 'en' };
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      template,
      send_at: at,
    });
    expect(res.status).toBe(202);
    expect(res.json.status).toBe('scheduled');
    expect((await status(res.json.message_id)).status).toBe('scheduled');
    const cancelled = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'whatsapp',
      to: waId,
      template: { name: 'never', language: 'en' },
      send_at: at,
    });
    expect((await admin('DELETE', `/api/admin/messages/${cancelled.json.message_id}`)).status).toBe(204);
    expect((await status(cancelled.json.message_id)).status).toBe('cancelled');
    await settled(res.json.message_id, 'sent');
    expect(graph.to(waId).map((r) => (r.body.template as { name: string }).name)).toEqual(['reminder']);
    const late = await admin('DELETE', `/api/admin/messages/${res.json.message_id}`);
    expect(late.status).toBe(409);
    expect(late.json.error.code).toBe('already_sent');
    expect((await admin('GET', '/api/admin/messages/6f1c1f9e-7d43-4e43-9a53-4a3f8f0e2b11')).status).toBe(404);
  });

  it('answered as the OpenAPI document says, every time', () => {
    expect(breaches).toEqual([]);
  });
});
