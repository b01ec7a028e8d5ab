import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadWebConfig, WebConfigError } from '../../adapters/web/config.ts';
import { ADMIN_FAILURES_PER_MINUTE } from '../../src/http/admin-auth.ts';
import { adminClient } from '../helpers/admin.ts';
import { createAgentVia } from '../helpers/agents.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { apiClient } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { socketPool, startWebHub, type WebHub } from '../helpers/web-hub.ts';

const ADMIN_TOKEN = 'an-operator-token-of-at-least-32-characters';
const pool = socketPool();
afterAll(() => pool.closeAll());

describe('the chat page in frames (WEB_FRAME_ANCESTORS)', () => {
  it('may be framed only by the hub itself by default, with the matching X-Frame-Options', async () => {
    const hub = await startWebHub();
    try {
      for (const route of ['/', '/support']) {
        const res = await fetch(`${hub.url}${route}`);
        expect(res.status).toBe(200);
        const csp = res.headers.get('content-security-policy') ?? '';
        expect(csp).toMatch(/(^|; )frame-ancestors 'self'(;|$)/);
        expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      }
    } finally {
      await hub.stop();
    }
  });

  it('may also be framed by the origins listed, and then sends no X-Frame-Options (it cannot name them)', async () => {
    const web = loadWebConfig({ WEB_FRAME_ANCESTORS: 'https://shop.example, https://*.example.org:8443/' });
    const hub = await startWebHub({}, { frameAncestors: web.frameAncestors });
    try {
      const res = await fetch(`${hub.url}/`);
      expect(res.headers.get('content-security-policy')).toMatch(
        /(^|; )frame-ancestors 'self' https:\/\/shop\.example https:\/\/\*\.example\.org:8443(;|$)/,
      );
      expect(res.headers.get('x-frame-options')).toBeNull();
    } finally {
      await hub.stop();
    }
  });

  it('refuses a WEB_FRAME_ANCESTORS entry that is not an origin', () => {
    for (const bad of ["'none'", 'https://a.example; script-src *', 'https://a.example/path', '*']) {
      expect(() => loadWebConfig({ WEB_FRAME_ANCESTORS: bad }), bad).toThrow(WebConfigError);
    }
  });
});

describe('operator token failures (throttled per client address)', () => {
  let hub: WebHub;
  beforeAll(async () => {
    // One proxy in front: X-Forwarded-For names the client, so the test can be several clients.
    hub = await startWebHub({ adminToken: ADMIN_TOKEN, trustProxy: 1 });
  });
  afterAll(async () => {
    await hub?.stop();
  });

  const from = (address: string, token: string | undefined) => (method: string, route: string) =>
    adminClient(hub.url, token)(method, route, undefined, { 'x-forwarded-for': address });

  it(`answers 401 to ${ADMIN_FAILURES_PER_MINUTE} wrong tokens, then 429 with Retry-After to every operator request from that address`, async () => {
    for (let i = 0; i < ADMIN_FAILURES_PER_MINUTE; i++)
      expect((await from('198.51.100.7', `wrong-guess-${i}`)('GET', '/api/admin/sessions')).status).toBe(401);
    const refused = await from('198.51.100.7', 'wrong-guess-again')('GET', '/api/admin/sessions');
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe('too_many_failures');
    const wait = Number(refused.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(60);
    // Not even the right token is tried from there: a guess could not be told right from wrong.
    expect((await from('198.51.100.7', ADMIN_TOKEN)('GET', '/api/admin/sessions')).status).toBe(429);
    // Another address is not affected, nor are requests without a token counted as guesses.
    expect((await from('198.51.100.8', ADMIN_TOKEN)('GET', '/api/admin/sessions')).status).toBe(200);
    for (let i = 0; i < ADMIN_FAILURES_PER_MINUTE + 2; i++)
      expect((await from('198.51.100.9', undefined)('GET', '/api/admin/sessions')).status).toBe(401);
    expect((await from('198.51.100.9', ADMIN_TOKEN)('GET', '/api/admin/stats')).status).toBe(200);
  });

  // The routes that take an agent's credentials as well as ADMIN_TOKEN: each guard counts and refuses alike.
  it.each([
    ['agent management', '/api/admin/agents', '198.51.100.20'],
    ['the dashboard', '/api/admin/audit', '198.51.100.21'],
    ['outbound messages', `/api/admin/messages/${randomUUID()}`, '198.51.100.22'],
    ['broadcasts', `/api/admin/broadcasts/${randomUUID()}`, '198.51.100.23'],
  ])(
    'counts wrong tokens on %s (%s) too: past the limit the right token gets 429 there and on every operator route',
    async (_what, route, address) => {
      for (let i = 0; i < ADMIN_FAILURES_PER_MINUTE; i++)
        expect((await from(address, `wrong-guess-${i}`)('GET', route)).status).toBe(401);
      const refused = await from(address, 'wrong-guess-again')('GET', route);
      expect(refused.status).toBe(429);
      expect(refused.json.error.code).toBe('too_many_failures');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      for (const where of [route, '/api/admin/sessions', '/api/admin/agents', '/api/admin/audit'])
        expect((await from(address, ADMIN_TOKEN)('GET', where)).status, where).toBe(429);
    },
  );

  it("never counts an agent's own token as a guess, nor refuses it from a locked-out address", async () => {
    const boss = await createAgentVia(hub.url, ADMIN_TOKEN, {
      name: 'Boss',
      email: 'boss@example.com',
      role: 'admin',
      bots: ['*'],
    });
    for (let i = 0; i < ADMIN_FAILURES_PER_MINUTE + 2; i++)
      expect((await from('198.51.100.30', boss.token)('GET', '/api/admin/agents')).status).toBe(200);
    expect((await from('198.51.100.30', ADMIN_TOKEN)('GET', '/api/admin/sessions')).status).toBe(200);

    for (let i = 0; i < ADMIN_FAILURES_PER_MINUTE; i++)
      expect((await from('198.51.100.31', `wrong-guess-${i}`)('GET', '/api/admin/agents')).status).toBe(401);
    expect((await from('198.51.100.31', ADMIN_TOKEN)('GET', '/api/admin/agents')).status).toBe(429);
    expect((await from('198.51.100.31', boss.token)('GET', '/api/admin/agents')).status).toBe(200);
    expect((await from('198.51.100.31', boss.token)('GET', '/api/admin/audit')).status).toBe(200);
  });

  it('counts the socket address, not X-Forwarded-For, when TRUST_PROXY is not set', async () => {
    const direct = await startWebHub({ adminToken: ADMIN_TOKEN });
    try {
      for (let i = 0; i < ADMIN_FAILURES_PER_MINUTE; i++) {
        const res = await adminClient(direct.url, 'wrong')('GET', '/api/admin/sessions', undefined, {
          'x-forwarded-for': `203.0.113.${i}`,
        });
        expect(res.status).toBe(401);
      }
      const res = await adminClient(direct.url, ADMIN_TOKEN)('GET', '/api/admin/sessions', undefined, {
        'x-forwarded-for': '203.0.113.200',
      });
      expect(res.status).toBe(429);
    } finally {
      await direct.stop();
    }
  });
});

describe('text no store keeps (NUL, unpaired surrogates) on the REST API and the socket', () => {
  let hub: WebHub;
  beforeAll(async () => {
    hub = await startWebHub();
  });
  afterAll(async () => {
    await hub?.stop();
  });

  const userRows = async (sessionId: string) =>
    (
      await hub.hub.db.query(`SELECT content FROM messages WHERE session_id = $1 AND role = 'user'`, [
        sessionId,
      ])
    ).rows;

  it('answers 400 invalid_text for NUL or a lone surrogate in text or message_id, and for a long Idempotency-Key', async () => {
    const api = apiClient(hub.url);
    const s = await api.createSession();
    const cases: [string, Record<string, unknown>][] = [
      ['NUL in text', { text: 'a\u0000b' }],
      ['a lone high surrogate in text', { text: 'broken \ud83d' }],
      ['a lone low surrogate in text', { text: '\ude00 broken' }],
      ['NUL in message_id', { text: 'hi', message_id: 'm\u00001' }],
      ['a lone surrogate in message_id', { text: 'hi', message_id: 'm\ud8001' }],
    ];
    for (const [what, body] of cases) {
      const res = await api.call('POST', '/api/chat', { token: s.token, body });
      expect(res.status, what).toBe(400);
      expect(res.json.error.code, what).toBe('invalid_text');
    }
    const longKey = await api.call('POST', '/api/chat', {
      token: s.token,
      body: { text: 'hi' },
      headers: { 'idempotency-key': 'k'.repeat(1001) },
    });
    expect(longKey.status).toBe(400);
    expect(longKey.json.error.code).toBe('invalid_text');
    // A pair is a character, not a lone surrogate: it goes through untouched.
    const emoji = await api.chat(s.token, 'thanks 😀');
    expect(emoji.status).toBe(200);
    expect((await userRows(s.session_id)).map((r) => r.content)).toEqual(['thanks 😀']);
  });

  it('answers an invalid_text error frame on the socket (hello pageUrl, message text) and goes on', async () => {
    const socket = await pool.connect(hub);
    socket.send({ type: 'hello', pageUrl: 'https://shop.example/\ud800' });
    expect(await socket.nextOfType('error')).toMatchObject({ code: 'invalid_text' });
    socket.send({ type: 'hello', language: 'en\u0000' });
    expect(await socket.nextOfType('error')).toMatchObject({ code: 'invalid_text' });
    const welcome = await socket.hello({ pageUrl: 'https://shop.example/' });
    socket.send({ type: 'message', id: 'bad1', text: 'a\u0000b' });
    expect(await socket.nextOfType('error')).toMatchObject({ code: 'invalid_text', id: 'bad1' });
    socket.send({ type: 'message', id: 'bad2', text: 'lone \udfff' });
    expect(await socket.nextOfType('error')).toMatchObject({ code: 'invalid_text', id: 'bad2' });
    socket.send({ type: 'message', id: 'good', text: 'fine' });
    expect(await socket.nextOfType('ack')).toMatchObject({ id: 'good', status: 'accepted' });
    await socket.reply('echo fine #1');
    expect(socket.closeEvent).toBeUndefined();
    expect((await userRows(welcome.sessionId)).map((r) => r.content)).toEqual(['fine']);
  });
});

describe('a web session token on POST /api/chat', () => {
  let hub: WebHub;
  beforeAll(async () => {
    hub = await startWebHub();
  });
  afterAll(async () => {
    await hub?.stop();
  });

  it('is processed in the web session itself: the answer holds the reply, and the widget sees both', async () => {
    const socket = await pool.connect(hub);
    const welcome = await socket.hello();
    await socket.messagesThrough(1);
    const api = apiClient(hub.url);
    const res = await api.chat(welcome.token, 'from the API', { message_id: 'api-1' });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      envelope_id: `web:${welcome.sessionId}:api-1`,
      status: 'completed',
      replies: [{ role: 'assistant', text: 'echo from the API #1' }],
    });
    await socket.reply('echo from the API #1');
    expect(
      socket
        .messages()
        .filter((m) => m.role === 'user')
        .map((m) => [m.text, m.clientId]),
    ).toEqual([['from the API', 'api-1']]);
    // The session goes on: the socket can still talk in it.
    socket.send({ type: 'message', id: 'w1', text: 'and from the widget' });
    await socket.reply('echo and from the widget #2');
    expect(socket.frames.some((f) => f.type === 'ended')).toBe(false);
    const history = await api.history(welcome.token);
    expect(history.json.messages.map((m: { text: string }) => m.text)).toContain('echo from the API #1');
  });
});

describe('opening sessions (SESSION_CREATE_PER_MINUTE per client address)', () => {
  let hub: WebHub;
  beforeAll(async () => {
    hub = await startWebHub({ sessionCreatePerMinute: 3, trustProxy: 1 });
  });
  afterAll(async () => {
    await hub?.stop();
  });

  const sessionCount = async () =>
    Number((await hub.hub.db.query<{ n: string }>('SELECT count(*) AS n FROM sessions')).rows[0]!.n);

  it('answers 429 with Retry-After to POST /api/session past the limit, and opens nothing', async () => {
    const api = apiClient(hub.url);
    const open = (address: string) =>
      api.call('POST', '/api/session', { headers: { 'x-forwarded-for': address } });
    const before = await sessionCount();
    for (let i = 0; i < 3; i++) expect((await open('192.0.2.1')).status).toBe(201);
    const refused = await open('192.0.2.1');
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe('rate_limited');
    const wait = Number(refused.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(60);
    // The address before the proxy's own entry is the client: a forged first entry changes nothing.
    expect((await open('10.9.9.9, 192.0.2.1')).status).toBe(429);
    expect((await open('192.0.2.2')).status).toBe(201);
    expect(await sessionCount()).toBe(before + 4);
  });

  it('lets a socket open one session at a time, and refuses a hello past the address limit with retryAfterMs', async () => {
    const headers = { 'x-forwarded-for': '192.0.2.50' };
    const a = await pool.connect(hub, { headers });
    const first = await a.hello();
    // 200 hellos on one socket made 200 sessions: now the second is refused while the first is open.
    a.send({ type: 'hello' });
    expect(await a.nextOfType('error')).toMatchObject({ code: 'session_open' });
    a.send({ type: 'hello' });
    expect(await a.nextOfType('error')).toMatchObject({ code: 'session_open' });
    // Binding to a token is not opening a session.
    expect((await a.hello({ token: first.token })).sessionId).toBe(first.sessionId);
    // Once its session ended, the socket may open the next one (the widget's "New conversation").
    a.send({ type: 'end' });
    await a.nextOfType('ended');
    const second = await a.hello();
    expect(second.sessionId).not.toBe(first.sessionId);
    // Third for this address, on another socket; the fourth is over the limit.
    const b = await pool.connect(hub, { headers });
    await b.hello();
    const c = await pool.connect(hub, { headers });
    c.send({ type: 'hello' });
    const refused = await c.nextOfType('error');
    expect(refused).toMatchObject({ code: 'rate_limited' });
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(60_000);
    // The socket stays open and may resume a session it holds the token of.
    expect((await c.hello({ token: second.token })).sessionId).toBe(second.sessionId);
    // Another address is not affected.
    const d = await pool.connect(hub, { headers: { 'x-forwarded-for': '192.0.2.51' } });
    await d.hello();
  });

  it('holds the same limit on POST /api/session/authenticate', async () => {
    const api = apiClient(hub.url);
    const s = await api.createSession();
    const attempt = () =>
      api.call('POST', '/api/session/authenticate', {
        token: s.token,
        body: { jwt: 'a.b.c' },
        headers: { 'x-forwarded-for': '192.0.2.77' },
      });
    // Sign-in is not configured here: each attempt is refused as such, and still counted.
    for (let i = 0; i < 3; i++) expect((await attempt()).status).toBe(501);
    const refused = await attempt();
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe('rate_limited');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });
});

/** The HTTP answer to a widget socket handshake the hub refuses (a handshake it accepts fails this). */
function refusedHandshake(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('error', () => undefined);
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
      ws.terminate();
    });
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the handshake was accepted'));
    });
  });
}

describe('widget socket handshakes (WEB_CONNECTIONS_PER_MINUTE per client address)', () => {
  let hub: WebHub;
  beforeAll(async () => {
    hub = await startWebHub({ webConnectionsPerMinute: 3, trustProxy: 1 });
  });
  afterAll(async () => {
    await hub?.stop();
  });

  it('answers 429 with Retry-After past the limit; open sockets and other addresses go on', async () => {
    const headers = { 'x-forwarded-for': '192.0.2.80' };
    const open = [];
    for (let i = 0; i < 3; i++) open.push(await pool.connect(hub, { headers }));
    const refused = await refusedHandshake(hub.ws, headers);
    expect(refused.status).toBe(429);
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(60);
    // The address before the proxy's own entry is the client: a forged first entry changes nothing.
    expect((await refusedHandshake(hub.ws, { 'x-forwarded-for': '10.9.9.9, 192.0.2.80' })).status).toBe(429);
    const other = await pool.connect(hub, { headers: { 'x-forwarded-for': '192.0.2.81' } });
    await other.hello();
    for (const s of open) {
      await s.hello();
      s.send({ type: 'message', id: 'limited', text: 'still open' });
      await s.reply('echo still open #1');
    }
  });
});

describe('a replaced token (sign-in), on two gateways sharing one database and one Redis', () => {
  const SECRET = 'the-shop-and-the-hub-share-this-secret-too';
  const auth = { authJwtSecret: SECRET, authJwtIssuer: 'https://shop.example', authJwtAudience: 'hub' };
  const jwt = (sub: string) =>
    new SignJWT({ name: 'Ada' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(sub)
      .setIssuer(auth.authJwtIssuer)
      .setAudience(auth.authJwtAudience)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(SECRET));
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
      ...auth,
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

  it('closes every socket holding the old token with 4410, on both gateways; the signing socket goes on', async () => {
    const a = await pool.connect(one);
    const opened = await a.hello();
    await a.messagesThrough(1);
    const b = await pool.connect(two);
    await b.hello({ token: opened.token, lastSeq: 1 });
    const c = await pool.connect(one);
    await c.hello({ token: opened.token, lastSeq: 1 });

    a.send({ type: 'authenticate', jwt: await jwt('user-3') });
    const signedIn = await a.nextOfType('authenticated');
    expect(signedIn.token).not.toBe(opened.token);
    expect(await b.closed()).toEqual({ code: 4410, reason: 'the session token was replaced' });
    expect(await c.closed()).toEqual({ code: 4410, reason: 'the session token was replaced' });

    // The signed-in conversation goes on where the new token is, and nowhere else.
    a.send({ type: 'message', id: 'after', text: 'signed in now' });
    await a.reply('echo signed in now #1');
    expect(a.closeEvent).toBeUndefined();
    const stale = await pool.connect(two);
    stale.send({ type: 'hello', token: opened.token });
    expect((await stale.closed()).code).toBe(4401);
    const fresh = await pool.connect(two);
    expect((await fresh.hello({ token: signedIn.token })).sessionId).toBe(opened.sessionId);

    // A sign-in through the REST API replaces it again: both sockets holding it are closed.
    const res = await apiClient(one.url).call('POST', '/api/session/authenticate', {
      token: signedIn.token,
      body: { jwt: await jwt('user-3') },
    });
    expect(res.status).toBe(200);
    expect((await a.closed()).code).toBe(4410);
    expect((await fresh.closed()).code).toBe(4410);
  });
});

describe("the hub's own page keeps its session in a cookie", () => {
  let hub: WebHub;
  let proxied: WebHub;
  beforeAll(async () => {
    [hub, proxied] = await Promise.all([startWebHub(), startWebHub({ trustProxy: 1 })]);
  });
  afterAll(async () => {
    await Promise.all([hub?.stop(), proxied?.stop()]);
  });

  const open = (h: WebHub, headers: Record<string, string>, bot?: string) =>
    apiClient(h.url).call('POST', '/api/web/session', { headers, ...(bot ? { body: { bot } } : {}) });
  const tokenOf = (setCookie: string | null, bot = 'default') =>
    new RegExp(`^sb_${bot}=([A-Za-z0-9_-]{43});`).exec(setCookie ?? '')?.[1];

  it('opens a session whose token comes only as an HttpOnly, SameSite=Lax, 30-day cookie, for the hub itself only', async () => {
    const res = await open(hub, { origin: hub.url }, 'support');
    expect(res.status).toBe(201);
    expect(Object.keys(res.json).sort()).toEqual(['bot', 'session_id']);
    const cookie = res.headers.get('set-cookie') ?? '';
    const token = tokenOf(cookie, 'support');
    expect(token).toBeDefined();
    expect(cookie).toMatch(/; Max-Age=2592000/);
    expect(cookie).toMatch(/; Path=\//);
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Lax/);
    expect(cookie).not.toMatch(/Secure/);
    expect(res.text).not.toContain(token);
    // Another site's page, or no page at all, cannot have one made.
    expect((await open(hub, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await open(hub, {})).status).toBe(403);
  });

  it('marks the cookie Secure over TLS, believing X-Forwarded-Proto only with TRUST_PROXY', async () => {
    const forwarded = { 'x-forwarded-proto': 'https' };
    const direct = await open(hub, { origin: hub.url, ...forwarded });
    expect(direct.headers.get('set-cookie')).not.toMatch(/Secure/);
    const behindProxy = await open(proxied, { origin: proxied.url, ...forwarded });
    expect(behindProxy.headers.get('set-cookie')).toMatch(/; Secure/);
  });

  it('binds a socket of the hub page by its cookie, never sending the token; other origins and no cookie get 4401', async () => {
    const res = await open(hub, { origin: hub.url });
    const token = tokenOf(res.headers.get('set-cookie'))!;
    const cookie = `sb_default=${token}`;
    const a = await pool.connect(hub, { origin: hub.url, headers: { cookie } });
    const welcome = await a.hello({ cookie: true });
    expect(welcome).toMatchObject({ sessionId: res.json.session_id, resumed: true });
    expect(welcome.token).toBeUndefined();
    a.send({ type: 'message', id: 'c1', text: 'by cookie' });
    await a.reply('echo by cookie #1');
    // A second tab of the page: the same cookie, the same conversation.
    const b = await pool.connect(hub, { origin: hub.url, headers: { cookie } });
    await b.hello({ cookie: true });
    await b.messagesThrough(3);
    expect(JSON.stringify([...a.frames, ...b.frames])).not.toContain(token);
    // Over the cookie the page cannot sign in: the answer would carry a token.
    a.send({ type: 'authenticate', jwt: 'a.b.c' });
    expect((await a.nextOfType('error')).code).toBe('not_upgradable');

    // A page of another site whose socket the browser sends the cookie with: the cookie does not count.
    const foreign = await pool.connect(hub, { origin: 'https://evil.example', headers: { cookie } });
    foreign.send({ type: 'hello', cookie: true });
    expect((await foreign.closed()).code).toBe(4401);
    const none = await pool.connect(hub, { origin: hub.url });
    none.send({ type: 'hello', cookie: true });
    expect((await none.closed()).code).toBe(4401);
  });

  it('ends the session the cookie holds when the page asks for a new one ("New conversation")', async () => {
    const first = await open(hub, { origin: hub.url });
    const token = tokenOf(first.headers.get('set-cookie'))!;
    const tab = await pool.connect(hub, { origin: hub.url, headers: { cookie: `sb_default=${token}` } });
    await tab.hello({ cookie: true });
    const next = await open(hub, { origin: hub.url, cookie: `sb_default=${token}` });
    expect(next.status).toBe(201);
    expect(next.json.session_id).not.toBe(first.json.session_id);
    expect(await tab.nextOfType('ended')).toMatchObject({ sessionId: first.json.session_id });
    expect((await apiClient(hub.url).history(token)).status).toBe(401);
  });
});
