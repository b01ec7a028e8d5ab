import fs from 'node:fs/promises';
import { type Schema, type SwitchboardClient, switchboardClient } from 'switchboard/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/database.ts';
import { apiClient } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';
import { ServerProcess } from '../helpers/server-process.ts';
import { until } from '../helpers/until.ts';

/**
 * The real server as a child process on the embedded database (what `npm start` runs with
 * nothing configured), restarted mid-test.
 */
describe('REST API end to end (child process, embedded PGlite)', () => {
  let dataDir: string;
  let server: ServerProcess;
  let api: ReturnType<typeof apiClient>;
  /** Every request and answer of this suite is checked against the hub's own OpenAPI document. */
  let contract: ReturnType<typeof openApiContract>;
  const breaches: string[] = [];
  const connect = (url: string) => {
    api = apiClient(url, { onExchange: (e) => breaches.push(...contract.check(e)) });
    typed = switchboardClient({ baseUrl: url });
    const sent = new Map<string, unknown>();
    typed.use({
      async onRequest({ id, request }) {
        if (request.body) sent.set(id, JSON.parse(await request.clone().text()));
      },
      async onResponse({ id, request, response }) {
        const body = await response.clone().text();
        const url = new URL(request.url);
        breaches.push(
          ...contract.check({
            method: request.method,
            path: url.pathname + url.search,
            status: response.status,
            ...(body ? { responseBody: JSON.parse(body) } : {}),
            ...(sent.has(id) ? { requestBody: sent.get(id) } : {}),
          }),
        );
        sent.delete(id);
      },
    });
  };
  /** The typed client (`switchboard/client`, generated from the same document). */
  let typed: SwitchboardClient;

  beforeAll(async () => {
    dataDir = await tempDir('sbt-e2e-');
    server = new ServerProcess({
      PORT: '0',
      DATA_DIR: dataDir,
      MAX_TEXT_BYTES: '1000',
      CHAT_WAIT_MS: '10000',
    });
    await server.start();
    contract = openApiContract(await (await fetch(`${server.url}/openapi.json`)).json());
    connect(server.url);
  });

  afterAll(async () => {
    await server?.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('creates a session, chats, reads the history; after a restart the token and history are all there', async () => {
    const created = await typed.POST('/api/session', { body: {} });
    expect(created.response.status).toBe(201);
    const session = created.data!;
    expect(session.session_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(session.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(session.expires_at ?? '')).toBeGreaterThan(Date.now());

    const auth = { headers: { authorization: `Bearer ${session.token}` } };
    const first = await typed.POST('/api/chat', { ...auth, body: { text: 'hello' } });
    expect(first.response.status).toBe(200);
    const completed = first.data as { status: string; replies: { text: string }[] };
    expect(completed.replies.map((r) => r.text)).toEqual(['You said: hello (message #1 in this session)']);
    const second = await api.chat(session.token, 'again');
    expect(second.json.replies[0].text).toBe('You said: again (message #2 in this session)');

    const before = await typed.GET('/api/session/messages', auth);
    expect(before.response.status).toBe(200);
    const texts = before.data!.messages.map((m) => `${m.role}:${m.text}`);
    expect(texts).toEqual([
      'system:session started',
      "assistant:Hello! I'm the Switchboard demo bot. Say anything and I'll echo it back.",
      'user:hello',
      'assistant:You said: hello (message #1 in this session)',
      'user:again',
      'assistant:You said: again (message #2 in this session)',
    ]);

    await server.stop('SIGTERM');
    await server.start();
    connect(server.url);

    const after = await typed.GET('/api/session/messages', auth);
    expect(after.response.status).toBe(200);
    expect(after.data!.messages).toEqual(before.data!.messages);
    const third = await api.chat(session.token, 'still me');
    expect(third.json.replies[0].text).toBe('You said: still me (message #3 in this session)');
    const state = await typed.GET('/api/session', auth);
    expect(state.data).toMatchObject({
      session_id: session.session_id,
      bot: 'default',
      message_count: 3,
      auth_level: 'anonymous',
    });
    expect(state.data!.state.variables).toEqual({ last_message: 'still me' });
  });

  it('pages the history', async () => {
    const session = await api.createSession();
    for (const t of ['a', 'b', 'c']) await api.chat(session.token, t);
    const page1 = await api.history(session.token, '?limit=3');
    expect(page1.json.messages.map((m: { seq: number }) => m.seq)).toEqual([1, 2, 3]);
    const page2 = await api.history(session.token, `?after=${page1.json.next_after}&limit=3`);
    expect(page2.json.messages.map((m: { seq: number }) => m.seq)).toEqual([4, 5, 6]);
    const latest = await api.history(session.token, '?before=9&limit=2');
    expect(latest.json.messages.map((m: { seq: number }) => m.seq)).toEqual([7, 8]);
  });

  it('keeps bots apart, and refuses an unknown bot with 404', async () => {
    const support = await api.createSession('support');
    expect(support.bot).toBe('support');
    const reply = await api.chat(support.token, 'my printer is on fire');
    expect(reply.json.replies[0].text).toBe('Thanks, a colleague will look at this. Is there anything else?');
    const unknown = await api.call('POST', '/api/session', { body: { bot: 'nope' } });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toEqual({ error: { code: 'unknown_bot', message: 'there is no bot named "nope"' } });
  });

  it("never lets session A's token read or write session B", async () => {
    const a = await api.createSession();
    const b = await api.createSession();
    await api.chat(b.token, 'secret of b');
    const readA = await api.history(a.token);
    expect(readA.json.session_id).toBe(a.session_id);
    expect(JSON.stringify(readA.json)).not.toContain('secret of b');
    const stateA = await api.call('GET', '/api/session', { token: a.token });
    expect(stateA.json.session_id).toBe(a.session_id);
  });

  it('processes a resend with the same message id once', async () => {
    const s = await api.createSession();
    const one = await api.chat(s.token, 'pay 10 EUR', { message_id: 'client-42' });
    const two = await api.chat(s.token, 'pay 10 EUR', { message_id: 'client-42' });
    expect(one.status).toBe(200);
    expect(two.status).toBe(200);
    expect(two.json.duplicate).toBe(true);
    expect(two.json.replies).toEqual(
      one.json.replies.map((r: Record<string, unknown>) => ({ ...r, delivery_status: 'sent' })),
    );
    const history = await api.history(s.token);
    expect(history.json.messages.filter((m: { role: string }) => m.role === 'user')).toHaveLength(1);
  });

  it('answers 202 at once with ?wait=false, and the reply lands in the history', async () => {
    const s = await api.createSession();
    const res = await api.chat(s.token, 'later', {}, '?wait=false');
    expect(res.status).toBe(202);
    expect(res.json.status).toBe('queued');
    const history = await until(
      () => api.history(s.token),
      (h) => h.json.messages.some((m: { text: string }) => m.text.startsWith('You said: later')),
      10_000,
    );
    expect(history.status).toBe(200);
  });

  describe('bad input gets a clear JSON error and changes nothing', () => {
    let token: string;
    beforeAll(async () => {
      token = (await api.createSession()).token;
    });

    const expectError = (res: { status: number; json: Schema<'Error'> }, status: number, code: string) => {
      expect(res.status).toBe(status);
      expect(res.json.error.code).toBe(code);
      expect(typeof res.json.error.message).toBe('string');
      expect(res.json.error.message.length).toBeGreaterThan(5);
    };

    it('malformed JSON → 400 invalid_json', async () => {
      expectError(
        await api.call('POST', '/api/chat', {
          token,
          raw: '{"text": ',
          headers: { 'content-type': 'application/json' },
        }),
        400,
        'invalid_json',
      );
      expectError(await api.call('POST', '/api/session', { raw: '{nope' }), 400, 'invalid_json');
    });

    it('wrong types and unknown fields → 400 invalid_request', async () => {
      expectError(await api.chat(token, 42 as unknown as string), 400, 'invalid_request');
      expectError(await api.call('POST', '/api/chat', { token, body: {} }), 400, 'invalid_request');
      expectError(await api.call('POST', '/api/chat', { token, body: ['text'] }), 400, 'invalid_request');
      expectError(
        await api.call('POST', '/api/chat', { token, body: { text: 'x', extra: 1 } }),
        400,
        'invalid_request',
      );
      expectError(await api.call('POST', '/api/session', { body: { bot: 7 } }), 400, 'invalid_request');
      expectError(await api.history(token, '?limit=abc'), 400, 'invalid_request');
      expectError(await api.history(token, '?limit=100000'), 400, 'invalid_request');
      expectError(await api.chat(token, '   '), 400, 'empty_text');
    });

    it('text over the limit → 413 text_too_long; a body over the limit → 413 payload_too_large', async () => {
      expectError(await api.chat(token, 'x'.repeat(1001)), 413, 'text_too_long');
      expectError(await api.chat(token, 'é'.repeat(501)), 413, 'text_too_long');
      expect((await api.chat(token, 'x'.repeat(1000))).status).toBe(200);
      expectError(
        await api.call('POST', '/api/chat', { token, raw: JSON.stringify({ text: 'x'.repeat(2_000_000) }) }),
        413,
        'payload_too_large',
      );
    });

    it('wrong method → 405 with Allow; unknown path → 404', async () => {
      const res = await api.call('PUT', '/api/chat', { token });
      expectError(res, 405, 'method_not_allowed');
      expect(res.headers.get('allow')).toContain('POST');
      expectError(await api.call('PATCH', '/api/session', { token }), 405, 'method_not_allowed');
      expectError(await api.call('GET', '/api/nothing-here'), 404, 'not_found');
    });

    it('missing, malformed, unknown, ended tokens → 401', async () => {
      expectError(await api.call('GET', '/api/session'), 401, 'unauthorized');
      expectError(
        await api.call('GET', '/api/session', { headers: { authorization: 'Basic abc' } }),
        401,
        'unauthorized',
      );
      expectError(await api.call('GET', '/api/session', { token: 'short' }), 401, 'unauthorized');
      expectError(await api.call('GET', '/api/session', { token: 'A'.repeat(43) }), 401, 'unauthorized');
      const doomed = await api.createSession();
      expect((await api.call('DELETE', '/api/session', { token: doomed.token })).status).toBe(200);
      expectError(await api.call('GET', '/api/session', { token: doomed.token }), 401, 'unauthorized');
      expectError(await api.chat(doomed.token, 'hello?'), 401, 'unauthorized');
    });

    it('bad input changed nothing, and the process is still serving', async () => {
      const history = await api.history(token);
      const users = history.json.messages.filter((m: { role: string }) => m.role === 'user');
      expect(users.map((m: { text: string }) => m.text)).toEqual(['x'.repeat(1000)]);
      expect((await api.call('GET', '/healthz')).status).toBe(200);
    });
  });

  it('reports health, readiness and metrics', async () => {
    expect((await api.call('GET', '/healthz')).json).toEqual({ status: 'ok' });
    const ready = await api.call('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: 'ready', checks: { database: 'ok', queue: 'ok' } });
    const metrics = await api.call('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/switchboard_messages_in_total\{channel="api"\} \d+/);
    expect(metrics.text).toMatch(/switchboard_messages_out_total\{channel="api"\} \d+/);
    expect(metrics.text).toContain('switchboard_engine_turn_seconds_bucket');
    expect(metrics.text).toMatch(/switchboard_active_sessions\{bot="default",channel="api"\} \d+/);
  });

  it('every request and answer above matched the OpenAPI document', () => {
    expect(contract.judged.length).toBeGreaterThan(40);
    // Typed and untyped calls both went through the check, errors included.
    expect(contract.judged.some((e) => e.status === 400)).toBe(true);
    expect(contract.judged.some((e) => e.path.startsWith('/api/chat') && e.status === 202)).toBe(true);
    expect(breaches).toEqual([]);
  });

  it('logs no token', () => {
    expect(server.output.join('')).not.toMatch(/"token":"[A-Za-z0-9_-]{43}"/);
  });
});
