import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebConfig } from '../../adapters/whatsapp/config.ts';
import { createWhatsAppAdapter, loadWhatsAppConfig } from '../../adapters/whatsapp/index.ts';
import { RecipientPacer } from '../../adapters/whatsapp/pacing.ts';
import { WebSender } from '../../adapters/whatsapp/web/sender.ts';
import { WebSession } from '../../adapters/whatsapp/web/session.ts';
import { createRedisBus } from '../../src/bus/redis-bus.ts';
import { SendError } from '../../src/delivery/sender.ts';
import type { SessionRecord } from '../../src/store/records.ts';
import { findOpenSnapshotByKey } from '../../src/store/sessions.ts';
import { silentLogger, tempDir } from '../helpers/database.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';
import { LINKED, LocalWebClient } from '../helpers/whatsapp-web-client.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const ADMIN_TOKEN = 'admin-test-token-at-least-32-characters';

describe('whatsapp-web.js through a whole hub, against an injected client', () => {
  let running: RunningHub;
  const clients: LocalWebClient[] = [];
  let linked = false;
  const terminal = new PassThrough();
  let drawn = '';
  terminal.on('data', (chunk: Buffer) => {
    drawn += chunk.toString();
  });

  beforeAll(async () => {
    const dataDir = await tempDir('sbt-wweb-');
    const config = loadWhatsAppConfig({ WHATSAPP_WEB: 'on' }, dataDir)!;
    const adapter = createWhatsAppAdapter({
      ...config,
      terminal,
      webClientFactory: () => {
        const client = new LocalWebClient(linked);
        clients.push(client);
        return client;
      },
    });
    running = await startTestHub(
      { configDir: FIXTURE_CONFIG, adminToken: ADMIN_TOKEN },
      { adapters: [adapter] },
    );
  });
  afterAll(async () => {
    await running?.stop();
  });

  const admin = (route: string, token = ADMIN_TOKEN) =>
    fetch(`${running.url}${route}`, { headers: { authorization: `Bearer ${token}` } });

  it('shows the pairing QR code to the operator (terminal and HTTP, behind the admin token)', async () => {
    await until(
      () => clients.length,
      (n) => n >= 1,
    );
    const status = await until(
      async () => (await admin('/api/admin/whatsapp/web')).json(),
      (s) => s.state === 'qr',
    );
    expect(status).toMatchObject({
      state: 'qr',
      qr: '2@local-test-pairing-code,abc,def',
      qr_svg: '/api/admin/whatsapp/web/qr.svg',
    });
    const svg = await admin('/api/admin/whatsapp/web/qr.svg');
    expect(svg.status).toBe(200);
    expect(svg.headers.get('content-type')).toBe('image/svg+xml');
    expect(await svg.text()).toMatch(/^<svg /);
    expect(drawn).toMatch(/scan this with WhatsApp > Linked devices\n.*[▀▄█]/s);
    expect((await admin('/api/admin/whatsapp/web', 'wrong')).status).toBe(401);
    expect((await fetch(`${running.url}/api/admin/whatsapp/web/qr.svg`)).status).toBe(401);
  });

  it('once linked: a message in, the replies out through client.sendMessage', async () => {
    // The operator scans: the library reports the session authenticated and ready.
    const client = clients[0]!;
    client.emit('authenticated');
    client.emit('ready');
    await until(
      async () => (await admin('/api/admin/whatsapp/web')).json(),
      (s) => s.state === 'ready',
    );
    expect((await admin('/api/admin/whatsapp/web/qr.svg')).status).toBe(404);

    client.receive({ from: '5511999999999@c.us', body: 'oi', _data: { notifyName: 'Ana' } });
    await until(
      () => client.sent.length,
      (n) => n >= 2,
    );
    expect(client.sent.map((s) => [s.chatId, s.text])).toEqual([
      ['5511999999999@c.us', 'welcome'],
      ['5511999999999@c.us', 'echo oi #1'],
    ]);
    const snap = await findOpenSnapshotByKey(running.hub.db, {
      bot: 'default',
      channel: 'whatsapp',
      nativeKey: '+5511999999999',
    });
    expect(snap?.session.meta).toMatchObject({ name: 'Ana' });
    const rows = await until(
      async () =>
        (
          await running.hub.db.query<{ delivery_status: string; channel_message_id: string }>(
            `SELECT delivery_status, channel_message_id FROM messages WHERE session_id = $1 AND role = 'assistant' ORDER BY seq`,
            [snap!.session.id],
          )
        ).rows,
      (r) => r.every((m) => m.delivery_status === 'sent'),
    );
    expect(rows.map((r) => r.channel_message_id)).toEqual(client.sent.map((s) => s.id));

    // The library's delivery receipts move the reply on.
    client.emit('message_ack', { id: { _serialized: client.sent[1]!.id } }, 3);
    await until(
      async () =>
        (
          await running.hub.db.query<{ delivery_status: string }>(
            'SELECT delivery_status FROM messages WHERE channel_message_id = $1',
            [client.sent[1]!.id],
          )
        ).rows[0]?.delivery_status,
      (s) => s === 'read',
    );
  });

  it('system notices the library emits as messages (security code, first contact, missed call) run no turn', async () => {
    const client = clients[0]!;
    const chat = '5511955555555@c.us';
    // What a new contact's first minute looks like: the notices come before (or instead of) a word.
    for (const type of ['notification_template', 'e2e_notification', 'call_log', 'notification'])
      client.receive({ from: chat, body: '', type });
    client.receive({ from: chat, body: 'hello' });
    await until(
      () => client.sent.filter((s) => s.chatId === chat).length,
      (n) => n >= 2,
    );
    expect(client.sent.filter((s) => s.chatId === chat).map((s) => s.text)).toEqual([
      'welcome',
      'echo hello #1',
    ]);
    const { rows } = await running.hub.db.query(
      `SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id WHERE s.native_key = '+5511955555555' AND m.role = 'user'`,
    );
    expect(rows.map((r) => r.content)).toEqual(['hello']);
  });

  it('group messages and status broadcasts are ignored', async () => {
    const client = clients[0]!;
    const before = client.sent.length;
    client.receive({ from: '120363025246125486@g.us', author: '5511977777777@c.us', body: 'hi group' });
    client.receive({
      from: 'status@broadcast',
      author: '5511977777777@c.us',
      body: 'my status',
      isStatus: true,
    });
    // Then the same person writes directly: that is answered, and nothing before it was.
    client.receive({ from: '5511977777777@c.us', body: 'direct' });
    await until(
      () => client.sent.length,
      (n) => n >= before + 2,
    );
    expect(client.sent.slice(before).map((s) => [s.chatId, s.text])).toEqual([
      ['5511977777777@c.us', 'welcome'],
      ['5511977777777@c.us', 'echo direct #1'],
    ]);
    const { rows } = await running.hub.db.query(
      `SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id WHERE s.native_key LIKE '+5511977777777%' AND m.role = 'user'`,
    );
    expect(rows.map((r) => r.content)).toEqual(['direct']);
  });

  it('a @lid chat is keyed by the phone number the library resolves, and answered in that chat', async () => {
    const client = clients[0]!;
    const before = client.sent.length;
    client.receive({ from: '208751234567890@lid', body: 'via lid' });
    await until(
      () => client.sent.length,
      (n) => n >= before + 2,
    );
    expect(client.sent.slice(before).map((s) => s.chatId)).toEqual([
      '208751234567890@lid',
      '208751234567890@lid',
    ]);
    expect(
      await findOpenSnapshotByKey(running.hub.db, {
        bot: 'default',
        channel: 'whatsapp',
        nativeKey: '+5511966666666',
      }),
    ).toBeDefined();
  });

  it('after a disconnect the adapter reconnects with a new client, and the conversation goes on', async () => {
    linked = true;
    const first = clients[0]!;
    first.emit('disconnected', 'NAVIGATION');
    await until(
      () => clients.length,
      (n) => n >= 2,
      15_000,
    );
    expect(first.destroyed).toBe(true);
    const second = clients[1]!;
    await until(
      async () => (await admin('/api/admin/whatsapp/web')).json(),
      (s) => s.state === 'ready',
    );
    second.receive({ from: '5511999999999@c.us', body: 'back again' });
    await until(
      () => second.sent.length,
      (n) => n >= 1,
    );
    expect(second.sent.map((s) => [s.chatId, s.text])).toEqual([
      ['5511999999999@c.us', 'echo back again #2'],
    ]);
    // Events from the old client no longer count.
    first.receive({ from: '5511999999999@c.us', body: 'ghost' });
    second.receive({ from: '5511999999999@c.us', body: 'still here' });
    await until(
      () => second.sent.length,
      (n) => n >= 2,
    );
    expect(second.sent[1]!.text).toBe('echo still here #3');
  });
});

describe('whatsapp-web.js groups with WHATSAPP_WEB_GROUPS=accept, through a whole hub', () => {
  let running: RunningHub;
  const clients: LocalWebClient[] = [];

  beforeAll(async () => {
    const dataDir = await tempDir('sbt-wweb-groups-');
    const config = loadWhatsAppConfig({ WHATSAPP_WEB: 'on', WHATSAPP_WEB_GROUPS: 'accept' }, dataDir)!;
    const adapter = createWhatsAppAdapter({
      ...config,
      terminal: new PassThrough(),
      webClientFactory: () => {
        const client = new LocalWebClient(true);
        clients.push(client);
        return client;
      },
    });
    running = await startTestHub({ configDir: FIXTURE_CONFIG }, { adapters: [adapter] });
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('answers a mention of the linked account (its @lid) and a reply to it; the rest of the group is left alone', async () => {
    const client = await until(
      () => clients[0],
      (c) => c !== undefined,
    );
    const group = '120363000000000001@g.us';
    const author = '5511944444444@c.us';
    const said = () => client!.sent.filter((s) => s.chatId === group).map((s) => s.text);
    client!.receive({ from: group, author, body: 'hello everyone' });
    client!.receive({ from: group, author, body: '', type: 'e2e_notification' });
    client!.receive({
      from: group,
      author,
      body: `@${LINKED.lid.split('@')[0]} hi`,
      mentionedIds: [{ _serialized: LINKED.lid }],
    });
    await until(said, (s) => s.length >= 2);
    client!.receive({ from: group, author, body: 'and another thing' });
    client!.receive({
      from: group,
      author,
      body: 'thanks',
      _data: { quotedParticipant: { _serialized: LINKED.pn } },
    });
    await until(said, (s) => s.length >= 3);
    expect(said()).toEqual(['welcome', 'echo hi #1', 'echo thanks #2']);
    const { rows } = await running.hub.db.query(
      `SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id WHERE s.native_key = $1 AND m.role = 'user' ORDER BY m.seq`,
      [`+5511944444444#${group}`],
    );
    expect(rows.map((r) => r.content)).toEqual(['hi', 'thanks']);
  });
});

describe('a worker sends through the gateway that holds the linked session (Redis pub/sub)', () => {
  const redis = testRedisPrefix();
  const connections: Redis[] = [];
  const connect = () => {
    const c = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    connections.push(c);
    return c;
  };
  const bus = () => createRedisBus(connect(), connect(), { prefix: redis.prefix, logger: silentLogger });
  const session = { id: 'b1d3c5e7-0000-4000-8000-000000000001', channel: 'whatsapp' } as SessionRecord;
  const webConfig: WebConfig = {
    mode: 'on',
    groups: 'ignore',
    chromiumPath: '/usr/bin/chromium',
    clientId: 'test',
    authDir: '/tmp/unused',
    sendTimeoutMs: 2_000,
  };

  afterAll(async () => {
    for (const c of connections) c.disconnect();
    await redis.cleanup();
  });

  it('sends once per reply even when the request is retried, and fails retryably without a gateway', async () => {
    const gatewayBus = bus();
    const workerBus = bus();
    const client = new LocalWebClient(true);
    const gateway = new WebSession({
      config: webConfig,
      factory: () => client,
      bus: gatewayBus,
      ingress: { accept: async () => ({ status: 'accepted', envelopeId: 'x' }) },
      logger: silentLogger,
      bot: 'default',
      applyStatus: async () => undefined,
    });
    await gateway.start();
    await until(
      () => gateway.status.state,
      (s) => s === 'ready',
    );

    const sender = new WebSender(workerBus, 2_000, new RecipientPacer(0), silentLogger);
    const batch = {
      session,
      inReplyTo: 'whatsapp:x',
      replies: [
        { seq: 2, text: 'one', payload: {} },
        { seq: 3, text: 'two?', payload: { suggestions: [{ text: 'Yes' }, { text: 'No' }] } },
      ],
    };
    const to = { transport: 'web' as const, chatId: '5511999999999@c.us' };
    const outcomes = await sender.send(batch, to);
    expect(outcomes).toEqual([
      { seq: 2, status: 'sent', channelMessageId: client.sent[0]!.id },
      { seq: 3, status: 'sent', channelMessageId: client.sent[1]!.id },
    ]);
    // Suggestions are numbered: a linked device sends no buttons, and "1" answers the first.
    expect(client.sent.map((s) => s.text)).toEqual(['one', 'two?\n\n1. Yes\n2. No']);
    // The delivery retries a batch whose answer was lost: the gateway answers from memory.
    expect(await sender.send(batch, to)).toEqual(outcomes);
    expect(client.sent).toHaveLength(2);

    await gateway.stop();
    const lonely = new WebSender(workerBus, 300, new RecipientPacer(0), silentLogger);
    const failure = await lonely
      .send({ ...batch, replies: [{ seq: 4, text: 'anyone?', payload: {} }] }, to)
      .catch((e) => e);
    expect(failure).toBeInstanceOf(SendError);
    expect(failure.retryable).toBe(true);
    expect(failure.message).toMatch(/no WhatsApp Web gateway confirmed the send within 300 ms/);
    await sender.close();
    await lonely.close();
  });
});
