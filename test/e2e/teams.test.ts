import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as doc from '../fixtures/teams/activities.ts';
import { type BotConnector, startBotConnector, tooManyRequests } from '../helpers/bot-connector.ts';
import { type BotFrameworkIssuer, startBotFrameworkIssuer } from '../helpers/bot-framework-issuer.ts';
import { Cluster } from '../helpers/cluster.ts';
import type { ServerProcess } from '../helpers/server-process.ts';
import { until } from '../helpers/until.ts';

const GREETING = "Hello! I'm the Switchboard demo bot. Say anything and I'll echo it back.";

async function post(server: ServerProcess, activity: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(activity),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

const events = (p: ServerProcess, event: string) => p.logLines().filter((l) => l.event === event);

/**
 * `switchboard start --role gateway` and two `--role worker` processes, sharing PostgreSQL and
 * Redis, with TEAMS_ENABLED=true (no app id). Documented activities are posted to the gateway
 * with `serviceUrl` pointing at a local Bot Connector; the replies must arrive there, sent by a
 * worker: the gateway runs no turn and drains no outbox.
 */
describe('Teams scaled out: a gateway receives, a worker answers', () => {
  const cluster = new Cluster({
    TEAMS_ENABLED: 'true',
    LOG_LEVEL: 'debug',
    DELIVERY_RETRY_BASE_MS: '100',
  });
  let connector: BotConnector;
  let gateway: ServerProcess;
  let db: pg.Client;
  let serial = 0;
  const fresh = (activity: doc.Json, extra: Partial<doc.VariantOptions> = {}) =>
    doc.variant(activity, { suffix: `e${++serial}-${Date.now()}`, serviceUrl: connector.url, ...extra });

  beforeAll(async () => {
    connector = await startBotConnector();
    await cluster.init();
    gateway = await cluster.addGateway();
    await cluster.addWorker();
    await cluster.addWorker();
    db = new pg.Client({ connectionString: cluster.database!.url });
    await db.connect();
  }, 120_000);
  afterAll(async () => {
    await db?.end();
    await cluster.stop();
    await connector?.close();
  });

  it('a documented 1:1 message is acknowledged by the gateway and answered by a worker, as a reply to it', async () => {
    const activity = fresh(doc.personalMessage);
    const res = await post(gateway, activity);
    expect(res).toEqual({
      status: 200,
      json: { status: 'accepted', envelope_id: `teams:${activity.conversation.id}|${activity.id}` },
    });
    const replies = await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 2,
    );
    expect(replies.map((r) => r.body.text)).toEqual([
      GREETING,
      'You said: Hello Teams TestBot.Sending bold-italic rich text (message #1 in this session)',
    ]);
    for (const r of replies) {
      expect(r.replyToId).toBe(activity.id);
      expect(r.body).toMatchObject({
        replyToId: activity.id,
        conversation: { id: activity.conversation.id },
        recipient: { id: activity.from.id },
      });
    }
    // The gateway took the activity and sent nothing; a worker process sent the replies.
    const accepted = await until(
      () => events(gateway, 'teams.activity').filter((l) => l.envelopeId === res.json.envelope_id),
      (l) => l.length > 0,
    );
    expect(accepted).toHaveLength(1);
    expect(events(gateway, 'teams.sent')).toEqual([]);
    const sentBy = (w: ServerProcess) =>
      events(w, 'teams.sent').filter((l) => l.conversationId === activity.conversation.id);
    await until(
      () => cluster.workers.flatMap(sentBy),
      (l) => l.length >= 2,
    );
    const senders = cluster.workers.filter((w) => sentBy(w).length > 0);
    expect(senders).toHaveLength(1);
    const sent = sentBy(senders[0]!);
    expect(sent.map((l) => l.replyToId)).toEqual([activity.id, activity.id]);
    expect(sent[0]!.pid).toBe(senders[0]!.pid);
    expect(sent[0]!.pid).not.toBe(gateway.pid);
    expect(accepted[0]!.pid).toBe(gateway.pid);
    expect(cluster.crashes()).toEqual([]);
  });

  /** Waits until the conversation's session has `count` replies and every one is sent (or failed). */
  const repliesSent = (conversationId: string, count: number) =>
    until(
      async () =>
        (
          await db.query<{ delivery_status: string }>(
            `SELECT m.delivery_status FROM messages m JOIN sessions s ON s.id = m.session_id
              WHERE s.channel = 'teams' AND s.native_key LIKE $1 AND m.role = 'assistant'`,
            [`%#${conversationId}`],
          )
        ).rows,
      (rows) =>
        rows.length >= count &&
        rows.every((r) => r.delivery_status === 'sent' || r.delivery_status === 'failed'),
    );

  it('the same activity posted twice (Teams retrying a slow answer) is answered once', async () => {
    const activity = fresh(doc.personalMessage, { text: 'are you there?' });
    const [first, again] = await Promise.all([post(gateway, activity), post(gateway, activity)]);
    expect([first.json.status, again.json.status].sort()).toEqual(['accepted', 'duplicate']);
    await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 2,
    );
    // The refused copy queued nothing: once every reply of the session is sent, nothing more comes.
    await repliesSent(activity.conversation.id, 2);
    expect(connector.delivered(activity.conversation.id).map((r) => r.body.text)).toEqual([
      GREETING,
      'You said: are you there? (message #1 in this session)',
    ]);
  });

  it('the bot added to a team greets the channel', async () => {
    const activity = fresh(doc.botAddedToTeam);
    activity.membersAdded = [{ id: activity.recipient.id }];
    expect((await post(gateway, activity)).json.status).toBe('accepted');
    const [greeting] = await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 1,
    );
    expect(greeting!.body.text).toBe(GREETING);
    expect(greeting!.replyToId).toBeUndefined();
  });

  it('a connector answering 429 then 200: one reply, delivered after Retry-After, status sent', async () => {
    const activity = fresh(doc.channelMessageToBot, { text: '<at>stlrgload100</at> slow down' });
    // Only the replies' delivery matters here: without the documented picture, which the worker
    // would fetch (and, with no internet, tell the person it could not be received).
    activity.attachments = [];
    const echo = 'You said: slow down (message #1 in this session)';
    connector.script(
      (r) => r.conversationId === activity.conversation.id && r.body.text === echo,
      tooManyRequests(1),
    );
    await post(gateway, activity);
    const attempts = await until(
      () => connector.messages(activity.conversation.id).filter((r) => r.body.text === echo),
      (r) => r.length >= 2,
    );
    expect(attempts.map((r) => r.status)).toEqual([429, 201]);
    const row = await until(
      async () =>
        (
          await db.query<Record<string, unknown>>(
            `SELECT m.delivery_status, m.delivery_attempts, m.channel_message_id
               FROM messages m JOIN sessions s ON s.id = m.session_id
              WHERE s.channel = 'teams' AND s.native_key LIKE $1 AND m.content = $2`,
            [`%#${activity.conversation.id}`, echo],
          )
        ).rows[0],
      (r) => r?.delivery_status === 'sent',
    );
    expect(row).toEqual({
      delivery_status: 'sent',
      delivery_attempts: 2,
      channel_message_id: attempts[1]!.id,
    });
    await repliesSent(activity.conversation.id, 2);
    expect(connector.delivered(activity.conversation.id).map((r) => r.body.text)).toEqual([GREETING, echo]);
    const retries = await until(
      () =>
        cluster.workers.flatMap((w) =>
          events(w, 'delivery.retry').filter((l) => l.channel === 'teams' && /429/.test(String(l.err))),
        ),
      (l) => l.length > 0,
    );
    expect(retries).toHaveLength(1);
    expect(retries[0]!.retryInMs as number).toBeGreaterThanOrEqual(1000);
  });
});

describe('Teams with an app id (a gateway process)', () => {
  const APP_ID = '3a4b5c6d-1111-2222-3333-444455556666';
  const SERVICE_URL = 'https://smba.trafficmanager.net/amer/';
  let issuer: BotFrameworkIssuer;
  let cluster: Cluster;
  let gateway: ServerProcess;

  beforeAll(async () => {
    issuer = await startBotFrameworkIssuer();
    cluster = new Cluster({
      TEAMS_APP_ID: APP_ID,
      TEAMS_APP_PASSWORD: 'e2e-client-secret',
      TEAMS_OPENID_METADATA_URL: issuer.metadataUrl,
      LOG_LEVEL: 'debug',
    });
    await cluster.init();
    gateway = await cluster.addGateway();
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
    await issuer?.close();
  });

  it('refuses an unsigned request with 401 and accepts a signed one', async () => {
    const activity = doc.variant(doc.personalMessage, {
      suffix: `auth-${Date.now()}`,
      serviceUrl: SERVICE_URL,
    });
    expect(await post(gateway, activity)).toMatchObject({
      status: 401,
      json: { error: { code: 'unauthorized' } },
    });
    // The child's log reaches us through a pipe: wait for the line rather than race it.
    const rejected = await until(
      () => events(gateway, 'teams.activity_rejected'),
      (l) => l.length > 0,
    );
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ status: 401, type: 'message' });
    expect(events(gateway, 'teams.activity')).toEqual([]);

    const token = issuer.sign(APP_ID, SERVICE_URL);
    expect(await post(gateway, activity, { authorization: `Bearer ${token}` })).toMatchObject({
      status: 200,
      json: { status: 'accepted' },
    });
    expect(events(gateway, 'teams.configured')[0]).toMatchObject({
      authentication: true,
      appType: 'MultiTenant',
    });
    // Neither the secret nor the token reaches the logs.
    const output = gateway.output.join('');
    expect(output).not.toContain('e2e-client-secret');
    expect(output).not.toContain(token);
    expect(cluster.crashes()).toEqual([]);
  });
});
