import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { MAX_SOCKETS_PER_SESSION } from '../../adapters/web/connection.ts';
import { createWebAdapter, loadWebConfig, type WebConfig } from '../../adapters/web/index.ts';
import { sessionTopic } from '../../src/bus/bus.ts';
import type { HubConfig } from '../../src/config/env.ts';
import type { AdapterHost, ChannelAdapter } from '../../src/ports.ts';
import { eventually } from '../helpers/admin.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { type Frame, TestSocket, wsUrl } from '../helpers/ws-client.ts';

const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/web');
const ADMIN_TOKEN = 'web-socket-tests-admin-token-0123456789';
const JWT_SECRET = 'the-host-site-and-the-hub-share-this-secret';
const JWT_ISSUER = 'https://shop.example';
const JWT_AUDIENCE = 'switchboard-web-socket-test';

/** What a host site hands its widget to sign its visitor in (`authenticate`). */
const hostSiteJwt = (sub: string) =>
  new SignJWT({ sub })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(JWT_ISSUER)
    .setAudience(JWT_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(JWT_SECRET));

interface WebHub extends RunningHub {
  ws: string;
  host: AdapterHost;
}

/** A hub in this process with the web adapter, on the web tests' bots; `host` is what adapters get. */
async function startWebHub(
  overrides: Partial<HubConfig> = {},
  web: Partial<WebConfig> = {},
): Promise<WebHub> {
  let host: AdapterHost | undefined;
  const probe: ChannelAdapter = {
    channel: 'web',
    async setup(h) {
      host = h;
    },
  };
  const running = await startTestHub(
    { configDir: FIXTURES, ...overrides },
    { adapters: [createWebAdapter({ ...loadWebConfig({}), ...web }), probe] },
  );
  return { ...running, ws: wsUrl(running.url), host: host! };
}

const sockets: TestSocket[] = [];
async function connect(hub: { ws: string }, options?: WebSocket.ClientOptions): Promise<TestSocket> {
  const s = await TestSocket.open(hub.ws, options);
  sockets.push(s);
  return s;
}

afterAll(() => {
  for (const s of sockets) s.ws.terminate();
});

const userRows = async (hub: RunningHub, sessionId: string) =>
  (
    await hub.hub.db.query<{ seq: number; content: string }>(
      `SELECT seq, content FROM messages WHERE session_id = $1 AND role = 'user' ORDER BY seq`,
      [sessionId],
    )
  ).rows;

const texts = (frames: Frame[]) => frames.map((f) => `${f.role}:${f.text}`);

describe('web socket protocol (one gateway)', () => {
  let hub: WebHub;
  beforeAll(async () => {
    hub = await startWebHub({ rateLimitPerMinute: 5, maxTextBytes: 100 }, { maxFrameBytes: 4096 });
  });
  afterAll(async () => {
    await hub?.stop();
  });

  it('opens a session on hello, replays its greeting, answers a message, and the token resumes it', async () => {
    const a = await connect(hub, { headers: { 'user-agent': 'TestBrowser/1.0' } });
    const welcome = await a.hello({
      bot: 'default',
      // The query and fragment can hold the host site's tokens: the hub keeps neither.
      pageUrl: 'https://shop.example/cart?reset_token=s3cret#access_token=abc',
      language: 'pt-BR',
    });
    expect(welcome).toMatchObject({ bot: 'default', title: 'default', lastSeq: 0, resumed: false });
    expect(welcome.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await a.reply('welcome to the web test bot');

    a.send({ type: 'message', id: 'first', text: 'hello' });
    expect(await a.nextOfType('ack')).toEqual({ type: 'ack', id: 'first', status: 'accepted' });
    const reply = await a.reply('echo hello #1');
    expect(reply.inReplyTo).toBe(`web:${welcome.sessionId}:first`);
    const messages = a.messages();
    expect(messages.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(messages[2]).toMatchObject({ role: 'user', text: 'hello', clientId: 'first' });

    // The envelope carries the channel metadata.
    const { rows } = await hub.hub.db.query<{
      envelope: { meta: Record<string, unknown>; from: { id: string } };
    }>('SELECT envelope FROM inbox WHERE envelope_id = $1', [`web:${welcome.sessionId}:first`]);
    expect(rows[0]!.envelope.from.id).toBe(welcome.sessionId);
    expect(rows[0]!.envelope.meta).toEqual({
      ip: '127.0.0.1',
      userAgent: 'TestBrowser/1.0',
      pageUrl: 'https://shop.example/cart',
      language: 'pt-BR',
    });
    await a.close();

    // Another socket with the token: the same session, its whole history from lastSeq 0.
    const b = await connect(hub);
    const again = await b.hello({ token: welcome.token, bot: 'default' });
    expect(again).toMatchObject({ sessionId: welcome.sessionId, resumed: true, lastSeq: 4 });
    expect(again.token).toBeUndefined();
    expect(texts(await b.messagesThrough(4))).toEqual([
      'system:session started',
      'assistant:welcome to the web test bot',
      'user:hello',
      'assistant:echo hello #1',
    ]);
    // The web token works on the REST history too: one session, whatever reads it.
    const history = await apiClient(hub.url).history(welcome.token);
    expect(history.json.messages.map((m: { seq: number }) => m.seq)).toEqual([1, 2, 3, 4]);
  });

  it('processes a resend with the same client message id once, also after a dropped socket', async () => {
    const a = await connect(hub);
    const { token, sessionId } = await a.hello();
    a.send({ type: 'message', id: 'pay-10', text: 'pay 10 EUR' });
    await a.nextOfType('ack');
    // The socket drops before the client saw the reply; the client resends on a new one.
    a.ws.terminate();
    const b = await connect(hub);
    await b.hello({ token });
    b.send({ type: 'message', id: 'pay-10', text: 'pay 10 EUR' });
    expect(await b.nextOfType('ack')).toEqual({ type: 'ack', id: 'pay-10', status: 'duplicate' });
    b.send({ type: 'message', id: 'pay-10', text: 'pay 10 EUR' });
    expect((await b.nextOfType('ack')).status).toBe('duplicate');
    b.send({ type: 'message', id: 'after', text: 'next' });
    await b.reply('echo next #2');
    expect(await userRows(hub, sessionId)).toEqual([
      { seq: 3, content: 'pay 10 EUR' },
      { seq: 5, content: 'next' },
    ]);
    expect(b.messages().filter((m) => m.role === 'user')).toHaveLength(2);
  });

  it('delivers what was committed while a socket was away, from the last seq it saw, once and in order', async () => {
    const a = await connect(hub);
    const { token, sessionId } = await a.hello();
    a.send({ type: 'message', id: 'a1', text: 'one' });
    await a.reply('echo one #1');
    const lastSeen = Math.max(...a.messages().map((m) => m.seq));
    expect(lastSeen).toBe(4);
    await a.close();

    // Meanwhile, the same person writes from another tab.
    const other = await connect(hub);
    await other.hello({ token, lastSeq: lastSeen });
    other.send({ type: 'message', id: 'b1', text: 'two' });
    await other.reply('echo two #2');
    other.send({ type: 'message', id: 'b2', text: 'three' });
    await other.reply('echo three #3');

    const back = await connect(hub);
    const welcome = await back.hello({ token, lastSeq: lastSeen });
    expect(welcome).toMatchObject({ sessionId, lastSeq: 8 });
    const missed = await back.messagesThrough(8);
    expect(missed.map((m) => m.seq)).toEqual([5, 6, 7, 8]);
    expect(texts(missed)).toEqual([
      'user:two',
      'assistant:echo two #2',
      'user:three',
      'assistant:echo three #3',
    ]);
    expect(missed[0]!.clientId).toBe('b1');
  });

  it('sends every tab of a session the other tabs’ messages and the replies, with typing', async () => {
    const a = await connect(hub);
    const { token } = await a.hello();
    await a.messagesThrough(2);
    const b = await connect(hub);
    await b.hello({ token, lastSeq: 2 });
    a.send({ type: 'message', id: 'tabs', text: 'from a' });
    // (A typing: false of the greeting's turn may come first: its notification can trail the history.)
    await b.next((f) => f.type === 'typing' && f.active === true, 'typing on');
    const onB = await b.reply('echo from a #1');
    expect(onB.seq).toBe(4);
    expect(b.messages().map((m) => `${m.seq}:${m.role}`)).toEqual(['3:user', '4:assistant']);
    expect(await b.nextOfType('typing')).toEqual({ type: 'typing', active: false });
  });

  it('shows suggestions as their own frame after the message that carries them', async () => {
    const a = await connect(hub);
    await a.hello();
    a.send({ type: 'message', id: 'menu', text: 'menu' });
    const reply = await a.reply('pick one');
    const items = [
      { text: 'Opening hours', value: 'hours' },
      { text: 'Prices', value: 'prices' },
    ];
    expect(reply.suggestions).toEqual(items);
    expect(await a.nextOfType('suggestions')).toEqual({ type: 'suggestions', seq: reply.seq, items });
  });

  it('relays streamed parts of a reply (turn.chunk on the bus) as chunk frames', async () => {
    const a = await connect(hub);
    const { sessionId } = await a.hello();
    const envelopeId = `web:${sessionId}:streamed`;
    for (const [index, text] of ['Hel', 'lo ', 'there'].entries())
      await hub.host.bus.publish(sessionTopic(sessionId), {
        type: 'turn.chunk',
        sessionId,
        envelopeId,
        index,
        text,
      });
    const chunks = [await a.nextOfType('chunk'), await a.nextOfType('chunk'), await a.nextOfType('chunk')];
    expect(chunks).toEqual([
      { type: 'chunk', inReplyTo: envelopeId, index: 0, text: 'Hel' },
      { type: 'chunk', inReplyTo: envelopeId, index: 1, text: 'lo ' },
      { type: 'chunk', inReplyTo: envelopeId, index: 2, text: 'there' },
    ]);
  });

  it('marks replies delivered when the client acknowledges them', async () => {
    const a = await connect(hub);
    const { sessionId } = await a.hello();
    a.send({ type: 'message', id: 'd1', text: 'deliver me' });
    const reply = await a.reply('echo deliver me #1');
    const status = async () =>
      (
        await hub.hub.db.query<{ seq: number; delivery_status: string }>(
          `SELECT seq, delivery_status FROM messages WHERE session_id = $1 AND role = 'assistant' ORDER BY seq`,
          [sessionId],
        )
      ).rows;
    expect((await status()).map((r) => r.delivery_status)).toEqual(['sent', 'sent']);
    // A client cannot acknowledge what it was not sent: seq 1000 counts as the last one it got.
    a.send({ type: 'ack', seq: 1000 });
    a.send({ type: 'ping' });
    await a.nextOfType('pong');
    expect(await status()).toEqual([
      { seq: 2, delivery_status: 'delivered' },
      { seq: reply.seq, delivery_status: 'delivered' },
    ]);
  });

  it('answers bad frames with an error frame and keeps the socket open', async () => {
    const a = await connect(hub);
    a.send({ type: 'message', id: 'early', text: 'before hello' });
    expect(await a.nextOfType('error')).toMatchObject({ code: 'not_ready', id: 'early' });
    await a.hello();
    a.send('{not json');
    expect(await a.nextOfType('error')).toMatchObject({
      code: 'bad_frame',
      message: 'a frame is one JSON object',
    });
    a.send({ type: 'teleport' });
    expect((await a.nextOfType('error')).code).toBe('bad_frame');
    a.send({ type: 'message', id: 'bad id with spaces', text: 'x' });
    expect((await a.nextOfType('error')).message).toMatch(/^id:/);
    a.send({ type: 'message', id: 'no-text' });
    expect((await a.nextOfType('error')).message).toMatch(/^text:/);
    a.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await a.nextOfType('error')).code).toBe('bad_frame');
    a.send({ type: 'message', id: 'blank', text: '   ' });
    expect(await a.nextOfType('error')).toMatchObject({ code: 'empty_text', id: 'blank' });
    a.send({ type: 'message', id: 'long', text: 'x'.repeat(101) });
    expect(await a.nextOfType('error')).toMatchObject({ code: 'text_too_long', id: 'long' });
    // Still open and working.
    a.send({ type: 'message', id: 'fine', text: 'still here' });
    await a.reply('echo still here #1');
    expect(a.closeEvent).toBeUndefined();
  });

  it('closes with 1009 on a frame over the size limit', async () => {
    const a = await connect(hub);
    await a.hello();
    a.send({ type: 'message', id: 'huge', text: 'x'.repeat(5000) });
    expect((await a.closed()).code).toBe(1009);
  });

  it('closes with 4401 and a reason on a bad, ended or foreign token, and 4404 on an unknown bot', async () => {
    const reasons: { code: number; reason: string }[] = [];
    const tryHello = async (fields: Record<string, unknown>) => {
      const s = await connect(hub);
      s.send({ type: 'hello', ...fields });
      reasons.push(await s.closed());
    };
    await tryHello({ token: 'A'.repeat(43) });
    await tryHello({ token: 'not a token at all' });
    // A REST API session's token is not a web session.
    const api = await apiClient(hub.url).createSession();
    await tryHello({ token: api.token });
    // A web session of another bot.
    const support = await connect(hub);
    const { token } = await support.hello({ bot: 'support' });
    await tryHello({ token, bot: 'default' });
    await tryHello({ bot: 'nope' });
    expect(reasons.slice(0, 4)).toEqual(
      Array(4).fill({
        code: 4401,
        reason: 'the session token is not valid, or its session has ended or expired',
      }),
    );
    expect(reasons[4]).toEqual({ code: 4404, reason: 'there is no bot named "nope"' });
  });

  it('refuses messages over the rate limit with an error frame, and the socket goes on', async () => {
    const a = await connect(hub);
    const { sessionId } = await a.hello();
    for (let i = 1; i <= 6; i++) a.send({ type: 'message', id: `r${i}`, text: `m${i}` });
    for (let i = 1; i <= 5; i++) expect(await a.nextOfType('ack')).toMatchObject({ id: `r${i}` });
    const refused = await a.nextOfType('error');
    expect(refused).toMatchObject({ code: 'rate_limited', id: 'r6' });
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(60_000);
    await a.reply('echo m5 #5');
    expect((await userRows(hub, sessionId)).map((r) => r.content)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    a.send({ type: 'ping' });
    await a.nextOfType('pong');
  });

  it('ends a session on `end` for every tab; its token dies; a hello without token starts afresh', async () => {
    const a = await connect(hub);
    const first = await a.hello();
    const b = await connect(hub);
    await b.hello({ token: first.token });
    a.send({ type: 'end' });
    expect(await a.nextOfType('ended')).toEqual({ type: 'ended', sessionId: first.sessionId });
    expect(await b.nextOfType('ended')).toEqual({ type: 'ended', sessionId: first.sessionId });
    const fresh = await a.hello();
    expect(fresh.sessionId).not.toBe(first.sessionId);
    expect(fresh.token).not.toBe(first.token);
    const c = await connect(hub);
    c.send({ type: 'hello', token: first.token });
    expect((await c.closed()).code).toBe(4401);
  });

  it('tells a tab whose hello was still being checked when another tab ended the session: ended, not replaced', async () => {
    const a = await connect(hub);
    const first = await a.hello();
    // The check a hello makes after its welcome (has the token moved on meanwhile?) is held until
    // the other tab's end has revoked the token.
    const sessions = hub.host.sessions;
    const forToken = sessions.forToken.bind(sessions);
    let calls = 0;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    sessions.forToken = async (token) => {
      if (token === first.token && ++calls === 2) await released;
      return forToken(token);
    };
    try {
      const b = await connect(hub);
      await b.hello({ token: first.token });
      a.send({ type: 'end' });
      expect(await a.nextOfType('ended')).toEqual({ type: 'ended', sessionId: first.sessionId });
      release();
      expect(await b.nextOfType('ended')).toEqual({ type: 'ended', sessionId: first.sessionId });
    } finally {
      sessions.forToken = forToken;
      release();
    }
  });

  it('a tab still gets replies when another tab of its session closed while their room was subscribing', async () => {
    const { session, token } = await hub.host.sessions.open({ bot: 'default', channel: 'web' });
    // The room's bus subscription is held until both tabs wait on it and the first has closed.
    const { bus, sessions } = hub.host;
    const subscribe = bus.subscribe;
    const forToken = sessions.forToken;
    let subscribing = false;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    bus.subscribe = async (topic, handler) => {
      if (topic === sessionTopic(session.id)) {
        subscribing = true;
        await released;
      }
      return subscribe.call(bus, topic, handler);
    };
    // A hello's token check answered: the hello then waits on the room (no await in between).
    let checked = 0;
    sessions.forToken = async (t) => {
      const found = await forToken.call(sessions, t);
      if (t === token) checked++;
      return found;
    };
    try {
      const first = await connect(hub);
      first.send({ type: 'hello', token });
      await eventually(async () => subscribing, 'the room to subscribe');
      const second = await connect(hub);
      second.send({ type: 'hello', token });
      await eventually(async () => checked === 2, 'the second hello to wait on the room');
      await first.close();
      release();
      await second.nextOfType('welcome');
      second.send({ type: 'message', id: 'after-race', text: 'still here?' });
      await second.reply('echo still here? #1');
    } finally {
      bus.subscribe = subscribe;
      sessions.forToken = forToken;
      release();
    }
  });

  it(`refuses a session's socket past ${MAX_SOCKETS_PER_SESSION} on one gateway with 4429; the others go on`, async () => {
    const first = await connect(hub);
    const { token } = await first.hello();
    await first.messagesThrough(2);
    const tabs = [first];
    while (tabs.length < MAX_SOCKETS_PER_SESSION) {
      const tab = await connect(hub);
      await tab.hello({ token, lastSeq: 2 });
      tabs.push(tab);
    }
    const oneTooMany = await connect(hub);
    oneTooMany.send({ type: 'hello', token, lastSeq: 2 });
    expect(await oneTooMany.closed()).toEqual({
      code: 4429,
      reason: `this session already has ${MAX_SOCKETS_PER_SESSION} sockets here; close another tab`,
    });
    first.send({ type: 'message', id: 'many-tabs', text: 'many tabs' });
    for (const tab of tabs) await tab.reply('echo many tabs #1');
    expect(tabs.filter((t) => t.closeEvent)).toEqual([]);
  });

  it('reads no history for a hello from a client that has seen everything, and it gets what follows', async () => {
    const a = await connect(hub);
    const { token, sessionId } = await a.hello();
    await a.messagesThrough(2);
    const history = hub.host.history;
    const page = history.page;
    let reads = 0;
    history.page = async (id, options) => {
      if (id === sessionId) reads++;
      return page.call(history, id, options);
    };
    try {
      const b = await connect(hub);
      expect(await b.hello({ token, lastSeq: 2 })).toMatchObject({ sessionId, lastSeq: 2 });
      // Frames are handled in turn: the pong comes once the hello is done with.
      b.send({ type: 'ping' });
      await b.nextOfType('pong');
      expect(reads).toBe(0);
      b.send({ type: 'message', id: 'seen-all', text: 'next' });
      await b.reply('echo next #1');
      expect(b.messages().map((m) => m.seq)).toEqual([3, 4]);
    } finally {
      history.page = page;
    }
  });

  it('tells the tabs when the bot ends the session', async () => {
    const a = await connect(hub);
    const { sessionId } = await a.hello();
    a.send({ type: 'message', id: 'bye', text: 'bye' });
    await a.reply('goodbye');
    expect(await a.nextOfType('ended')).toEqual({ type: 'ended', sessionId });
  });
});

describe('web gateway settings', () => {
  it('closes with 4408 when no hello comes; refuses other origins when WEB_ALLOWED_ORIGINS is set', async () => {
    const hub = await startWebHub({}, { helloTimeoutMs: 200, allowedOrigins: ['https://shop.example'] });
    try {
      const silent = await connect(hub, { origin: 'https://shop.example' });
      expect(await silent.closed()).toEqual({ code: 4408, reason: 'no hello in time' });
      await expect(TestSocket.open(hub.ws, { origin: 'https://evil.example' })).rejects.toThrow('HTTP 403');
      const own = await connect(hub, { origin: hub.url });
      await own.hello();
      const noOrigin = await connect(hub);
      await noOrigin.hello();
    } finally {
      await hub.stop();
    }
  });

  it('closes with 4408 a socket whose hello failed (the database away) and that says no other in time', async () => {
    const hub = await startWebHub({}, { helloTimeoutMs: 300 });
    const { sessions } = hub.host;
    const forToken = sessions.forToken;
    try {
      const { token } = await sessions.open({ bot: 'default', channel: 'web' });
      sessions.forToken = async () => {
        sessions.forToken = forToken;
        throw new Error('connection terminated unexpectedly');
      };
      const s = await connect(hub);
      s.send({ type: 'hello', token });
      expect(await s.nextOfType('error')).toMatchObject({ code: 'internal' });
      expect(await s.closed()).toEqual({ code: 4408, reason: 'no hello in time' });
    } finally {
      sessions.forToken = forToken;
      await hub.stop();
    }
  });

  it('stops with sockets open: they are closed with 1001 and the hub stops', async () => {
    const hub = await startWebHub();
    const a = await connect(hub);
    await a.hello();
    await hub.stop();
    expect(await a.closed()).toEqual({ code: 1001, reason: 'server restarting' });
  });
});

describe('two gateways sharing one database and one Redis', () => {
  let database: TestDatabase;
  const redis = testRedisPrefix();
  let one: WebHub;
  let two: WebHub;

  beforeAll(async () => {
    database = await createTestDatabase();
    const shared = {
      databaseUrl: database.url,
      redisUrl: TEST_REDIS_URL,
      redisPrefix: redis.prefix,
      rateLimitPerMinute: 4,
      adminToken: ADMIN_TOKEN,
      authJwtSecret: JWT_SECRET,
      authJwtIssuer: JWT_ISSUER,
      authJwtAudience: JWT_AUDIENCE,
    };
    one = await startWebHub(shared);
    two = await startWebHub(shared);
  });
  afterAll(async () => {
    await one?.stop();
    await two?.stop();
    await database?.drop();
    await redis.cleanup();
  });

  it('erasing a signed-in person tells their sockets on both gateways that the session ended; its token is dead', async () => {
    const a = await connect(one);
    const { sessionId } = await a.hello();
    await a.messagesThrough(2);
    // Signed in by the host site: the session now has a person, whom an operator can erase.
    a.send({ type: 'authenticate', jwt: await hostSiteJwt('erased-visitor') });
    const { token, userId } = await a.nextOfType('authenticated');
    const b = await connect(two);
    await b.hello({ token, lastSeq: 2 });

    const erased = await fetch(`${one.url}/api/users/${userId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(erased.status).toBe(200);
    expect(await a.nextOfType('ended')).toEqual({ type: 'ended', sessionId });
    expect(await b.nextOfType('ended')).toEqual({ type: 'ended', sessionId });
    // The sockets stay open for a new conversation; a message needs one first.
    a.send({ type: 'message', id: 'after', text: 'still there?' });
    expect(await a.nextOfType('error')).toMatchObject({ code: 'not_ready', id: 'after' });
    const c = await connect(two);
    c.send({ type: 'hello', token });
    expect((await c.closed()).code).toBe(4401);
  });

  it('a reply reaches the socket on the other gateway', async () => {
    const a = await connect(one);
    const { token, sessionId } = await a.hello();
    await a.messagesThrough(2);
    const b = await connect(two);
    await b.hello({ token, lastSeq: 2 });
    // Written on gateway one, processed there; the socket on gateway two hears of it through Redis.
    a.send({ type: 'message', id: 'x1', text: 'across' });
    // (A typing: false of the greeting's turn may come first: its notification can trail the history.)
    await b.next((f) => f.type === 'typing' && f.active === true, 'typing on');
    await b.reply('echo across #1');
    // And the other way round.
    b.send({ type: 'message', id: 'x2', text: 'back' });
    await a.reply('echo back #2');
    await b.reply('echo back #2');
    expect(texts(b.messages())).toEqual([
      'user:across',
      'assistant:echo across #1',
      'user:back',
      'assistant:echo back #2',
    ]);
    expect((await userRows(one, sessionId)).map((r) => r.content)).toEqual(['across', 'back']);
  });

  it('holds one rate limit for a session across gateways', async () => {
    const a = await connect(one);
    const { token } = await a.hello();
    const b = await connect(two);
    await b.hello({ token });
    for (const [s, id] of [
      [a, 'l1'],
      [b, 'l2'],
      [a, 'l3'],
      [b, 'l4'],
    ] as const) {
      s.send({ type: 'message', id, text: id });
      expect(await s.nextOfType('ack')).toMatchObject({ id });
    }
    a.send({ type: 'message', id: 'l5', text: 'l5' });
    expect(await a.nextOfType('error')).toMatchObject({ code: 'rate_limited', id: 'l5' });
  });
});
