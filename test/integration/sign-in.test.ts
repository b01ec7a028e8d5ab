import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebAdapter, loadWebConfig } from '../../adapters/web/index.ts';
import type { VerifiedUser } from '../../src/auth/jwt.ts';
import { StaleTokenError, signInSession } from '../../src/auth/sign-in.ts';
import { hashToken, newToken } from '../../src/auth/token.ts';
import type { EnvelopeInput } from '../../src/envelope.ts';
import type { Db } from '../../src/store/db.ts';
import { assignIdentitySessions, createSession, loadSnapshot } from '../../src/store/sessions.ts';
import { assignIdentity, userForIdentity } from '../../src/store/users.ts';
import { type Backend, useTestDb } from '../helpers/database.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';
import { until } from '../helpers/until.ts';
import { TestSocket, wsUrl } from '../helpers/ws-client.ts';

const ISSUER = 'https://shop.example';
const AUDIENCE = 'switchboard-test';
const SECRET = 'the-host-site-and-the-hub-share-this-secret';
const ADMIN = 'admin-token-for-the-sign-in-tests';

async function jwt(
  claims: Record<string, unknown>,
  options: { secret?: string; audience?: string; exp?: number | string } = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '5m')
    .sign(new TextEncoder().encode(options.secret ?? SECRET));
}

describe('sign-in upgrade and identity linking (real PostgreSQL)', () => {
  let running: RunningHub;
  let api: ReturnType<typeof apiClient>;
  /** Every HTTP answer below, against the OpenAPI document. */
  let contract: ReturnType<typeof openApiContract>;
  const breaches: string[] = [];

  beforeAll(async () => {
    running = await startTestHub(
      {
        authJwtSecret: SECRET,
        authJwtIssuer: ISSUER,
        authJwtAudience: AUDIENCE,
        adminToken: ADMIN,
      },
      { adapters: [createWebAdapter(loadWebConfig({}))] },
    );
    contract = openApiContract(await (await fetch(`${running.url}/openapi.json`)).json());
    api = apiClient(running.url, { onExchange: (e) => breaches.push(...contract.check(e)) });
  });
  afterAll(async () => {
    await running?.stop();
  });

  const signIn = (token: string, body: unknown) =>
    api.call('POST', '/api/session/authenticate', { token, body });
  const sessionOf = (token: string) => api.call('GET', '/api/session', { token });
  const admin = (method: string, route: string, body?: unknown) =>
    api.call(method, route, { token: ADMIN, ...(body === undefined ? {} : { body }) });
  const row = async (sql: string, params: unknown[]) => (await running.hub.db.query(sql, params)).rows[0];

  it('signs the web widget in over its socket: an error for a bad JWT, then the new token, the conversation goes on', async () => {
    const socket = await TestSocket.open(wsUrl(running.url));
    socket.send({ type: 'hello', lastSeq: 0 });
    const welcome = await socket.nextOfType('welcome');
    socket.send({
      type: 'authenticate',
      jwt: await jwt({ sub: 'web-visitor' }, { audience: 'someone-else' }),
    });
    const refused = await socket.nextOfType('error');
    expect(refused.code).toBe('invalid_credentials');
    expect((await sessionOf(welcome.token)).json.auth_level).toBe('anonymous');

    socket.send({ type: 'authenticate', jwt: await jwt({ sub: 'web-visitor', name: 'Wen' }) });
    const signedIn = await socket.nextOfType('authenticated');
    expect(signedIn).toMatchObject({ sessionId: welcome.sessionId, authLevel: 'authenticated' });
    expect(signedIn.token).not.toBe(welcome.token);
    expect((await sessionOf(welcome.token)).status).toBe(401);
    const now = await sessionOf(signedIn.token);
    expect(now.json).toMatchObject({
      session_id: welcome.sessionId,
      auth_level: 'authenticated',
      user_id: signedIn.userId,
    });
    // The same socket goes on with the same conversation.
    const id = 'after-sign-in';
    socket.send({ type: 'message', id, text: 'hello again' });
    expect(await socket.next((f) => f.type === 'ack' && f.id === id, 'the ack')).toMatchObject({
      status: 'accepted',
    });
    await socket.next(
      (f) => f.type === 'message' && f.role === 'assistant' && f.inReplyTo?.endsWith(id),
      'the reply',
    );
    socket.ws.close();
  });

  it('upgrades an anonymous session in place: same history, new token, the old one dead, no expiry', async () => {
    const session = await api.createSession();
    const hello = await api.chat(session.token, 'hello');
    expect(hello.status).toBe(200);
    const before = await api.history(session.token);
    const versionBefore = Number(
      (await row('SELECT version FROM session_state WHERE session_id = $1', [session.session_id]))!.version,
    );

    const res = await signIn(session.token, {
      jwt: await jwt({
        sub: 'shop-user-1',
        name: 'Ada Lovelace',
        email: 'Ada@Example.com',
        email_verified: true,
      }),
    });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      session_id: session.session_id,
      token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      auth_level: 'authenticated',
      user_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    const token: string = res.json.token;
    expect(token).not.toBe(session.token);
    const userId: string = res.json.user_id;

    const state = await sessionOf(token);
    expect(state.status).toBe(200);
    expect(state.json).toMatchObject({
      session_id: session.session_id,
      auth_level: 'authenticated',
      user_id: userId,
      expires_at: null,
    });
    const after = await api.history(token);
    expect(after.json.messages).toEqual(before.json.messages);
    expect(after.json.messages.map((m: { text: string }) => m.text)).toContain('hello');

    for (const call of [
      sessionOf(session.token),
      api.history(session.token),
      api.chat(session.token, 'me?'),
    ]) {
      const refused = await call;
      expect(refused.status).toBe(401);
      expect(refused.json.error.code).toBe('unauthorized');
    }

    // The engine picks up the signed-in session (not a stale cached one): the turn keeps it unexpiring.
    const next = await api.chat(token, 'signed in now');
    expect(next.status).toBe(200);
    expect(next.json.replies[0].text).toBe('You said: signed in now (message #2 in this session)');
    expect((await sessionOf(token)).json).toMatchObject({ auth_level: 'authenticated', expires_at: null });

    expect(await row('SELECT display_name, email, external_id FROM users WHERE id = $1', [userId])).toEqual({
      display_name: 'Ada Lovelace',
      email: 'ada@example.com',
      external_id: 'shop-user-1',
    });
    expect(
      await row('SELECT user_id FROM user_identities WHERE channel = $1 AND native_id = $2', [
        'email',
        'ada@example.com',
      ]),
    ).toEqual({ user_id: userId });
    const event = await row('SELECT data FROM session_events WHERE session_id = $1 AND type = $2', [
      session.session_id,
      'session.authenticated',
    ]);
    expect(event!.data).toMatchObject({ userId, authLevel: 'authenticated', previousAuthLevel: 'anonymous' });
    const versionAfter = Number(
      (await row('SELECT version FROM session_state WHERE session_id = $1', [session.session_id]))!.version,
    );
    // The sign-in moved the version (any turn in flight recomputes), and so did the turn after it.
    expect(versionAfter).toBe(versionBefore + 2);
  });

  it('refuses bad JWTs with 401 and changes nothing', async () => {
    const session = await api.createSession();
    await api.chat(session.token, 'before');
    const bad = {
      'bad signature': await jwt({ sub: 'shop-user-2' }, { secret: `${SECRET}-not-quite` }),
      'wrong audience': await jwt({ sub: 'shop-user-2' }, { audience: 'someone-else' }),
      expired: await jwt({ sub: 'shop-user-2' }, { exp: Math.floor(Date.now() / 1000) - 120 }),
      'no sub': await jwt({ name: 'Nobody' }),
      garbage: 'a.b.c',
    };
    for (const [what, token] of Object.entries(bad)) {
      const res = await signIn(session.token, { jwt: token });
      expect(res.status, what).toBe(401);
      expect(res.json.error.code, what).toBe('invalid_credentials');
    }
    const state = await sessionOf(session.token);
    expect(state.status).toBe(200);
    expect(state.json).toMatchObject({ auth_level: 'anonymous', user_id: null });
    expect(state.json.expires_at).not.toBeNull();
    expect((await api.chat(session.token, 'still here')).status).toBe(200);
    expect(await row('SELECT count(*)::int AS n FROM users WHERE external_id = $1', ['shop-user-2'])).toEqual(
      {
        n: 0,
      },
    );

    const malformed = await signIn(session.token, { token: 'x' });
    expect(malformed.status).toBe(400);
    const noBearer = await api.call('POST', '/api/session/authenticate', { body: { jwt: bad.expired } });
    expect(noBearer.status).toBe(401);
    expect(noBearer.json.error.code).toBe('unauthorized');
  });

  it('lets exactly one of two concurrent sign-ins with the same token win', async () => {
    for (let round = 0; round < 5; round++) {
      const session = await api.createSession();
      const claims = await jwt({ sub: `racer-${round}` });
      const results = await Promise.all([
        signIn(session.token, { jwt: claims }),
        signIn(session.token, { jwt: claims }),
      ]);
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 401]);
      const winner = results.find((r) => r.status === 200)!;
      expect((await sessionOf(winner.json.token)).json.auth_level).toBe('authenticated');
    }
  });

  it('re-issues for the same sub, refuses another sub with 409, and says elevated when the JWT does', async () => {
    const session = await api.createSession();
    const first = await signIn(session.token, { jwt: await jwt({ sub: 'shop-user-3' }) });
    expect(first.status).toBe(200);
    const again = await signIn(first.json.token, {
      jwt: await jwt({ sub: 'shop-user-3', auth_level: 'elevated' }),
    });
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ user_id: first.json.user_id, auth_level: 'elevated' });
    expect((await sessionOf(first.json.token)).status).toBe(401);

    const other = await signIn(again.json.token, { jwt: await jwt({ sub: 'shop-user-4' }) });
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe('session_owned');
    expect((await sessionOf(again.json.token)).json).toMatchObject({
      user_id: first.json.user_id,
      auth_level: 'elevated',
    });
    expect(await row('SELECT count(*)::int AS n FROM users WHERE external_id = $1', ['shop-user-4'])).toEqual(
      {
        n: 0,
      },
    );
  });

  it('never takes a verified identity that another user owns', async () => {
    const a = await signIn((await api.createSession()).token, {
      jwt: await jwt({ sub: 'owner-a', phone_number: '+49 30 1234567', phone_number_verified: true }),
    });
    expect(a.status).toBe(200);
    const b = await signIn((await api.createSession()).token, {
      jwt: await jwt({ sub: 'owner-b', phone_number: '+49301234567', phone_number_verified: true }),
    });
    expect(b.status).toBe(200);
    expect(
      await row('SELECT user_id FROM user_identities WHERE channel = $1 AND native_id = $2', [
        'whatsapp',
        '+49301234567',
      ]),
    ).toEqual({ user_id: a.json.user_id });
  });

  describe('identity linking (operator API)', () => {
    const whatsappFrom = '+16505551234';
    let n = 0;

    /** A WhatsApp message as the adapter would queue it; resolves with its session once the turn is committed. */
    async function whatsappMessage(text: string): Promise<string> {
      n++;
      const envelope: EnvelopeInput = {
        id: `whatsapp:wamid.sign-in.${n}`,
        channel: 'whatsapp',
        bot: 'default',
        from: { id: whatsappFrom },
        text,
        receivedAt: new Date().toISOString(),
      };
      await running.hub.ingress.accept(envelope);
      const found = await until(
        async () =>
          (await row('SELECT session_id FROM messages WHERE envelope_id = $1', [envelope.id])) as
            | { session_id: string }
            | undefined,
        (r) => r !== undefined,
      );
      return found!.session_id;
    }

    const sessionUser = async (sessionId: string) =>
      (await row('SELECT user_id FROM sessions WHERE id = $1', [sessionId]))!.user_id as string;

    it('is closed without the operator token', async () => {
      const res = await api.call('GET', '/api/admin/users/00000000-0000-0000-0000-000000000000');
      expect(res.status).toBe(401);
      const wrong = await api.call(
        'POST',
        '/api/admin/users/00000000-0000-0000-0000-000000000000/identities',
        {
          token: 'not-the-admin-token',
          body: { channel: 'email', native_id: 'x@example.com' },
        },
      );
      expect(wrong.status).toBe(401);
      const unlink = await api.call(
        'DELETE',
        '/api/admin/users/00000000-0000-0000-0000-000000000000/identities/email/x%40example.com',
      );
      expect(unlink.status).toBe(401);
    });

    it('links, moves an identity with its open sessions from another user, and unlinks', async () => {
      const signedIn = await signIn((await api.createSession()).token, {
        jwt: await jwt({
          sub: 'linker',
          name: 'Grace Hopper',
          email: 'grace@example.com',
          email_verified: true,
        }),
      });
      const userId: string = signedIn.json.user_id;

      // First contact on WhatsApp: the engine makes a user of its own for the number.
      const sessionId = await whatsappMessage('hi from my phone');
      const phoneUser = await sessionUser(sessionId);
      expect(phoneUser).not.toBe(userId);
      const version = async () =>
        Number((await row('SELECT version FROM session_state WHERE session_id = $1', [sessionId]))!.version);
      const versionBefore = await version();

      const moved = await admin('POST', `/api/admin/users/${userId}/identities`, {
        channel: 'whatsapp',
        native_id: '+1 650 555 1234',
      });
      expect(moved.status).toBe(200);
      expect(moved.json).toEqual({
        user_id: userId,
        channel: 'whatsapp',
        native_id: whatsappFrom,
        moved_from: phoneUser,
        sessions_moved: 1,
      });
      expect(await sessionUser(sessionId)).toBe(userId);
      expect(await version()).toBe(versionBefore + 1);
      // The next message of that number belongs to the linked user (its cached session was dropped).
      expect(await whatsappMessage('me again')).toBe(sessionId);
      expect(await sessionUser(sessionId)).toBe(userId);

      const linked = await admin('POST', `/api/admin/users/${userId}/identities`, {
        channel: 'email',
        native_id: 'Grace.Work@Example.COM',
      });
      expect(linked.status).toBe(200);
      expect(linked.json).toEqual({
        user_id: userId,
        channel: 'email',
        native_id: 'grace.work@example.com',
        sessions_moved: 0,
      });

      const user = await admin('GET', `/api/admin/users/${userId}`);
      expect(user.status).toBe(200);
      expect(user.json).toMatchObject({
        id: userId,
        display_name: 'Grace Hopper',
        email: 'grace@example.com',
        external_id: 'linker',
      });
      expect(typeof user.json.created_at).toBe('string');
      expect(
        user.json.identities
          .map((i: { channel: string; native_id: string }) => `${i.channel}:${i.native_id}`)
          .sort(),
      ).toEqual(['email:grace.work@example.com', 'email:grace@example.com', `whatsapp:${whatsappFrom}`]);
      expect((await admin('GET', `/api/admin/users/${phoneUser}`)).json.identities).toEqual([]);

      const unlinked = await admin(
        'DELETE',
        `/api/admin/users/${userId}/identities/email/${encodeURIComponent('grace.work@example.com')}`,
      );
      expect(unlinked.status).toBe(200);
      expect(unlinked.json).toEqual({
        user_id: userId,
        channel: 'email',
        native_id: 'grace.work@example.com',
        unlinked: true,
      });
      const twice = await admin(
        'DELETE',
        `/api/admin/users/${userId}/identities/email/${encodeURIComponent('grace.work@example.com')}`,
      );
      expect(twice.status).toBe(404);
      const notHis = await admin(
        'DELETE',
        `/api/admin/users/${phoneUser}/identities/whatsapp/${encodeURIComponent(whatsappFrom)}`,
      );
      expect(notHis.status).toBe(404);
      expect(
        (await admin('GET', `/api/admin/users/${userId}`)).json.identities.map(
          (i: { channel: string; native_id: string }) => `${i.channel}:${i.native_id}`,
        ),
      ).not.toContain('email:grace.work@example.com');
    });

    it('answers 404 for unknown users and 400 for bad identities', async () => {
      const unknown = '3f1f2f6e-0000-4000-8000-000000000000';
      expect((await admin('GET', `/api/admin/users/${unknown}`)).status).toBe(404);
      expect((await admin('GET', '/api/admin/users/not-a-uuid')).status).toBe(404);
      expect(
        (
          await admin('POST', `/api/admin/users/${unknown}/identities`, {
            channel: 'email',
            native_id: 'a@b.example',
          })
        ).status,
      ).toBe(404);
      const known = (
        await signIn((await api.createSession()).token, { jwt: await jwt({ sub: 'validator' }) })
      ).json.user_id;
      for (const body of [
        { channel: 'fax', native_id: '123' },
        { channel: 'email', native_id: 'not an address' },
        { channel: 'whatsapp', native_id: 'call me maybe' },
        { channel: 'email' },
      ]) {
        const res = await admin('POST', `/api/admin/users/${known}/identities`, body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.json.error.code).toBe('invalid_request');
      }
    });
  });

  it('every HTTP answer above (sign-ins, identity links) matched the OpenAPI document', () => {
    const answered = new Set(
      contract.judged
        .filter((e) => e.status === 200 && e.responseBody !== undefined)
        .map(
          (e) =>
            `${e.method} ${e.path.replace(/[0-9a-f-]{36}/g, '{id}').replace(/identities\/.*$/, 'identities/…')}`,
        ),
    );
    for (const route of [
      'POST /api/session/authenticate',
      'GET /api/admin/users/{id}',
      'POST /api/admin/users/{id}/identities',
      'DELETE /api/admin/users/{id}/identities/…',
    ])
      expect(answered, route).toContain(route);
    expect(breaches).toEqual([]);
  });
});

describe('sign-in when no key is configured', () => {
  let running: RunningHub;
  beforeAll(async () => {
    running = await startTestHub();
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('answers 501 sign_in_disabled and leaves the session as it was', async () => {
    const api = apiClient(running.url);
    const session = await api.createSession();
    const res = await api.call('POST', '/api/session/authenticate', {
      token: session.token,
      body: { jwt: await jwt({ sub: 'anyone' }) },
    });
    expect(res.status).toBe(501);
    expect(res.json.error.code).toBe('sign_in_disabled');
    expect((await api.call('GET', '/api/session', { token: session.token })).json.auth_level).toBe(
      'anonymous',
    );
  });
});

describe.each<Backend>(['postgres', 'pglite'])('sign-in and identity store steps on %s', (backend) => {
  let db: Db;
  useTestDb(backend, (opened) => {
    db = opened;
  });

  const user: VerifiedUser = {
    subject: 'store-user',
    name: 'Store User',
    email: 'Store@Example.com',
    emailVerified: true,
    phoneNumber: undefined,
    phoneNumberVerified: false,
    authLevel: 'authenticated',
  };

  it('signs a token session in once, and the old token cannot do it again', async () => {
    const token = newToken();
    const { snapshot } = await createSession(db, {
      bot: 'default',
      channel: 'api',
      tokenHash: hashToken(token),
      expiresAt: new Date(Date.now() + 60_000),
    });
    const result = await signInSession(db, hashToken(token), user);
    expect(result).toMatchObject({ sessionId: snapshot.session.id, authLevel: 'authenticated' });
    expect(result.identities).toEqual([
      { channel: 'email', nativeId: 'store@example.com', result: 'linked' },
    ]);
    const after = await loadSnapshot(db, snapshot.session.id);
    expect(after!.session).toMatchObject({
      userId: result.userId,
      authLevel: 'authenticated',
      expiresAt: null,
    });
    expect(after!.state.version).toBe(snapshot.state.version + 1);
    await expect(signInSession(db, hashToken(token), user)).rejects.toBeInstanceOf(StaleTokenError);
    const again = await signInSession(db, hashToken(result.token), user);
    expect(again.userId).toBe(result.userId);
    expect(again.identities).toEqual([
      { channel: 'email', nativeId: 'store@example.com', result: 'already_linked' },
    ]);
  });

  it("moves an identity and its open anonymous sessions, threads included, and no one else's", async () => {
    const owner = await userForIdentity(db, { channel: 'email', nativeId: 'a_b@example.com' });
    const target = await userForIdentity(db, { channel: 'teams', nativeId: 'target-user' });
    const open = async (nativeKey: string, userId: string) =>
      (await createSession(db, { bot: 'default', channel: 'email', nativeKey, userId })).snapshot.session.id;
    const plain = await open('a_b@example.com', owner);
    const thread = await open('a_b@example.com#<root@example.com>', owner);
    // '_' would match any character in a LIKE pattern: this one is someone else's.
    const lookalike = await open('axb@example.com', owner);
    expect(
      await assignIdentity(db, { userId: target, channel: 'email', nativeId: 'a_b@example.com' }),
    ).toEqual({
      previousUserId: owner,
    });
    const moved = await db.transaction((tx) =>
      assignIdentitySessions(tx, { channel: 'email', nativeId: 'a_b@example.com', userId: target }),
    );
    expect(moved.sort()).toEqual([plain, thread].sort());
    expect((await loadSnapshot(db, plain))!.session.userId).toBe(target);
    expect((await loadSnapshot(db, thread))!.state.version).toBe(1);
    expect((await loadSnapshot(db, lookalike))!.session.userId).toBe(owner);
  });
});
