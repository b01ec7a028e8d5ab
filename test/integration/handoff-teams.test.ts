import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeamsAdapter, loadTeamsConfig } from '../../adapters/teams/index.ts';
import * as doc from '../fixtures/teams/activities.ts';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { type BotConnector, startBotConnector } from '../helpers/bot-connector.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const CONFIG = path.join(REPO_ROOT, 'test/fixtures/handoff');
const ADMIN_TOKEN = 'operator-secret-for-the-handoff-teams-0123456789';

/** An agent answering a Teams person: through the adapter, to a local Bot Connector. */
describe('handoff on Teams', () => {
  let connector: BotConnector;
  let running: RunningHub;

  beforeAll(async () => {
    connector = await startBotConnector();
    const config = loadTeamsConfig({ TEAMS_ENABLED: 'true', TEAMS_BOT: 'helpdesk' }, '127.0.0.1')!;
    running = await startTestHub(
      { configDir: CONFIG, adminToken: ADMIN_TOKEN, deliveryRetryBaseMs: 50 },
      { adapters: [createTeamsAdapter(config)] },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await connector?.close();
  });

  it('the agent’s message reaches the person’s Teams conversation', async () => {
    const activity = doc.variant(doc.personalMessage, {
      suffix: 'handoff1',
      serviceUrl: connector.url,
      text: 'can I talk to a human?',
    });
    const res = await fetch(`${running.url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(activity),
    });
    expect(res.status).toBe(200);
    const texts = async () => (await connector.delivered(activity.conversation.id)).map((r) => r.body.text);
    await until(texts, (t) => t.includes('Connecting you to an agent...'));
    const { rows } = await running.hub.db.query<{ id: string }>(
      `SELECT id FROM sessions WHERE channel = 'teams' AND native_key LIKE $1`,
      [`%#${activity.conversation.id}`],
    );
    const sessionId = rows[0]!.id;
    const made = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Ana',
      email: 'ana@example.com',
      bots: ['helpdesk'],
    });
    const agent = agentClient(running.url, { token: made.token });
    expect((await agent.call('POST', `/api/agent/conversations/${sessionId}/claim`)).status).toBe(200);
    await until(texts, (t) => t.includes('Ana is here to help'));
    const said = await agent.call('POST', `/api/agent/conversations/${sessionId}/messages`, {
      body: { text: 'Hi Megan, Ana here' },
    });
    expect(said.status).toBe(202);
    await until(texts, (t) => t.includes('Hi Megan, Ana here'));
    const delivered = (await connector.delivered(activity.conversation.id)).find(
      (r) => r.body.text === 'Hi Megan, Ana here',
    )!;
    expect(delivered.body).toMatchObject({
      type: 'message',
      conversation: { id: activity.conversation.id },
      recipient: { id: activity.from.id },
    });
    const row = await until(
      async () =>
        (
          await running.hub.db.query<{ role: string; delivery_status: string }>(
            `SELECT role, delivery_status FROM messages WHERE session_id = $1 AND content = 'Hi Megan, Ana here'`,
            [sessionId],
          )
        ).rows[0],
      (r) => r?.delivery_status === 'sent',
    );
    expect(row?.role).toBe('agent');
  });
});
