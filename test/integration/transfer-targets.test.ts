import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-transfer-target-tests-0123';
const CONFIG = path.join(REPO_ROOT, 'test/fixtures/handoff');

type Target = {
  agent_id: string;
  name: string;
  status: string;
  open_conversations: number;
  capacity: number;
};

/** `GET /api/agent/conversations/{id}/transfer-targets`: who an agent can hand a conversation to. */
describe('transfer targets', () => {
  let running: RunningHub;
  let url: string;
  let api: ReturnType<typeof apiClient>;
  let contract: ReturnType<typeof openApiContract>;
  const breaches: string[] = [];
  const onExchange = (e: Parameters<ReturnType<typeof openApiContract>['check']>[0]) =>
    breaches.push(...contract.check(e));

  async function agent(name: string, extra: Record<string, unknown> = {}) {
    const made = await createAgentVia(url, ADMIN_TOKEN, {
      name,
      email: `${name.toLowerCase().replace(/\W/g, '')}-${randomUUID().slice(0, 8)}@example.com`,
      bots: ['helpdesk'],
      ...extra,
    });
    return { id: made.agent_id, client: agentClient(url, { token: made.token, onExchange }) };
  }

  const setStatus = async (a: { client: ReturnType<typeof agentClient> }, status: string) =>
    expect((await a.client.call('PUT', '/api/agent/status', { body: { status } })).status).toBe(200);

  /** A helpdesk person who asked for a human: their conversation waits for an agent. */
  async function waiting(): Promise<string> {
    const person = await api.createSession('helpdesk');
    expect((await api.chat(person.token, 'human')).status).toBe(200);
    return person.session_id;
  }

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN, configDir: CONFIG });
    url = running.url;
    api = apiClient(url, { onExchange });
    contract = openApiContract(await (await fetch(`${url}/openapi.json`)).json());
  });
  afterAll(async () => {
    await running?.stop();
  });

  it("lists the bot's agents with status and load, no one else's and nothing personal; refuses those who may not open the conversation", async () => {
    const ana = await agent('Ana Holder', { capacity: 3 });
    const bea = await agent('Bea Busy', { capacity: 1 });
    const cal = await agent('Cal Everywhere', { bots: ['*'], capacity: 4 });
    const quin = await agent('Quin Quick', { bots: ['quick'] });
    const sue = await agent('Sue Supervisor', { role: 'supervisor' });
    await setStatus(ana, 'available');
    await setStatus(bea, 'available');
    await setStatus(cal, 'away');

    // Bea holds one conversation (her capacity); Ana claims the other.
    const beas = await waiting();
    expect((await bea.client.call('POST', `/api/agent/conversations/${beas}/claim`)).status).toBe(200);
    const session = await waiting();
    expect((await ana.client.call('POST', `/api/agent/conversations/${session}/claim`)).status).toBe(200);

    const listed = await ana.client.call('GET', `/api/agent/conversations/${session}/transfer-targets`);
    expect(listed.status).toBe(200);
    const targets = listed.json.agents as Target[];
    // Quin serves another bot; Ana is the one asking (and holding).
    expect(targets.map((t) => t.name)).toEqual(['Bea Busy', 'Cal Everywhere', 'Sue Supervisor']);
    expect(targets.find((t) => t.agent_id === bea.id)).toEqual({
      agent_id: bea.id,
      name: 'Bea Busy',
      status: 'available',
      open_conversations: 1,
      capacity: 1,
    });
    expect(targets.find((t) => t.agent_id === cal.id)).toMatchObject({
      status: 'away',
      open_conversations: 0,
      capacity: 4,
    });
    expect(targets.find((t) => t.agent_id === sue.id)?.status).toBe('offline');
    for (const t of targets)
      expect(Object.keys(t).sort()).toEqual(['agent_id', 'capacity', 'name', 'open_conversations', 'status']);

    // A supervisor sees the same colleagues, but for itself and the holder (Ana).
    const forSue = await sue.client.call('GET', `/api/agent/conversations/${session}/transfer-targets`);
    expect(forSue.status).toBe(200);
    expect((forSue.json.agents as Target[]).map((t) => t.name)).toEqual(['Bea Busy', 'Cal Everywhere']);

    // An agent of another bot: 403, as for the conversation itself; an unknown session: 404.
    const outsider = await quin.client.call('GET', `/api/agent/conversations/${session}/transfer-targets`);
    expect(outsider.status).toBe(403);
    expect(outsider.json.agents).toBeUndefined();
    expect(
      (await ana.client.call('GET', `/api/agent/conversations/${randomUUID()}/transfer-targets`)).status,
    ).toBe(404);
    // An agent of the bot that may not open it (Ana holds it): 403, as reading it is.
    const colleague = await bea.client.call('GET', `/api/agent/conversations/${session}/transfer-targets`);
    expect(colleague.status).toBe(403);
    expect(colleague.json.agents).toBeUndefined();

    // An id from the list is what the transfer takes.
    const moved = await ana.client.call('POST', `/api/agent/conversations/${session}/transfer`, {
      body: { agent_id: targets.find((t) => t.name === 'Cal Everywhere')!.agent_id },
    });
    expect(moved.status).toBe(200);
    expect(moved.json.assigned_to).toBe(cal.id);
  });

  it('every exchange above matched the OpenAPI document', () => {
    expect(contract.judged.some((e) => e.path.endsWith('/transfer-targets'))).toBe(true);
    expect(breaches).toEqual([]);
  });
});
