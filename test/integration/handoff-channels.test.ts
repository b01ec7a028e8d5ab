import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebAdapter, loadWebConfig } from '../../adapters/web/index.ts';
import { findOpenSnapshotByKey } from '../../src/store/sessions.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import { postWhatsAppWebhook, whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';
import { TestSocket, wsUrl } from '../helpers/ws-client.ts';

const CONFIG = path.join(REPO_ROOT, 'test/fixtures/handoff');
const ADMIN_TOKEN = 'operator-secret-for-the-handoff-channels-0123456789';
const APP_SECRET = 'test-app-secret';
const ACCESS_TOKEN = 'EAAJB-test-token';
const NUMBER = '106540352242922';

/** An agent answering people on their own channels, through the channels' adapters. */
describe('agents answer on the person’s channel', () => {
  let graph: GraphApi;
  let running: RunningHub;
  let agent: ReturnType<typeof agentClient>;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    const whatsapp = whatsAppCloudAdapter({
      graphUrl: graph.url,
      numbers: `${NUMBER}:helpdesk`,
      accessToken: ACCESS_TOKEN,
      appSecret: APP_SECRET,
    });
    running = await startTestHub(
      { configDir: CONFIG, adminToken: ADMIN_TOKEN },
      { adapters: [createWebAdapter(loadWebConfig({})), whatsapp] },
    );
    const made = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Ana',
      email: 'ana@example.com',
      bots: ['helpdesk'],
    });
    agent = agentClient(running.url, { token: made.token });
  });
  afterAll(async () => {
    for (const s of sockets) s.ws.terminate();
    await running?.stop();
    await graph?.close();
  });

  const claim = async (sessionId: string) =>
    expect((await agent.call('POST', `/api/agent/conversations/${sessionId}/claim`)).status).toBe(200);
  const say = async (sessionId: string, text: string) =>
    expect(
      (await agent.call('POST', `/api/agent/conversations/${sessionId}/messages`, { body: { text } })).status,
    ).toBe(202);

  it('WhatsApp: the agent’s message goes out through the Graph API, the person’s next ones reach the agent only', async () => {
    const from = '16505551234';
    const send = async (text: string, n: number) => {
      const payload = doc.variant(doc.textMessage, {
        from,
        suffix: `handoff${n}`,
        timestamp: new Date(),
      }) as unknown as {
        entry: { changes: { value: { messages: { text: { body: string } }[] } }[] }[];
      };
      payload.entry[0]!.changes[0]!.value.messages[0]!.text.body = text;
      const res = await postWhatsAppWebhook(running.url, payload, APP_SECRET);
      expect(res.status).toBe(200);
    };
    const texts = () => graph.to(from).map((m) => (m.body as { text?: { body: string } }).text?.body);
    await send('I need a human', 1);
    await until(texts, (t) => t.includes('Connecting you to an agent...'));
    const session = (await findOpenSnapshotByKey(running.hub.db, {
      bot: 'helpdesk',
      channel: 'whatsapp',
      nativeKey: `+${from}`,
    }))!.session;
    await claim(session.id);
    await until(texts, (t) => t.includes('Ana is here to help'));
    await say(session.id, 'Hi, Ana here');
    await until(texts, (t) => t.includes('Hi, Ana here'));
    const row = await until(
      async () =>
        (
          await running.hub.db.query<{ role: string; payload: { agentId: string }; delivery_status: string }>(
            `SELECT role, payload, delivery_status FROM messages WHERE session_id = $1 AND content = 'Hi, Ana here'`,
            [session.id],
          )
        ).rows[0],
      (r) => r?.delivery_status === 'sent',
    );
    expect(row?.role).toBe('agent');
    const sentBefore = graph.to(from).length;
    await send('is it shipped?', 2);
    await until(
      async () =>
        (
          await running.hub.db.query('SELECT 1 FROM messages WHERE session_id = $1 AND content = $2', [
            session.id,
            'is it shipped?',
          ])
        ).rowCount,
      (n) => n === 1,
    );
    // Its turn is committed and holds no reply (the bot did not run): nothing to send.
    const after = await running.hub.db.query(
      `SELECT role, content FROM messages WHERE session_id = $1
       AND seq > (SELECT seq FROM messages WHERE session_id = $1 AND content = 'is it shipped?')`,
      [session.id],
    );
    expect(after.rows).toEqual([]);
    expect(graph.to(from).length).toBe(sentBefore);
  });

  it('web: the agent’s message arrives on the socket as role agent; a note never does, nor in the history', async () => {
    const socket = await TestSocket.open(wsUrl(running.url));
    sockets.push(socket);
    const welcome = await socket.hello({ bot: 'helpdesk' });
    const sessionId = welcome.sessionId as string;
    socket.send({ type: 'message', id: 'm1', text: 'get me a human' });
    await socket.reply('Connecting you to an agent...');
    await claim(sessionId);
    await socket.reply('Ana is here to help');
    const noted = await agent.call('POST', `/api/agent/conversations/${sessionId}/notes`, {
      body: { text: 'internal: check the refund' },
    });
    expect(noted.status).toBe(201);
    await say(sessionId, 'Hello from Ana');
    const frame = await socket.next(
      (f) => f.type === 'message' && f.text === 'Hello from Ana',
      'the agent message',
    );
    expect(frame.role).toBe('agent');
    expect(socket.frames.some((f) => JSON.stringify(f).includes('check the refund'))).toBe(false);
    // A reconnecting widget replays the history: the note is not in it either.
    const again = await TestSocket.open(wsUrl(running.url));
    sockets.push(again);
    await again.hello({ bot: 'helpdesk', token: welcome.token });
    await again.next(
      (f) => f.type === 'message' && f.text === 'Hello from Ana',
      'the replayed agent message',
    );
    expect(again.frames.some((f) => JSON.stringify(f).includes('check the refund'))).toBe(false);
    const history = await apiClient(running.url).history(welcome.token as string);
    expect(history.status).toBe(200);
    expect(JSON.stringify(history.json)).not.toContain('check the refund');
    expect(history.json.messages.map((m: { role: string }) => m.role)).toContain('agent');
  });
});
