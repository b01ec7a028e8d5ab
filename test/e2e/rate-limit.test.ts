import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdapters } from '../../adapters/index.ts';
import { signatureHeader } from '../../adapters/whatsapp/webhook/verify.ts';
import type { Role } from '../../src/config/env.ts';
import { SessionSettingsSchema } from '../../src/lifecycle/rules.ts';
import * as teamsDoc from '../fixtures/teams/activities.ts';
import * as waDoc from '../fixtures/whatsapp/cloud-payloads.ts';
import { type BotConnector, startBotConnector } from '../helpers/bot-connector.ts';
import { createTestDatabase, silentLogger, type TestDatabase } from '../helpers/database.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { apiClient, type RunningHub, startTestHub, testConfig } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { settled } from '../helpers/settled.ts';
import { until } from '../helpers/until.ts';
import { TestSocket, wsUrl } from '../helpers/ws-client.ts';

/** The seeds' default: 60 messages per minute per session. */
const LIMIT = 60;
const NOTICE = SessionSettingsSchema.parse({}).rateLimitNotice;
const APP_SECRET = 'rl-secret';

/**
 * Two gateways and a worker, in this process, on one PostgreSQL database and one Redis prefix:
 * each channel's messages to one session alternate between the gateways, and the limit still
 * counts them together.
 */
describe('the message rate limit holds on every channel across two gateways', () => {
  let database: TestDatabase;
  let redis: { prefix: string; cleanup: () => Promise<void> };
  let graph: GraphApi;
  let connector: BotConnector;
  let db: pg.Pool;
  const gateways: RunningHub[] = [];
  let worker: RunningHub;

  beforeAll(async () => {
    database = await createTestDatabase();
    redis = testRedisPrefix();
    graph = await startGraphApi('rl-token');
    connector = await startBotConnector();
    db = new pg.Pool({ connectionString: database.url, max: 2 });
    const env = {
      WHATSAPP_ACCESS_TOKEN: 'rl-token',
      WHATSAPP_APP_SECRET: APP_SECRET,
      WHATSAPP_VERIFY_TOKEN: 'rl-verify',
      WHATSAPP_GRAPH_URL: graph.url,
      TEAMS_ENABLED: 'true',
    };
    const overrides = { databaseUrl: database.url, redisUrl: TEST_REDIS_URL, redisPrefix: redis.prefix };
    const start = async (role: Role) =>
      startTestHub(overrides, {
        role,
        adapters: await loadAdapters(testConfig(overrides), env, silentLogger),
      });
    worker = await start('worker');
    gateways.push(await start('gateway'), await start('gateway'));
  });

  afterAll(async () => {
    for (const hub of [...gateways, worker]) await hub?.stop();
    await db?.end();
    await graph?.close();
    await connector?.close();
    await redis?.cleanup();
    await database?.drop();
  });

  const gateway = (i: number) => gateways[i % 2]!;

  /** The inbound rows of the session with this key, oldest first. */
  async function inbound(channel: string, nativeKey: string) {
    const { rows } = await db.query<{ content: string; payload: { refused?: string } }>(
      `SELECT m.content, m.payload FROM messages m JOIN sessions s ON s.id = m.session_id
       WHERE s.channel = $1 AND s.native_key = $2 AND m.role = 'user' ORDER BY m.seq`,
      [channel, nativeKey],
    );
    return rows;
  }

  async function notices(channel: string, nativeKey: string) {
    const { rows } = await db.query<{ content: string }>(
      `SELECT m.content FROM messages m JOIN sessions s ON s.id = m.session_id
       WHERE s.channel = $1 AND s.native_key = $2 AND m.role = 'assistant' AND m.payload->>'notice' = 'true'`,
      [channel, nativeKey],
    );
    return rows.map((r) => r.content);
  }

  /** Messages 1–60 were taken; 61 and 62 were recorded as refused and told once. */
  async function expectRecordedAsRefused(channel: string, nativeKey: string) {
    const rows = await until(
      () => inbound(channel, nativeKey),
      (r) => r.length === LIMIT + 2,
    );
    expect(rows.slice(0, LIMIT).every((r) => r.payload.refused === undefined)).toBe(true);
    expect(rows.slice(LIMIT).map((r) => [r.content, r.payload.refused])).toEqual([
      ['message 61', 'rate_limited'],
      ['message 62', 'rate_limited'],
    ]);
    expect(await notices(channel, nativeKey)).toEqual([NOTICE]);
  }

  it('the HTTP API answers the 61st message with 429 and Retry-After', async () => {
    const session = await apiClient(gateway(0).url).createSession();
    for (let i = 1; i <= LIMIT; i++) {
      const res = await apiClient(gateway(i).url).chat(session.token, `message ${i}`, {}, '?wait=false');
      expect(res.status, `message ${i}`).toBe(202);
    }
    const refused = await apiClient(gateway(LIMIT + 1).url).chat(
      session.token,
      'message 61',
      {},
      '?wait=false',
    );
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe('rate_limited');
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // Nothing of the refused message was queued.
    await until(
      () => inbound('api', session.session_id),
      (r) => r.length === LIMIT,
    );
    await settled(worker.hub);
    expect((await inbound('api', session.session_id)).map((r) => r.content)).not.toContain('message 61');
  });

  it('the web socket answers the 61st message with an error frame and stays open', async () => {
    const first = await TestSocket.open(wsUrl(gateway(0).url));
    first.send({ type: 'hello', lastSeq: 0 });
    const welcome = await first.nextOfType('welcome');
    const second = await TestSocket.open(wsUrl(gateway(1).url));
    second.send({ type: 'hello', token: welcome.token, lastSeq: 0 });
    await second.nextOfType('welcome');
    const sockets = [first, second];
    for (let i = 1; i <= LIMIT; i++) {
      const socket = sockets[i % 2]!;
      const id = randomUUID();
      socket.send({ type: 'message', id, text: `message ${i}` });
      const ack = await socket.next((f) => f.type === 'ack' && f.id === id, `the ack of message ${i}`);
      expect(ack.status).toBe('accepted');
    }
    const id = randomUUID();
    sockets[(LIMIT + 1) % 2]!.send({ type: 'message', id, text: 'message 61' });
    const error = await sockets[(LIMIT + 1) % 2]!.next(
      (f) => f.type === 'error' && f.id === id,
      'the refusal of message 61',
    );
    expect(error).toMatchObject({ code: 'rate_limited' });
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.retryAfterMs).toBeLessThanOrEqual(60_000);
    // The socket is still usable.
    first.send({ type: 'ping' });
    await first.nextOfType('pong');
    first.ws.close();
    second.ws.close();
  });

  it('WhatsApp: the 61st and later are recorded as refused, and the person gets one notice', async () => {
    const phone = `1555${String(Date.now()).slice(-7)}`;
    for (let i = 1; i <= LIMIT + 2; i++) {
      const payload = waDoc.variant(waDoc.textMessage, {
        suffix: `rl${i}`,
        from: phone,
        timestamp: new Date(),
      });
      (payload as waDoc.Json).entry[0].changes[0].value.messages[0].text.body = `message ${i}`;
      const raw = JSON.stringify(payload);
      const res = await fetch(`${gateway(i).url}/webhooks/whatsapp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-hub-signature-256': signatureHeader(raw, APP_SECRET),
        },
        body: raw,
      });
      // The platform is always told "received": a refusal is ours to handle, not a reason to retry.
      expect(res.status, `message ${i}`).toBe(200);
    }
    await expectRecordedAsRefused('whatsapp', `+${phone}`);
    const sent = await until(
      async () => graph.to(phone).filter((r) => r.body.text?.body === NOTICE),
      (r) => r.length >= 1,
    );
    await settled(worker.hub);
    expect(graph.to(phone).filter((r) => r.body.text?.body === NOTICE)).toHaveLength(sent.length);
    expect(sent).toHaveLength(1);
  });

  it('Teams: the 61st and later are recorded as refused, and the person gets one notice', async () => {
    const suffix = `rl-${Date.now()}`;
    const base = teamsDoc.variant(teamsDoc.personalMessage, { suffix, serviceUrl: connector.url });
    for (let i = 1; i <= LIMIT + 2; i++) {
      const activity = { ...base, id: `${base.id}-${i}`, text: `message ${i}` };
      const res = await fetch(`${gateway(i).url}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(activity),
      });
      expect(res.status, `message ${i}`).toBeLessThan(300);
    }
    const nativeKey = `${base.from.aadObjectId ?? base.from.id}#${base.conversation.id}`;
    await expectRecordedAsRefused('teams', nativeKey);
    const delivered = await until(
      async () => connector.delivered(base.conversation.id).filter((r) => r.body.text === NOTICE),
      (r) => r.length >= 1,
    );
    expect(delivered).toHaveLength(1);
  });

  it('email: the 61st and later are recorded as refused, and the person gets one notice', async () => {
    const address = `rl-${Date.now()}@example.com`;
    const thread = `<root-${Date.now()}@example.com>`;
    for (let i = 1; i <= LIMIT + 2; i++) {
      // What the IMAP watcher of either gateway hands in for a new mail in the thread.
      await gateway(i).hub.ingress.accept({
        id: `email:<m${i}-${thread.slice(1)}`,
        channel: 'email',
        bot: 'default',
        from: { id: address, email: address },
        thread,
        text: `message ${i}`,
        meta: { subject: 'Hello' },
        receivedAt: new Date().toISOString(),
      });
    }
    await expectRecordedAsRefused('email', `${address}#${thread}`);
  });
});
