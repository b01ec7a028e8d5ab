import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FAILURES_PER_IP } from '../../src/agents/login-throttle.ts';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-proxy-tests-0123456789';
const PASSWORD = 'correct horse battery';

/** The request headers one proxy in front of the hub adds for a client at `address`. */
const forwardedFor = (address: string, extra: Record<string, string> = {}) => ({
  'x-forwarded-for': address,
  ...extra,
});

describe('the agent API behind one reverse proxy (TRUST_PROXY=1)', () => {
  let running: RunningHub;
  let url: string;

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN, trustProxy: 1 });
    url = running.url;
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('counts failed sign-ins per forwarded client address: one address locked out does not lock out another', async () => {
    await createAgentVia(url, ADMIN_TOKEN, { name: 'Fay', email: 'fay@example.com', bots: ['default'] });
    const stranger = agentClient(url);
    // Each failure for another e-mail address, so only the client address's count can close.
    for (let i = 0; i < MAX_FAILURES_PER_IP; i++) {
      const res = await stranger.call('POST', '/api/agent/login', {
        body: { email: `nobody-${i}@example.com`, password: 'wrong' },
        headers: forwardedFor('198.51.100.1'),
      });
      expect(res.status).toBe(401);
    }
    const throttled = await stranger.call('POST', '/api/agent/login', {
      body: { email: 'fay@example.com', password: PASSWORD },
      headers: forwardedFor('198.51.100.1'),
    });
    expect(throttled.status).toBe(429);

    const fay = await agentClient(url).call('POST', '/api/agent/login', {
      body: { email: 'fay@example.com', password: PASSWORD },
      headers: forwardedFor('198.51.100.2'),
    });
    expect(fay.status).toBe(200);
  });

  it('writes the forwarded client address to the audit log for the agent API and the dashboard', async () => {
    const { session_id } = await apiClient(url).createSession();
    const gil = await createAgentVia(url, ADMIN_TOKEN, {
      name: 'Gil',
      email: 'gil@example.com',
      role: 'supervisor',
      bots: ['default'],
    });
    const read = await agentClient(url, { token: gil.token }).call(
      'GET',
      `/api/agent/conversations/${session_id}`,
      {
        headers: forwardedFor('198.51.100.3'),
      },
    );
    expect(read.status).toBe(200);
    const inspected = await agentClient(url, { token: gil.token }).call(
      'GET',
      `/api/admin/transcripts/${session_id}`,
      { headers: forwardedFor('198.51.100.4') },
    );
    expect(inspected.status).toBe(200);

    const { rows } = await running.hub.db.query<{ via: string; ip: string }>(
      'SELECT via, ip FROM transcript_reads WHERE session_id = $1 AND agent_id = $2 ORDER BY id',
      [session_id, gil.agent_id],
    );
    expect(rows).toEqual([
      { via: 'agent-api', ip: '198.51.100.3' },
      { via: 'admin-api', ip: '198.51.100.4' },
    ]);
  });
});
