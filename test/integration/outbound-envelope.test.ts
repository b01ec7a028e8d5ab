import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebAdapter, loadWebConfig } from '../../adapters/web/index.ts';
import { outboundEnvelope } from '../../src/engine/outbound.ts';
import { parseEnvelope } from '../../src/envelope.ts';
import { InvalidEnvelopeError } from '../../src/ingress.ts';
import {
  deliveryOf,
  findOutboundMessage,
  insertOutboundMessage,
  OPERATOR_ORIGIN,
} from '../../src/outbound/store.ts';
import { endSessionThroughQueue } from '../../src/sessions.ts';
import { listMessages } from '../../src/store/messages.ts';
import type { SessionRecord } from '../../src/store/records.ts';
import { findOpenSnapshotByKey, loadSnapshot } from '../../src/store/sessions.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import { postWhatsAppWebhook, whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';
import { TestSocket, wsUrl } from '../helpers/ws-client.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const APP_SECRET = 'test-app-secret';
const ACCESS_TOKEN = 'EAAJB-test-token';
const NUMBER = '106540352242922';

/**
 * The `outbound` envelope on its own: a reply that something other than the person puts into a
 * session through the session's lane, recorded with its role and delivered like a bot's reply.
 */
describe('outbound envelopes (embedded queue, PostgreSQL)', () => {
  let graph: GraphApi;
  let running: RunningHub;
  let serial = 0;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    const whatsapp = whatsAppCloudAdapter({
      graphUrl: graph.url,
      numbers: `${NUMBER}:default`,
      accessToken: ACCESS_TOKEN,
      appSecret: APP_SECRET,
    });
    running = await startTestHub(
      { configDir: FIXTURE_CONFIG },
      { adapters: [createWebAdapter(loadWebConfig({})), whatsapp] },
    );
  });
  afterAll(async () => {
    for (const s of sockets) s.ws.terminate();
    await running?.stop();
    await graph?.close();
  });

  const db = () => running.hub.db;
  const rows = async (sessionId: string) =>
    (await listMessages(db(), sessionId, { limit: 100 })).map((m) => `${m.role}:${m.content}`);

  /** A WhatsApp person's first message through the webhook; resolves with their open session. */
  async function whatsappSession(): Promise<SessionRecord> {
    const from = `1650777${String(1000 + ++serial).padStart(4, '0')}`;
    const payload = doc.variant(doc.textMessage, { from, suffix: from, timestamp: new Date() });
    const res = await postWhatsAppWebhook(running.url, payload, APP_SECRET);
    expect(res.status).toBe(200);
    const snap = await until(
      () => findOpenSnapshotByKey(db(), { bot: 'default', channel: 'whatsapp', nativeKey: `+${from}` }),
      (s) => (s?.session.lastSeq ?? 0) >= 3,
    );
    // The greeting and the echo have gone out: what the test sends next is counted after them.
    await until(
      () => graph.to(from).length,
      (n) => n >= 2,
    );
    return snap!.session;
  }

  async function webSession(): Promise<{ session: SessionRecord; socket: TestSocket }> {
    const socket = await TestSocket.open(wsUrl(running.url));
    sockets.push(socket);
    const welcome = await socket.hello();
    await socket.reply('welcome');
    const snap = await loadSnapshot(db(), welcome.sessionId as string);
    return { session: snap!.session, socket };
  }

  it('reaches a web session live with role assistant, after what the person said before it', async () => {
    const { session, socket } = await webSession();
    socket.send({ type: 'message', id: 'm1', text: 'first' });
    await socket.reply('echo first #1');
    const accepted = await running.hub.ingress.accept(
      outboundEnvelope(session, {
        id: 'note-1',
        text: 'Your order is ready',
        role: 'assistant',
        origin: { type: 'test', id: 'case-1' },
        suggestions: [{ text: 'Thanks' }],
      }),
    );
    expect(accepted).toEqual({ status: 'accepted', envelopeId: 'outbound:test:note-1' });
    const frame = await socket.reply('Your order is ready');
    expect(frame).toMatchObject({ role: 'assistant', seq: 5 });
    expect(await socket.nextOfType('suggestions')).toMatchObject({
      items: [{ text: 'Thanks', value: 'Thanks' }],
    });
    expect(await rows(session.id)).toEqual([
      'system:session started',
      'assistant:welcome',
      'user:first',
      'assistant:echo first #1',
      'assistant:Your order is ready',
    ]);
    // The bot did not run for it: no echo, and the person's message count is unchanged.
    const after = await loadSnapshot(db(), session.id);
    expect(after!.session.messageCount).toBe(1);
    expect(after!.state.variables.seen).toEqual(['first']);
  });

  it('is ordered with the person’s own messages in the lane', async () => {
    const session = await whatsappSession();
    const { ingress } = running.hub;
    const person = (n: number, text: string) => ({
      id: `whatsapp:wamid.order.${session.id}.${n}`,
      channel: 'whatsapp' as const,
      bot: 'default',
      from: { id: session.nativeKey },
      text,
      receivedAt: new Date().toISOString(),
    });
    // Queued back to back: the lane takes them in this order, one at a time.
    await ingress.accept(person(1, 'one'));
    await ingress.accept(
      outboundEnvelope(session, {
        id: 'between',
        text: 'between',
        role: 'assistant',
        origin: { type: 'test', id: 'x' },
      }),
    );
    await ingress.accept(person(2, 'two'));
    await until(
      () => rows(session.id),
      (r) => r.length >= 8,
    );
    expect((await rows(session.id)).slice(3)).toEqual([
      'user:one',
      'assistant:echo one #2',
      'assistant:between',
      'user:two',
      'assistant:echo two #3',
    ]);
  });

  it('goes out on WhatsApp through the outbox as an agent’s reply, with the agent recorded', async () => {
    const session = await whatsappSession();
    const to = session.nativeKey.slice(1);
    const sentBefore = graph.to(to).length;
    await running.hub.ingress.accept(
      outboundEnvelope(session, {
        id: 'agent-1',
        text: 'Hi, this is Ana from support',
        role: 'agent',
        agentId: 'agent-ana',
        origin: { type: 'agent', id: 'agent-ana:1' },
      }),
    );
    await until(
      () => graph.to(to).length,
      (n) => n > sentBefore,
    );
    expect(graph.to(to).at(-1)!.body).toMatchObject({
      type: 'text',
      text: { body: 'Hi, this is Ana from support' },
    });
    const row = await until(
      async () =>
        (
          await db().query<{
            role: string;
            payload: Record<string, unknown>;
            delivery_status: string;
            in_reply_to: string;
          }>('SELECT role, payload, delivery_status, in_reply_to FROM messages WHERE envelope_id = $1', [
            'outbound:agent:agent-1',
          ])
        ).rows[0],
      (r) => r?.delivery_status === 'sent',
    );
    expect(row).toMatchObject({
      role: 'agent',
      in_reply_to: 'outbound:agent:agent-1',
      payload: { agentId: 'agent-ana', origin: { type: 'agent', id: 'agent-ana:1' } },
    });
  });

  it('is recorded and sent once when the same envelope arrives twice, or is handled twice', async () => {
    const session = await whatsappSession();
    const to = session.nativeKey.slice(1);
    const sentBefore = graph.to(to).length;
    const envelope = outboundEnvelope(session, {
      id: 'twice',
      text: 'only once',
      role: 'assistant',
      origin: { type: 'test', id: 'twice' },
    });
    expect((await running.hub.ingress.accept(envelope)).status).toBe('accepted');
    expect((await running.hub.ingress.accept(envelope)).status).toBe('duplicate');
    await until(
      () => graph.to(to).length,
      (n) => n > sentBefore,
    );
    // A redelivery straight to the engine (an at-least-once queue) finds it recorded.
    expect(await running.hub.engine.handle(parseEnvelope(envelope))).toBe('duplicate');
    const { rows: found } = await db().query(
      'SELECT 1 FROM messages WHERE content = $1 AND session_id = $2',
      ['only once', session.id],
    );
    expect(found).toHaveLength(1);
    expect(graph.to(to).filter((r) => r.body.text?.body === 'only once')).toHaveLength(1);
  });

  it('for a session that has ended is dropped: nothing recorded, and no new session made', async () => {
    const session = await whatsappSession();
    await endSessionThroughQueue({ db: db(), ingress: running.hub.ingress }, session, 'test');
    await until(
      () => loadSnapshot(db(), session.id),
      (s) => s?.session.endedAt !== null,
    );
    const envelope = parseEnvelope(
      outboundEnvelope(session, {
        id: 'late',
        text: 'too late',
        role: 'assistant',
        origin: { type: 'test', id: 'l' },
      }),
    );
    expect(await running.hub.engine.handle(envelope)).toBe('no_session');
    const { rows: found } = await db().query('SELECT 1 FROM messages WHERE envelope_id = $1', [envelope.id]);
    expect(found).toHaveLength(0);
    expect(
      await findOpenSnapshotByKey(db(), {
        bot: 'default',
        channel: 'whatsapp',
        nativeKey: session.nativeKey,
      }),
    ).toBeUndefined();
  });

  /** An operator's message recorded for `session` (as `POST /api/admin/messages` records one), and its envelope. */
  async function operatorMessage(session: SessionRecord, text: string) {
    const id = randomUUID();
    await insertOutboundMessage(db(), {
      id,
      bot: session.bot,
      channel: session.channel,
      nativeKey: session.nativeKey,
      sessionId: session.id,
      replyTo: null,
      text,
      template: null,
      subject: null,
      status: 'queued',
      sendAt: null,
      broadcastId: null,
      idempotencyKey: null,
      requestHash: null,
    });
    const envelope = outboundEnvelope(session, {
      id,
      text,
      role: 'assistant',
      origin: { type: OPERATOR_ORIGIN, id },
    });
    return { id, envelope };
  }

  /** Ends `session` through its lane (an operator's DELETE, the person's END) and waits for it. */
  async function endThroughLane(session: SessionRecord) {
    await endSessionThroughQueue({ db: db(), ingress: running.hub.ingress }, session, 'test');
    await until(
      () => loadSnapshot(db(), session.id),
      (s) => s?.session.endedAt !== null,
    );
  }

  it('from an operator, for a WhatsApp session that ended before its turn, goes into the person’s new session, once', async () => {
    const session = await whatsappSession();
    const to = session.nativeKey.slice(1);
    const { id, envelope } = await operatorMessage(session, 'Your order is ready');
    // Handed over while the session was open; the session's end was ahead of it in the lane.
    await endThroughLane(session);
    expect((await running.hub.ingress.accept(envelope)).status).toBe('accepted');
    await until(
      () => graph.to(to).filter((r) => r.body.text?.body === 'Your order is ready').length,
      (n) => n >= 1,
    );
    const renewed = await findOpenSnapshotByKey(db(), {
      bot: 'default',
      channel: 'whatsapp',
      nativeKey: session.nativeKey,
    });
    expect(renewed?.session.id).toBeDefined();
    expect(renewed!.session.id).not.toBe(session.id);
    expect(await rows(renewed!.session.id)).toContain('assistant:Your order is ready');
    const delivery = await until(
      () => deliveryOf(db(), id),
      (d) => d?.status === 'sent',
    );
    expect(delivery!.sessionId).toBe(renewed!.session.id);
    // Handled again (an at-least-once queue): recorded once, sent once.
    expect(await running.hub.engine.handle(parseEnvelope(envelope))).toBe('duplicate');
    expect(graph.to(to).filter((r) => r.body.text?.body === 'Your order is ready')).toHaveLength(1);
  });

  it('from an operator, for an API session that ended before its turn, settles the message failed (no session is opened)', async () => {
    const created = await apiClient(running.url).createSession('default');
    const session = (await loadSnapshot(db(), created.session_id))!.session;
    const { id, envelope } = await operatorMessage(session, 'Too late for this one');
    await endThroughLane(session);
    expect(await running.hub.engine.handle(parseEnvelope(envelope))).toBe('no_session');
    expect(await findOutboundMessage(db(), id)).toMatchObject({
      status: 'failed',
      error: 'the session it was for has ended',
    });
    const { rows: found } = await db().query('SELECT 1 FROM messages WHERE envelope_id = $1', [envelope.id]);
    expect(found).toHaveLength(0);
    expect(
      await findOpenSnapshotByKey(db(), { bot: 'default', channel: 'api', nativeKey: session.nativeKey }),
    ).toBeUndefined();
  });

  it('from an operator, no longer waiting (its row erased) when its ended session’s turn comes, is dropped: no session opened', async () => {
    const session = await whatsappSession();
    const to = session.nativeKey.slice(1);
    const sentBefore = graph.to(to).length;
    const { id, envelope } = await operatorMessage(session, 'Erased before its turn');
    await endThroughLane(session);
    // What erasing the person does to it (src/store/erasure.ts); the envelope was already queued.
    await db().query('DELETE FROM outbound_messages WHERE id = $1', [id]);
    expect(await running.hub.engine.handle(parseEnvelope(envelope))).toBe('no_session');
    expect(
      await findOpenSnapshotByKey(db(), {
        bot: 'default',
        channel: 'whatsapp',
        nativeKey: session.nativeKey,
      }),
    ).toBeUndefined();
    expect(graph.to(to)).toHaveLength(sentBefore);
  });

  it('is refused at the door without its outbound part, or as an agent reply without an agent', async () => {
    const session = await whatsappSession();
    const good = outboundEnvelope(session, {
      id: 'shape',
      text: 't',
      role: 'assistant',
      origin: { type: 't', id: '1' },
    });
    const { outbound: _outbound, ...bare } = good;
    await expect(running.hub.ingress.accept(bare)).rejects.toBeInstanceOf(InvalidEnvelopeError);
    await expect(
      running.hub.ingress.accept({ ...good, outbound: { ...good.outbound!, role: 'agent' } }),
    ).rejects.toBeInstanceOf(InvalidEnvelopeError);
    await expect(running.hub.ingress.accept({ ...good, kind: 'message' })).rejects.toBeInstanceOf(
      InvalidEnvelopeError,
    );
  });
});
