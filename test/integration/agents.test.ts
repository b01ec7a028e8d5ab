import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-agent-tests-0123456789';
const PASSWORD = 'correct horse battery';

describe('agent accounts, sign-in and management', () => {
  let running: RunningHub;
  let url: string;
  /** Every exchange of these tests is checked against the hub's OpenAPI document. */
  let contract: ReturnType<typeof openApiContract>;
  const breaches: string[] = [];
  const client = (auth: { token?: string } = {}) =>
    agentClient(url, { ...auth, onExchange: (e) => breaches.push(...contract.check(e)) });
  const admin = () => client({ token: ADMIN_TOKEN });

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN });
    url = running.url;
    contract = openApiContract(await (await fetch(`${url}/openapi.json`)).json());
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('creates, lists, reads, changes and deletes agents with the operator token', async () => {
    const created = await admin().call('POST', '/api/admin/agents', {
      body: {
        name: 'Ana',
        email: 'ana@example.com',
        password: PASSWORD,
        role: 'agent',
        bots: ['default'],
        queues: ['billing'],
        capacity: 3,
      },
    });
    expect(created.status).toBe(201);
    expect(Object.keys(created.json).sort()).toEqual(['agent_id', 'token']);
    expect(created.json.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const id = created.json.agent_id as string;

    const stored = await running.hub.db.query<{ password_hash: string; token_hash: Buffer }>(
      'SELECT password_hash, token_hash FROM agents WHERE id = $1',
      [id],
    );
    expect(stored.rows[0]!.password_hash).toMatch(/^\$argon2id\$/);
    expect(stored.rows[0]!.token_hash.toString('base64url')).not.toBe(created.json.token);

    const listed = await admin().call('GET', '/api/admin/agents');
    expect(listed.status).toBe(200);
    const row = listed.json.agents.find((a: { agent_id: string }) => a.agent_id === id);
    expect(row).toMatchObject({
      name: 'Ana',
      role: 'agent',
      bots: ['default'],
      queues: ['billing'],
      capacity: 3,
    });
    expect(JSON.stringify(listed.json)).not.toMatch(/argon2|password|token_hash/);

    const patched = await admin().call('PATCH', `/api/admin/agents/${id}`, {
      body: { capacity: 7, role: 'supervisor' },
    });
    expect(patched.status).toBe(200);
    expect(patched.json).toMatchObject({ capacity: 7, role: 'supervisor' });
    expect((await admin().call('GET', `/api/admin/agents/${id}`)).json.capacity).toBe(7);

    const duplicate = await admin().call('POST', '/api/admin/agents', {
      body: { name: 'Ana 2', email: 'ANA@example.com', password: PASSWORD },
    });
    expect(duplicate.status).toBe(409);

    expect((await admin().call('DELETE', `/api/admin/agents/${id}`)).status).toBe(200);
    expect((await admin().call('GET', `/api/admin/agents/${id}`)).status).toBe(404);
    expect((await admin().call('GET', `/api/admin/agents/${randomUUID()}`)).status).toBe(404);
  });

  it('refuses bad input with 400 and unauthenticated callers with 401', async () => {
    const bad = await admin().call('POST', '/api/admin/agents', {
      body: { name: 'x', email: 'not-an-address', password: 'short' },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('invalid_request');
    expect((await client().call('GET', '/api/admin/agents')).status).toBe(401);
    expect((await client({ token: 'wrong' }).call('GET', '/api/admin/agents')).status).toBe(401);
  });

  it('a new token replaces the old one; an admin agent manages agents, a supervisor may not', async () => {
    const boss = await createAgentVia(url, ADMIN_TOKEN, {
      name: 'Boss',
      email: 'boss@example.com',
      role: 'admin',
    });
    const sup = await createAgentVia(url, ADMIN_TOKEN, {
      name: 'Sup',
      email: 'sup@example.com',
      role: 'supervisor',
    });
    expect((await client({ token: boss.token }).call('GET', '/api/admin/agents')).status).toBe(200);
    expect((await client({ token: sup.token }).call('GET', '/api/admin/agents')).status).toBe(403);

    const renewed = await client({ token: boss.token }).call(
      'POST',
      `/api/admin/agents/${sup.agent_id}/token`,
    );
    expect(renewed.status).toBe(200);
    expect(renewed.json.token).not.toBe(sup.token);
    expect((await client({ token: sup.token }).call('GET', '/api/agent/me')).status).toBe(401);
    const me = await client({ token: renewed.json.token }).call('GET', '/api/agent/me');
    expect(me.status).toBe(200);
    expect(me.json.agent_id).toBe(sup.agent_id);
  });

  it('signs in with an HttpOnly SameSite=Strict cookie, and signs out', async () => {
    const { agent_id } = await createAgentVia(url, ADMIN_TOKEN, {
      name: 'Bo',
      email: 'bo@example.com',
      bots: ['default'],
    });
    const browser = client();
    const res = await browser.login('BO@example.com', PASSWORD);
    expect(res.status).toBe(200);
    expect(res.json.agent_id).toBe(agent_id);
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^sb_agent=[A-Za-z0-9_-]{43};/);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    expect((await browser.call('GET', '/api/agent/me')).json.agent_id).toBe(agent_id);

    const stored = await running.hub.db.query(
      'SELECT count(*)::int AS n FROM agent_logins WHERE agent_id = $1',
      [agent_id],
    );
    expect(stored.rows[0]).toEqual({ n: 1 });

    const out = await browser.call('POST', '/api/agent/logout', { headers: { 'x-requested-with': 'fetch' } });
    expect(out.status).toBe(200);
    expect((await browser.call('GET', '/api/agent/me')).status).toBe(401);
  });

  it('a cookie alone cannot change anything: the CSRF header is required and a foreign Origin refused', async () => {
    await createAgentVia(url, ADMIN_TOKEN, { name: 'Cy', email: 'cy@example.com', bots: ['default'] });
    const browser = client();
    expect((await browser.login('cy@example.com', PASSWORD)).status).toBe(200);
    const noHeader = await browser.call('PUT', '/api/agent/status', { body: { status: 'available' } });
    expect(noHeader.status).toBe(403);
    expect(noHeader.json.error.code).toBe('csrf');
    const foreign = await browser.call('PUT', '/api/agent/status', {
      body: { status: 'available' },
      headers: { 'x-requested-with': 'fetch', origin: 'https://evil.example' },
    });
    expect(foreign.status).toBe(403);
    expect(foreign.json.error.code).toBe('cross_origin');
    const ok = await browser.call('PUT', '/api/agent/status', {
      body: { status: 'available' },
      headers: { 'x-requested-with': 'fetch', origin: url },
    });
    expect(ok.status).toBe(200);
    expect(ok.json.status).toBe('available');
    // A cross-site login form is refused too.
    const login = await client().call('POST', '/api/agent/login', {
      body: { email: 'cy@example.com', password: PASSWORD },
      headers: { origin: 'https://evil.example' },
    });
    expect(login.status).toBe(403);
  });

  it('throttles wrong passwords with 429 and Retry-After, even when the right one follows', async () => {
    await createAgentVia(url, ADMIN_TOKEN, { name: 'Di', email: 'di@example.com' });
    const browser = client();
    for (let i = 0; i < 5; i++)
      expect((await browser.login('di@example.com', `wrong ${i}`)).status).toBe(401);
    const throttled = await browser.login('di@example.com', PASSWORD);
    expect(throttled.status).toBe(429);
    expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
    // An unknown address is throttled the same way (and answers like a wrong password before).
    expect((await browser.login('nobody@example.com', 'whatever')).status).toBe(401);
  });

  it('agent tokens are refused on session routes and session tokens on agent routes (401)', async () => {
    const { token } = await createAgentVia(url, ADMIN_TOKEN, { name: 'Ed', email: 'ed@example.com' });
    const api = apiClient(url);
    const session = await api.createSession();
    expect((await api.history(token)).status).toBe(401);
    expect((await api.chat(token, 'hi', {}, '?wait=false')).status).toBe(401);
    expect((await client({ token: session.token }).call('GET', '/api/agent/me')).status).toBe(401);
    expect((await client({ token: session.token }).call('GET', '/api/agent/conversations')).status).toBe(401);
  });

  it('every exchange above matched the OpenAPI document', () => {
    expect(contract.judged.length).toBeGreaterThan(20);
    expect(breaches).toEqual([]);
  });
});
