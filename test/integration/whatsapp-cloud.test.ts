import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeader } from '../../adapters/whatsapp/webhook/verify.ts';
import { findOpenSnapshotByKey } from '../../src/store/sessions.ts';
import type { Json } from '../fixtures/whatsapp/cloud-payloads.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { type GraphApi, graphError, graphSent, startGraphApi } from '../helpers/graph-api.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import { whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';

/** The start of a JPEG (SOI, JFIF APP0): what the photo's bytes are sniffed as. */
const JPEG = Buffer.from([
  0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01,
  0x00, 0x00, 0xff, 0xd9,
]);

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const APP_SECRET = 'test-app-secret';
const VERIFY_TOKEN = 'test-verify-token';
const ACCESS_TOKEN = 'EAAJB-test-token';
const DEFAULT_NUMBER = '106540352242922';
const MENU_NUMBER = '106540352242923';

describe('WhatsApp Cloud API through a whole hub', () => {
  let graph: GraphApi;
  let running: RunningHub;
  let serial = 0;

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    // The documented image message's media, on the platform: a media id it no longer knows would
    // be told to the person as a file that could not be received (whatsapp-files.test.ts).
    graph.addMedia('1003383421387256', JPEG, 'image/jpeg');
    const adapter = whatsAppCloudAdapter({
      graphUrl: graph.url,
      numbers: `${DEFAULT_NUMBER}:default,${MENU_NUMBER}:menu`,
      accessToken: ACCESS_TOKEN,
      appSecret: APP_SECRET,
      verifyToken: VERIFY_TOKEN,
    });
    running = await startTestHub({ configDir: FIXTURE_CONFIG }, { adapters: [adapter] });
  });
  afterAll(async () => {
    await running?.stop();
    await graph?.close();
  });

  /** A fresh sender for each test, so tests never share a session. */
  const person = () => `1650555${String(1000 + ++serial).padStart(4, '0')}`;

  const post = (payload: unknown, secret = APP_SECRET, headerOverride?: string) => {
    const raw = JSON.stringify(payload);
    return fetch(`${running.url}/webhooks/whatsapp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-hub-signature-256': headerOverride ?? signatureHeader(raw, secret),
      },
      body: raw,
    });
  };

  /** The documented payload, from `from`, sent now, with ids of its own. */
  const fresh = (
    payload: Parameters<typeof doc.variant>[0],
    from: string,
    extra: Parameters<typeof doc.variant>[1] = {},
  ) => doc.variant(payload, { from, suffix: from, timestamp: new Date(), ...extra });

  const texts = (waId: string) =>
    graph.to(waId).map((r) => (r.body.type === 'text' ? r.body.text.body : `[${r.body.type}]`));

  const query = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    (await running.hub.db.query(sql, params)).rows as T[];

  it('answers the verification handshake with the challenge, and refuses a wrong token', async () => {
    const ok = await fetch(
      `${running.url}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=${VERIFY_TOKEN}&hub.challenge=1158201444`,
    );
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('1158201444');
    const bad = await fetch(
      `${running.url}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444`,
    );
    expect(bad.status).toBe(403);
    expect((await bad.json()).error.code).toBe('forbidden');
  });

  it('a text message reaches the engine; the reply goes out from the business number that received it', async () => {
    const from = person();
    const res = await post(fresh(doc.textMessage, from));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', accepted: 1, duplicates: 0 });
    await until(
      () => texts(from),
      (t) => t.length >= 2,
    );
    expect(texts(from)).toEqual(['welcome', 'echo Does it come in another color? #1']);
    for (const r of graph.to(from)) {
      expect(r.phoneNumberId).toBe(DEFAULT_NUMBER);
      expect(r.version).toBe('v23.0');
      expect(r.authorization).toBe(`Bearer ${ACCESS_TOKEN}`);
      expect(r.body).toMatchObject({ messaging_product: 'whatsapp', recipient_type: 'individual', to: from });
    }
    const snap = await findOpenSnapshotByKey(running.hub.db, {
      bot: 'default',
      channel: 'whatsapp',
      nativeKey: `+${from}`,
    });
    expect(snap?.session.meta).toMatchObject({ name: 'Sheena Nelson' });
    // The person's message was marked read with a typing indicator while the bot worked.
    const typing = graph.requests.filter(
      (r) => r.body.status === 'read' && String(r.body.message_id).endsWith(from),
    );
    expect(typing[0]?.body).toMatchObject({ typing_indicator: { type: 'text' } });
    // Each reply records the wamid the Graph API gave it (written just after the send returns).
    const statusRows = () =>
      query<{ delivery_status: string; channel_message_id: string }>(
        `SELECT delivery_status, channel_message_id FROM messages WHERE session_id = $1 AND role = 'assistant' ORDER BY seq`,
        [snap!.session.id],
      );
    const rows = await until(statusRows, (r) => r.every((row) => row.delivery_status === 'sent'), 10_000);
    expect(rows.map((r) => r.delivery_status)).toEqual(['sent', 'sent']);
    expect(rows.every((r) => r.channel_message_id.startsWith('wamid.'))).toBe(true);
  });

  it('a wrong or missing signature is 401 and nothing is accepted', async () => {
    const from = person();
    const payload = fresh(doc.textMessage, from);
    for (const res of [
      await post(payload, 'not-the-secret'),
      await post(payload, APP_SECRET, ''),
      await post(payload, APP_SECRET, `sha256=${'0'.repeat(64)}`),
    ]) {
      expect(res.status).toBe(401);
      expect((await res.json()).error.code).toBe('invalid_signature');
    }
    const inbox = await query(`SELECT 1 FROM inbox WHERE envelope_id LIKE $1`, [`%${from}`]);
    expect(inbox).toHaveLength(0);
    // A good message afterwards is this person's first: nothing of the refused one was processed.
    await post(fresh(doc.buttonReply, from));
    await until(
      () => texts(from),
      (t) => t.length >= 2,
    );
    expect(texts(from)).toEqual(['welcome', 'echo cancel-button #1']);
  });

  it('the same payload delivered three times is answered once', async () => {
    const from = person();
    const payload = fresh(doc.textMessage, from);
    const results = await Promise.all([post(payload), post(payload), post(payload)]);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    const bodies = await Promise.all(results.map((r) => r.json()));
    expect(bodies.reduce((n, b) => n + b.accepted, 0)).toBe(1);
    expect(bodies.reduce((n, b) => n + b.duplicates, 0)).toBe(2);
    // A later message is answered after anything the copies could have caused (one session, in order).
    await post(fresh(doc.listReply, from));
    await until(
      () => texts(from),
      (t) => t.includes('echo priority_express #2'),
    );
    expect(texts(from)).toEqual([
      'welcome',
      'echo Does it come in another color? #1',
      'echo priority_express #2',
    ]);
  });

  it('interactive replies and images reach the bot as their value and caption, with the media id kept', async () => {
    const from = person();
    await post(fresh(doc.listReply, from));
    await until(
      () => texts(from),
      (t) => t.length >= 2,
    );
    await post(fresh(doc.imageMessage, from));
    await until(
      () => texts(from),
      (t) => t.length >= 3,
    );
    expect(texts(from)).toEqual(['welcome', 'echo priority_express #1', 'echo Taj Mahal #2']);
    const [image] = await query<{ payload: { attachments: unknown[] } }>(
      `SELECT payload FROM messages WHERE envelope_id = $1`,
      [`whatsapp:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=.${from}`],
    );
    expect(image!.payload.attachments).toEqual([
      expect.objectContaining({ type: 'image/jpeg', ref: '1003383421387256' }),
    ]);
  });

  it('a batch of several messages from several people in one POST: each is answered, in order', async () => {
    const a = person();
    const b = person();
    const batch = doc.batchOf(
      fresh(doc.textMessage, a),
      fresh(doc.imageMessage, b),
      fresh(doc.buttonReply, a),
      fresh(doc.reactionMessage, b),
    );
    const res = await post(batch);
    // The reaction is no message (WHATSAPP_REACTIONS=ignore, the default).
    expect(await res.json()).toMatchObject({ accepted: 3 });
    await until(
      () => [texts(a), texts(b)],
      ([x, y]) => x!.length >= 3 && y!.length >= 2,
    );
    expect(texts(a)).toEqual(['welcome', 'echo Does it come in another color? #1', 'echo cancel-button #2']);
    expect(texts(b)).toEqual(['welcome', 'echo Taj Mahal #1']);
  });

  it('a reaction, a removed reaction and an unsupported message run no turn; the next message is the first', async () => {
    const from = person();
    const res = await post(
      doc.batchOf(
        fresh(doc.reactionMessage, from),
        fresh(doc.reactionRemoved, from),
        fresh(doc.unsupportedMessage, from),
      ),
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', accepted: 0, duplicates: 0 });
    await post(fresh(doc.textMessage, from));
    await until(
      () => texts(from),
      (t) => t.length >= 2,
    );
    expect(texts(from)).toEqual(['welcome', 'echo Does it come in another color? #1']);
    const rows = await query<{ content: string }>(
      `SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id WHERE s.native_key = $1 AND m.role = 'user'`,
      [`+${from}`],
    );
    expect(rows.map((r) => r.content)).toEqual(['Does it come in another color?']);
  });

  it('the business number selects the bot; suggestions become buttons or a list; long text is split', async () => {
    const from = person();
    const say = (text: string, n: number) => {
      const p = doc.variant(doc.textMessage, {
        from,
        suffix: `${from}.${n}`,
        timestamp: new Date(),
        phoneNumberId: MENU_NUMBER,
      }) as Json;
      p.entry[0].changes[0].value.messages[0].text.body = text;
      return post(p);
    };
    await say('buttons', 1);
    await until(
      () => graph.to(from),
      (r) => r.length >= 1,
    );
    await say('list', 2);
    await until(
      () => graph.to(from),
      (r) => r.length >= 2,
    );
    await say('long', 3);
    await until(
      () => graph.to(from),
      (r) => r.length >= 4,
    );
    const sent = graph.to(from);
    expect(sent.every((r) => r.phoneNumberId === MENU_NUMBER)).toBe(true);
    expect(sent[0]!.body.interactive).toEqual({
      type: 'button',
      body: { text: 'Which size?' },
      action: {
        buttons: [
          { type: 'reply', reply: { id: 'size:s', title: 'Small' } },
          { type: 'reply', reply: { id: 'size:m', title: 'Medium' } },
          { type: 'reply', reply: { id: 'Large', title: 'Large' } },
        ],
      },
    });
    const list = sent[1]!.body.interactive;
    expect(list.type).toBe('list');
    expect(list.action.sections[0].rows.map((r: { id: string }) => r.id)).toEqual([
      'city:lis',
      'city:por',
      'city:bra',
      'city:coi',
      'city:fun',
    ]);
    const pieces = sent.slice(2).map((r) => r.body.text.body as string);
    expect(pieces).toHaveLength(2);
    expect(pieces.every((p) => p.length <= 4096)).toBe(true);
    expect(pieces.join('')).toBe(`${'word '.repeat(1500)}end`);
  });

  it('status updates move our messages to delivered and read, or failed with the platform error', async () => {
    const from = person();
    await post(fresh(doc.textMessage, from));
    const [welcome, echo] = await until(
      () =>
        query<{ channel_message_id: string | null; session_id: string; seq: number }>(
          `SELECT m.channel_message_id, m.session_id, m.seq FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE s.native_key = $1 AND m.role = 'assistant' ORDER BY m.seq`,
          [`+${from}`],
        ),
      (rows) => rows.length === 2 && rows.every((r) => r.channel_message_id !== null),
    );
    const statusFor = (template: typeof doc.statusDelivered, wamid: string | null, status?: string) => {
      const p = structuredClone(template) as Json;
      p.entry[0].changes[0].value.statuses[0].id = wamid;
      if (status) p.entry[0].changes[0].value.statuses[0].status = status;
      return p;
    };
    expect((await post(statusFor(doc.statusDelivered, welcome!.channel_message_id))).status).toBe(200);
    await post(statusFor(doc.statusSent, welcome!.channel_message_id, 'read'));
    await post(statusFor(doc.statusSent, welcome!.channel_message_id)); // late, must not move it back
    await post(statusFor(doc.statusFailed, echo!.channel_message_id));
    const rows = await query<{ delivery_status: string; delivery_error: string | null }>(
      `SELECT delivery_status, delivery_error FROM messages WHERE session_id = $1 AND role = 'assistant' ORDER BY seq`,
      [welcome!.session_id],
    );
    expect(rows[0]).toEqual({ delivery_status: 'read', delivery_error: null });
    expect(rows[1]!.delivery_status).toBe('failed');
    expect(rows[1]!.delivery_error).toMatch(/^131049 This message was not delivered/);
  });

  it('a status that overtakes the record of the send is applied all the same', async () => {
    const from = person();
    const wamid = `wamid.early-${from}`;
    graph.script((r) => r.body.to === from && r.body.text?.body === 'welcome', graphSent(from, wamid));
    // The second reply is slow, so the batch (and the record of both wamids) is still in flight.
    graph.script((r) => r.body.to === from && r.body.type === 'text', { ...graphSent(from), delayMs: 1_000 });
    await post(fresh(doc.textMessage, from));
    await until(
      () => graph.to(from),
      (r) => r.length >= 2,
    );
    const status = structuredClone(doc.statusDelivered) as Json;
    status.entry[0].changes[0].value.statuses[0].id = wamid;
    expect((await post(status)).status).toBe(200);
    const row = await until(
      () =>
        query<{ delivery_status: string }>(
          `SELECT delivery_status FROM messages WHERE channel_message_id = $1`,
          [wamid],
        ),
      (r) => r[0]?.delivery_status === 'delivered',
      15_000,
    );
    expect(row).toEqual([{ delivery_status: 'delivered' }]);
  });

  it('outside the 24-hour window a reply fails at once with a clear error, without calling the platform', async () => {
    const from = person();
    await post(fresh(doc.textMessage, from, { timestamp: new Date(Date.now() - 25 * 3_600_000) }));
    const rows = await until(
      () =>
        query<{ delivery_status: string; delivery_error: string; delivery_attempts: number }>(
          `SELECT delivery_status, delivery_error, delivery_attempts FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE s.native_key = $1 AND m.role = 'assistant'`,
          [`+${from}`],
        ),
      (r) => r.length === 2 && r.every((m) => m.delivery_status === 'failed'),
    );
    expect(rows[0]!.delivery_error).toMatch(/outside WhatsApp's 24-hour customer service window/);
    expect(rows[0]!.delivery_attempts).toBe(1);
    expect(graph.to(from)).toEqual([]);
  });

  it("the platform's 131047 (window closed) fails the reply without retrying", async () => {
    const from = person();
    graph.script(
      (r) => r.body.to === from && r.body.type === 'text',
      graphError(
        400,
        131047,
        '(#131047) Re-engagement message',
        'Message failed to send because more than 24 hours have passed since the customer last replied to this number.',
      ),
    );
    await post(fresh(doc.textMessage, from));
    const rows = await until(
      () =>
        query<{ delivery_status: string; delivery_error: string; delivery_attempts: number }>(
          `SELECT delivery_status, delivery_error, delivery_attempts FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE s.native_key = $1 AND m.role = 'assistant' ORDER BY seq`,
          [`+${from}`],
        ),
      (r) => r.length === 2 && r.every((m) => m.delivery_status === 'failed'),
    );
    expect(rows[0]!.delivery_error).toMatch(/24-hour customer service window \(error 131047\)/);
    expect(rows.map((r) => r.delivery_attempts)).toEqual([1, 1]);
    expect(graph.to(from)).toHaveLength(1);
  });

  it('rate limits (130429, HTTP 429 with Retry-After) are retried until the reply goes out, once', async () => {
    const from = person();
    const isText = (r: { body: Record<string, Json> }) => r.body.to === from && r.body.type === 'text';
    graph.script(
      isText,
      graphError(400, 130429, '(#130429) Rate limit hit', 'Cloud API message throughput has been reached.'),
    );
    graph.script(isText, {
      ...graphError(429, 80007, '(#80007) Rate limit issues'),
      headers: { 'retry-after': '1' },
    });
    await post(fresh(doc.textMessage, from));
    await until(
      () => texts(from),
      (t) => t.includes('echo Does it come in another color? #1'),
      30_000,
    );
    // Two refused attempts of the first reply, then both replies, each delivered once.
    expect(texts(from)).toEqual(['welcome', 'welcome', 'welcome', 'echo Does it come in another color? #1']);
    await until(
      () =>
        query<{ delivery_status: string }>(
          `SELECT delivery_status FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE s.native_key = $1 AND m.role = 'assistant' ORDER BY seq`,
          [`+${from}`],
        ),
      (r) => r.length === 2 && r.every((m) => m.delivery_status === 'sent'),
    );
  });
});
