import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeamsAdapter, loadTeamsConfig } from '../../adapters/teams/index.ts';
import * as doc from '../fixtures/teams/activities.ts';
import { adminClient, eventually } from '../helpers/admin.ts';
import { type BotConnector, startBotConnector } from '../helpers/bot-connector.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'outbound-teams-admin-token-0123456789abcdef';

describe('POST /api/admin/messages to Teams: proactive messages through a stored conversation reference', () => {
  let connector: BotConnector;
  let running: RunningHub;
  let admin: ReturnType<typeof adminClient>;

  beforeAll(async () => {
    connector = await startBotConnector();
    const config = loadTeamsConfig({ TEAMS_ENABLED: 'true', TEAMS_BOT: 'default' }, '127.0.0.1')!;
    running = await startTestHub(
      {
        configDir: path.join(REPO_ROOT, 'test/fixtures/config'),
        adminToken: ADMIN_TOKEN,
        deliveryRetryBaseMs: 50,
      },
      { adapters: [createTeamsAdapter(config)] },
    );
    admin = adminClient(running.url, ADMIN_TOKEN);
  });
  afterAll(async () => {
    await running?.stop();
    await connector?.close();
  });

  it('refuses a user the bot never talked with (409 no_conversation_reference)', async () => {
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'teams',
      to: '29:1aNeverSeenUser0000000000000000000000000000000000000000000000000000000000000000',
      text: 'Hello there',
    });
    expect(res.status).toBe(409);
    expect(res.json.error.code).toBe('no_conversation_reference');
  });

  it('writes first to a person who wrote before, in their conversation, even after the session ended', async () => {
    const activity = doc.variant(doc.personalMessage, { suffix: 'proactive', serviceUrl: connector.url });
    await fetch(`${running.url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(activity),
    });
    await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 2,
    );
    const { rows } = await running.hub.db.query<{ id: string; native_key: string }>(
      `SELECT id, native_key FROM sessions WHERE channel = 'teams'`,
    );
    expect(rows).toHaveLength(1);
    // The session ends; its reference still lets the bot write first, into a new session.
    expect((await admin('POST', `/api/admin/sessions/${rows[0]!.id}/end`, {})).status).toBe(202);
    await eventually(async () => {
      const ended = await running.hub.db.query(`SELECT ended_at FROM sessions WHERE id = $1`, [rows[0]!.id]);
      return ended.rows[0]?.ended_at !== null;
    }, 'the session ended');
    const to = rows[0]!.native_key.split('#')[0]!;
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'teams',
      to,
      text: 'Your laptop is ready',
    });
    expect(res.status).toBe(202);
    expect(res.json.session_id).not.toBe(rows[0]!.id);
    await eventually(async () => {
      const s = (await admin('GET', `/api/admin/messages/${res.json.message_id}`)).json;
      return s.status === 'sent' || s.status === 'delivered' ? s : undefined;
    }, 'the proactive message sent');
    const sent = connector.delivered(activity.conversation.id).map((r) => r.body.text);
    expect(sent).toContain('Your laptop is ready');
  });

  it('sends a message scheduled while the session was open into a new one when that session ended first', async () => {
    const activity = doc.variant(doc.personalMessage, { suffix: 'scheduled', serviceUrl: connector.url });
    await fetch(`${running.url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(activity),
    });
    const { rows } = await until(
      () =>
        running.hub.db.query<{ id: string; native_key: string }>(
          `SELECT id, native_key FROM sessions WHERE channel = 'teams' AND ended_at IS NULL AND native_key LIKE $1`,
          [`%${activity.conversation.id}%`],
        ),
      (r) => r.rows.length === 1,
    );
    const to = rows[0]!.native_key.split('#')[0]!;
    const res = await admin('POST', '/api/admin/messages', {
      bot: 'default',
      channel: 'teams',
      to,
      text: 'Your badge is ready',
      send_at: new Date(Date.now() + 3_000).toISOString(),
    });
    expect(res.status).toBe(202);
    expect(res.json.session_id).toBe(rows[0]!.id);
    // The session it was accepted for ends before the message is due.
    expect((await admin('POST', `/api/admin/sessions/${rows[0]!.id}/end`, {})).status).toBe(202);
    await eventually(async () => {
      const s = (await admin('GET', `/api/admin/messages/${res.json.message_id}`)).json;
      return s.status === 'sent' || s.status === 'delivered' ? s : undefined;
    }, 'the scheduled message sent');
    const sent = connector.delivered(activity.conversation.id).map((r) => r.body.text);
    expect(sent).toContain('Your badge is ready');
  });
});
