import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-admin-scope-tests-0123456789';
const CONFIG = path.join(REPO_ROOT, 'test/fixtures/handoff');

describe('an admin agent of some bots manages only the agents of those bots', () => {
  let running: RunningHub;
  let url: string;
  const operator = () => agentClient(url, { token: ADMIN_TOKEN });

  async function agent(name: string, bots: string[], role = 'agent') {
    const email = `${name.toLowerCase()}-${randomUUID().slice(0, 8)}@example.com`;
    const made = await createAgentVia(url, ADMIN_TOKEN, { name, email, bots, role });
    return { id: made.agent_id, token: made.token, email };
  }

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN, configDir: CONFIG });
    url = running.url;
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('sees, changes, renews and removes only agents of its bots, and grants no other bot', async () => {
    const lead = await agent('Lead', ['helpdesk'], 'admin');
    const colleague = await agent('Colleague', ['helpdesk']);
    const stranger = await agent('Stranger', ['quick']);
    const everywhere = await agent('Everywhere', ['*'], 'supervisor');
    const asLead = agentClient(url, { token: lead.token });

    const listed = await asLead.call('GET', '/api/admin/agents');
    expect(listed.status).toBe(200);
    const ids = (listed.json.agents as { agent_id: string }[]).map((a) => a.agent_id);
    expect(ids).toEqual(expect.arrayContaining([lead.id, colleague.id]));
    expect(ids).not.toContain(stranger.id);
    expect(ids).not.toContain(everywhere.id);

    // Agents of other bots, or of every bot, are not there as far as it can tell.
    for (const other of [stranger, everywhere]) {
      expect((await asLead.call('GET', `/api/admin/agents/${other.id}`)).status).toBe(404);
      const patched = await asLead.call('PATCH', `/api/admin/agents/${other.id}`, {
        body: { role: 'admin' },
      });
      expect(patched.status).toBe(404);
      expect((await asLead.call('POST', `/api/admin/agents/${other.id}/token`)).status).toBe(404);
      expect((await asLead.call('DELETE', `/api/admin/agents/${other.id}`)).status).toBe(404);
    }
    // Untouched: the stranger's token still works.
    expect((await agentClient(url, { token: stranger.token }).call('GET', '/api/agent/me')).status).toBe(200);

    // It cannot widen its own reach, nor give anyone a bot it does not serve.
    for (const bots of [['*'], ['helpdesk', 'quick']]) {
      const widened = await asLead.call('PATCH', `/api/admin/agents/${lead.id}`, { body: { bots } });
      expect(widened.status).toBe(403);
      expect(widened.json.error.code).toBe('forbidden');
      expect(
        (await asLead.call('PATCH', `/api/admin/agents/${colleague.id}`, { body: { bots } })).status,
      ).toBe(403);
      const created = await asLead.call('POST', '/api/admin/agents', {
        body: {
          name: 'New',
          email: `new-${randomUUID().slice(0, 8)}@example.com`,
          password: 'correct horse battery',
          bots,
        },
      });
      expect(created.status).toBe(403);
    }
    expect((await operator().call('GET', `/api/admin/agents/${lead.id}`)).json.bots).toEqual(['helpdesk']);

    // Within its bots it manages as before.
    const renamed = await asLead.call('PATCH', `/api/admin/agents/${colleague.id}`, {
      body: { name: 'Colleague B' },
    });
    expect(renamed.status).toBe(200);
    expect(renamed.json.name).toBe('Colleague B');
    const created = await asLead.call('POST', '/api/admin/agents', {
      body: {
        name: 'Newcomer',
        email: `newcomer-${randomUUID().slice(0, 8)}@example.com`,
        password: 'correct horse battery',
        bots: ['helpdesk'],
      },
    });
    expect(created.status).toBe(201);
    expect((await asLead.call('POST', `/api/admin/agents/${colleague.id}/token`)).status).toBe(200);
    expect((await asLead.call('DELETE', `/api/admin/agents/${created.json.agent_id}`)).status).toBe(200);
  });

  it('an admin of every bot, and the operator token, manage everyone', async () => {
    const chief = await agent('Chief', ['*'], 'admin');
    const stranger = await agent('Far', ['quick']);
    for (const client of [agentClient(url, { token: chief.token }), operator()]) {
      const ids = ((await client.call('GET', '/api/admin/agents')).json.agents as { agent_id: string }[]).map(
        (a) => a.agent_id,
      );
      expect(ids).toEqual(expect.arrayContaining([chief.id, stranger.id]));
      expect(
        (await client.call('PATCH', `/api/admin/agents/${stranger.id}`, { body: { bots: ['*'] } })).status,
      ).toBe(200);
    }
  });
});
