import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin.ts';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-cursor-tests-0123456789';

/** A cursor as the lists encode theirs: `<microseconds>.<id>` in base64url. */
const cursor = (text: string) => Buffer.from(text).toString('base64url');

/**
 * Cursors a client altered: each has the shape the lists hand out (digits, a dot, 36 characters
 * of a UUID's alphabet) but no real time or UUID in it, which PostgreSQL would refuse to cast.
 */
const ALTERED = [
  cursor(`99999999999999999999.${randomUUID()}`),
  cursor(`9223372036854775807.${randomUUID()}`),
  cursor(`-99999999999999999999.${randomUUID()}`),
  cursor(`1.${'-'.repeat(36)}`),
  cursor(`1.${'0'.repeat(36)}`),
];

/**
 * The lists paged by an opaque `before` cursor (the operator's sessions, an agent's
 * conversations) answer 400 `invalid_request` for one they did not hand out, never 500.
 */
describe('page cursors a client altered', () => {
  let running: RunningHub;
  let contract: ReturnType<typeof openApiContract>;
  const breaches: string[] = [];
  const onExchange = (e: Parameters<ReturnType<typeof openApiContract>['check']>[0]) =>
    breaches.push(...contract.check(e));

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN });
    contract = openApiContract(await (await fetch(`${running.url}/openapi.json`)).json());
    // Two sessions, so that a page of one hands out a cursor.
    const api = apiClient(running.url);
    await api.createSession();
    await api.createSession();
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('GET /api/admin/sessions: 400 for an altered cursor, its own cursors still page', async () => {
    const admin = adminClient(running.url, ADMIN_TOKEN, onExchange);
    for (const before of ALTERED) {
      const res = await admin('GET', `/api/admin/sessions?before=${before}`);
      expect({ before, status: res.status, body: res.json }).toEqual({
        before,
        status: 400,
        body: { error: { code: 'invalid_request', message: 'before: not a cursor this API handed out' } },
      });
    }
    const first = await admin('GET', '/api/admin/sessions?limit=1');
    expect(first.json.next_before).toEqual(expect.any(String));
    const second = await admin('GET', `/api/admin/sessions?limit=1&before=${first.json.next_before}`);
    expect(second.status).toBe(200);
    expect(second.json.sessions).toHaveLength(1);
    expect(second.json.sessions[0].session_id).not.toBe(first.json.sessions[0].session_id);
  });

  it('GET /api/agent/conversations: 400 for an altered cursor', async () => {
    const made = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Sue',
      email: 'sue@cursors.test',
      role: 'supervisor',
      bots: ['*'],
    });
    const agent = agentClient(running.url, { token: made.token, onExchange });
    for (const before of ALTERED) {
      const res = await agent.call('GET', `/api/agent/conversations?state=all&before=${before}`);
      expect({ before, status: res.status, body: res.json }).toEqual({
        before,
        status: 400,
        body: { error: { code: 'invalid_request', message: 'before: not a cursor this API handed out' } },
      });
    }
    const fine = await agent.call(
      'GET',
      `/api/agent/conversations?state=all&before=${cursor(`${Date.now() * 1000}.${randomUUID()}`)}`,
    );
    expect(fine.status).toBe(200);
  });

  it('every exchange above matched the OpenAPI document', () => {
    expect(contract.judged.length).toBeGreaterThan(ALTERED.length * 2);
    expect(breaches).toEqual([]);
  });
});
