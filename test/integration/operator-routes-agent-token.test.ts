import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_FAILURES_PER_MINUTE } from '../../src/http/admin-auth.ts';
import { adminClient } from '../helpers/admin.ts';
import { createAgentVia } from '../helpers/agents.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-agent-token-tests-012345';

/**
 * The routes only ADMIN_TOKEN opens (sessions, statistics, erasure, identity links), called with
 * an agent's own valid token: 403 `forbidden` (credentials without the right), and no guess at
 * ADMIN_TOKEN, so however often an agent's script does it, the operator at the same address is
 * not locked out. A token that is nobody's stays a counted 401.
 */
describe('operator-only routes and an agent token', () => {
  let running: RunningHub;
  let contract: ReturnType<typeof openApiContract>;
  const breaches: string[] = [];

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN });
    contract = openApiContract(await (await fetch(`${running.url}/openapi.json`)).json());
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('answers 403 forbidden, uncounted, and the operator is let in after more of them than the throttle allows', async () => {
    const made = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Ada',
      email: 'ada@operator-routes.test',
      role: 'admin',
      bots: ['*'],
    });
    const asAgent = adminClient(running.url, made.token, (e) => breaches.push(...contract.check(e)));
    const routes: [string, string][] = [
      ['GET', '/api/admin/sessions'],
      ['GET', `/api/admin/sessions/${randomUUID()}`],
      ['GET', '/api/admin/stats'],
      ['DELETE', `/api/users/${randomUUID()}`],
      ['GET', `/api/admin/users/${randomUUID()}`],
    ];
    const answers = [];
    for (let n = 0; n <= ADMIN_FAILURES_PER_MINUTE; n++) {
      const [method, path] = routes[n % routes.length]!;
      const res = await asAgent(method, path);
      answers.push({ route: `${method} ${path}`, status: res.status, code: res.json?.error?.code });
    }
    expect(answers).toEqual(answers.map(({ route }) => ({ route, status: 403, code: 'forbidden' })));

    const operator = await adminClient(running.url, ADMIN_TOKEN)('GET', '/api/admin/sessions');
    expect(operator.status).toBe(200);
    expect(breaches).toEqual([]);
  });

  it('still answers 401 to a token that is nobody’s', async () => {
    const res = await adminClient(running.url, 'x'.repeat(43))('GET', '/api/admin/sessions');
    expect({ status: res.status, code: res.json.error.code }).toEqual({ status: 401, code: 'unauthorized' });
  });
});
