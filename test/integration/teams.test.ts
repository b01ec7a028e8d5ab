import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeamsAdapter, loadTeamsConfig } from '../../adapters/teams/index.ts';
import { loadSnapshot } from '../../src/store/sessions.ts';
import * as doc from '../fixtures/teams/activities.ts';
import { type BotConnector, startBotConnector, tooManyRequests } from '../helpers/bot-connector.ts';
import { PNG_1X1 } from '../helpers/files.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { settled } from '../helpers/settled.ts';
import { until } from '../helpers/until.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
}

/** A hub in this process with the Teams channel (no app id: no authentication). */
async function teamsHub(bot: string, env: Record<string, string> = {}) {
  const config = loadTeamsConfig({ TEAMS_ENABLED: 'true', TEAMS_BOT: bot, ...env }, '127.0.0.1')!;
  const adapter = createTeamsAdapter(config);
  const { logger, lines } = capturingLogger('debug');
  const running = await startTestHub(
    { configDir: FIXTURE_CONFIG, deliveryRetryBaseMs: 50 },
    { adapters: [adapter], logger },
  );
  return Object.assign(running, { lines, adapter });
}

describe('Teams through a whole hub (in process, no authentication)', () => {
  let connector: BotConnector;
  let running: Awaited<ReturnType<typeof teamsHub>>;
  let serial = 0;
  const fresh = (activity: doc.Json, extra: Partial<doc.VariantOptions> = {}) =>
    doc.variant(activity, { suffix: `t${++serial}`, serviceUrl: connector.url, ...extra });

  beforeAll(async () => {
    connector = await startBotConnector();
    running = await teamsHub('default');
  });
  afterAll(async () => {
    await running?.stop();
    await connector?.close();
  });

  it('answers a documented 1:1 message in its conversation, as a reply to it, after "typing…"', async () => {
    const activity = fresh(doc.personalMessage);
    const res = await post(running.url, activity);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      status: 'accepted',
      envelope_id: `teams:${activity.conversation.id}|${activity.id}`,
    });
    const replies = await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 2,
    );
    // The fixture bot greets a new session, then echoes.
    expect(replies.map((r) => r.body.text)).toEqual([
      'welcome',
      'echo Hello Teams TestBot.Sending bold-italic rich text #1',
    ]);
    for (const r of replies) {
      expect(r.replyToId).toBe(activity.id);
      expect(r.body).toMatchObject({
        type: 'message',
        replyToId: activity.id,
        conversation: { id: activity.conversation.id },
        from: { id: activity.recipient.id },
        recipient: { id: activity.from.id },
      });
      // No app id: replies go out unsigned.
      expect(r.authorization).toBeUndefined();
    }
    const typing = connector.typing(activity.conversation.id);
    expect(typing).toHaveLength(1);
    expect(typing[0]!.replyToId).toBeUndefined();
    expect(connector.requests.indexOf(typing[0]!)).toBeLessThan(connector.requests.indexOf(replies[0]!));
  });

  it('keeps who wrote, the tenant, the text and the reference with the session', async () => {
    const activity = fresh(doc.personalMessage);
    await post(running.url, activity);
    await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 2,
    );
    const { rows } = await running.hub.db.query<Record<string, unknown>>(
      `SELECT s.native_key, s.reply_to, s.meta, u.id AS user_id, m.content
         FROM sessions s JOIN messages m ON m.session_id = s.id AND m.role = 'user'
         LEFT JOIN users u ON u.id = s.user_id
        WHERE s.channel = 'teams' AND s.native_key LIKE $1`,
      [`%#${activity.conversation.id}`],
    );
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row.native_key).toBe(`${activity.from.aadObjectId}#${activity.conversation.id}`);
    expect(row.content).toBe('Hello Teams TestBot.Sending bold-italic rich text');
    expect(row.user_id).toBeTruthy();
    expect(row.reply_to).toMatchObject({
      activityId: activity.id,
      channelId: 'msteams',
      serviceUrl: connector.url,
      conversation: { id: activity.conversation.id, conversationType: 'personal' },
      user: { id: activity.from.id, aadObjectId: activity.from.aadObjectId },
      bot: { id: activity.recipient.id },
    });
    expect(row.meta).toMatchObject({
      tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47',
      conversationType: 'personal',
      name: 'Megan Bowen',
    });
  });

  it('greets when the bot is added to a team, in the channel, replying to nothing', async () => {
    const activity = fresh(doc.botAddedToTeam);
    // The documented bot id is the recipient's and the member added: keep them equal.
    activity.membersAdded = [{ id: activity.recipient.id }];
    const res = await post(running.url, activity);
    expect(res.json.status).toBe('accepted');
    const [greeting] = await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 1,
    );
    expect(greeting!.body.text).toBe('welcome');
    expect(greeting!.replyToId).toBeUndefined();
    expect(greeting!.body.replyToId).toBeUndefined();
    // A start shows no "typing…" and adds nothing.
    await settled(running.hub);
    expect(connector.delivered(activity.conversation.id)).toHaveLength(1);
  });

  it('the same activity posted twice is one turn and one set of replies', async () => {
    const activity = fresh(doc.personalMessage, { text: 'only once' });
    const [first, second] = [await post(running.url, activity), await post(running.url, activity)];
    expect(first.json.status).toBe('accepted');
    expect(second.json.status).toBe('duplicate');
    await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 2,
    );
    await settled(running.hub);
    expect(connector.delivered(activity.conversation.id).map((r) => r.body.text)).toEqual([
      'welcome',
      'echo only once #1',
    ]);
  });

  it('a 429 from the connector is retried after its Retry-After: one reply, delivered', async () => {
    const activity = fresh(doc.personalMessage, { text: 'throttled' });
    // The greeting goes through; the echo is throttled once.
    connector.script(
      (r) => r.conversationId === activity.conversation.id && r.body.text === 'echo throttled #1',
      tooManyRequests(1),
    );
    await post(running.url, activity);
    const attempts = await until(
      () => connector.messages(activity.conversation.id).filter((r) => r.body.text === 'echo throttled #1'),
      (r) => r.length >= 2 && r.at(-1)!.status === 201,
    );
    expect(attempts.map((r) => r.status)).toEqual([429, 201]);
    expect(connector.delivered(activity.conversation.id).map((r) => r.body.text)).toEqual([
      'welcome',
      'echo throttled #1',
    ]);
    const status = await until(
      async () =>
        (
          await running.hub.db.query<Record<string, unknown>>(
            `SELECT m.delivery_status, m.delivery_attempts, m.channel_message_id
               FROM messages m JOIN sessions s ON s.id = m.session_id
              WHERE s.native_key LIKE $1 AND m.content = 'echo throttled #1'`,
            [`%#${activity.conversation.id}`],
          )
        ).rows[0],
      (r) => r?.delivery_status === 'sent',
    );
    // The hub's delivery retried (two attempts recorded), not the SDK underneath it, and it
    // waited the connector's Retry-After rather than its own 50 ms backoff.
    expect(status).toMatchObject({
      delivery_status: 'sent',
      delivery_attempts: 2,
      channel_message_id: attempts[1]!.id,
    });
    const retry = running.lines.find((l) => l.event === 'delivery.retry' && l.channel === 'teams');
    expect(retry).toMatchObject({ attempt: 1 });
    expect(retry!.retryInMs as number).toBeGreaterThanOrEqual(1000);
    expect(retry!.err).toMatch(/Bot Connector 429/);
  });

  it('a group chat message loses the bot @mention; the group chat is a session of its own', async () => {
    const personal = fresh(doc.personalMessage, { text: 'in private' });
    const group = fresh(doc.groupChatMessage, { suffix: personal.id });
    group.from = personal.from; // the same person, now in a group chat
    await post(running.url, personal);
    await post(running.url, group);
    const inGroup = await until(
      () => connector.delivered(group.conversation.id),
      (r) => r.length >= 2,
    );
    // A new session for the group chat: greeted again, message #1 there.
    expect(inGroup.map((r) => r.body.text)).toEqual(['welcome', 'echo Hello everyone #1']);
    expect(inGroup[1]!.replyToId).toBe(group.id);
  });

  it('a channel message keeps other mentions and the attachment, and is answered in its thread', async () => {
    const activity = fresh(doc.channelMessageToBot);
    // The documented picture, on the activity's own Bot Connector (the test has no internet; a
    // picture that cannot be fetched would be told to the person as a file not received).
    connector.addFile('bender', PNG_1X1, 'image/png');
    activity.attachments[0].contentUrl = new URL('v3/attachments/bender/views/original', connector.url).href;
    await post(running.url, activity);
    const replies = await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 2,
    );
    expect(replies[1]!.body.text).toBe('echo Hey <at>Pranav Smith</at> check out this message #1');
    expect(replies[1]!.conversationId).toMatch(/;messageid=1481567603816-/);
    const { rows } = await running.hub.db.query<{ payload: { attachments: unknown[] } }>(
      `SELECT m.payload FROM messages m JOIN sessions s ON s.id = m.session_id
        WHERE s.native_key LIKE $1 AND m.role = 'user'`,
      [`%#${activity.conversation.id}`],
    );
    expect(rows[0]!.payload.attachments).toEqual([
      expect.objectContaining({
        type: 'image/png',
        name: 'Bender_Rodriguez.png',
        size: PNG_1X1.length,
        fileId: expect.any(String),
      }),
    ]);
  });

  it('without an app id, refuses an activity whose serviceUrl is not a loopback address, and never posts there', async () => {
    // 0.0.0.0 reaches this machine (so nothing leaves it), but it is no loopback address.
    const elsewhere = connector.url.replace('127.0.0.1', '0.0.0.0');
    const before = running.lines.length;
    for (const activity of [
      fresh(doc.personalMessage, { serviceUrl: elsewhere }),
      fresh(doc.botAddedToTeam, { serviceUrl: elsewhere }),
    ]) {
      const res = await post(running.url, activity);
      expect(res).toMatchObject({ status: 403, json: { error: { code: 'forbidden' } } });
      expect(
        (
          await running.hub.db.query('SELECT 1 FROM messages WHERE envelope_id LIKE $1', [
            `teams:${activity.conversation.id}|%`,
          ])
        ).rows,
      ).toEqual([]);
    }
    expect(running.lines.slice(before).filter((l) => l.event === 'teams.activity_rejected')).toHaveLength(2);

    // A reply whose stored reference names such a serviceUrl fails for good, without a request.
    const activity = fresh(doc.personalMessage);
    await post(running.url, activity);
    await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 2,
    );
    const sessionId = (
      await running.hub.db.query<{ id: string }>(
        `UPDATE sessions SET reply_to = jsonb_set(reply_to, '{serviceUrl}', to_jsonb($2::text))
         WHERE channel = 'teams' AND reply_to->'conversation'->>'id' = $1 RETURNING id`,
        [activity.conversation.id, elsewhere],
      )
    ).rows[0]!.id;
    const session = (await loadSnapshot(running.hub.db, sessionId))!.session;
    const sender = running.adapter.sender!;
    await expect(
      sender.send({
        session,
        inReplyTo: 'teams:x',
        replies: [{ seq: 99, text: 'to elsewhere', payload: {} }],
      }),
    ).rejects.toMatchObject({
      name: 'SendError',
      retryable: false,
      message: expect.stringMatching(/loopback serviceUrl/),
    });
    expect((await connector.delivered(activity.conversation.id)).map((r) => r.body.text)).not.toContain(
      'to elsewhere',
    );
  });

  it('acknowledges and ignores what it does not handle', async () => {
    const invoke = await post(running.url, fresh(doc.groupChatInvoke));
    expect(invoke.status).toBe(200);
    expect(invoke.text).toBe('');
    const removed = await post(running.url, fresh(doc.teamMemberRemoved));
    expect(removed).toMatchObject({ status: 200, json: { status: 'ignored' } });
    const typing = await post(running.url, { ...fresh(doc.personalMessage), type: 'typing' });
    expect(typing).toMatchObject({ status: 200, json: { status: 'ignored' } });
  });

  it('answers 400 with the API error body to what is not an activity', async () => {
    expect(await post(running.url, '{"type": "message",')).toMatchObject({
      status: 400,
      json: { error: { code: 'invalid_json' } },
    });
    expect(await post(running.url, { text: 'no type' })).toMatchObject({
      status: 400,
      json: { error: { code: 'invalid_request' } },
    });
    const noConversation = fresh(doc.personalMessage);
    delete noConversation.conversation;
    const res = await post(running.url, noConversation);
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('invalid_request');
    expect(res.json.error.message).toMatch(/conversation/);
    const noId = { ...fresh(doc.channelMessage) };
    delete noId.id;
    expect((await post(running.url, noId)).json.error.message).toMatch(/\bid\b/);
  });
});

describe('Teams rendering through a whole hub (suggestions, long replies)', () => {
  let connector: BotConnector;
  let running: RunningHub;
  let serial = 0;
  const fresh = (activity: doc.Json, text: string) =>
    doc.variant(activity, { suffix: `r${++serial}`, serviceUrl: connector.url, text });

  beforeAll(async () => {
    connector = await startBotConnector();
    running = await teamsHub('menu', { TEAMS_MAX_TEXT_CHARS: '4000' });
  });
  afterAll(async () => {
    await running?.stop();
    await connector?.close();
  });

  it('three suggestions in a 1:1 chat are suggested actions', async () => {
    const activity = fresh(doc.personalMessage, 'buttons');
    await post(running.url, activity);
    const [reply] = await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 1,
    );
    expect(reply!.body.text).toBe('Which size?');
    expect(reply!.body.suggestedActions.actions).toEqual([
      { type: 'imBack', title: 'Small', value: 'size:s' },
      { type: 'imBack', title: 'Medium', value: 'size:m' },
      { type: 'imBack', title: 'Large', value: 'Large' },
    ]);
  });

  it('five suggestions, or any in a channel, are an Adaptive Card whose buttons send the value', async () => {
    const personal = fresh(doc.personalMessage, 'list');
    const channel = fresh(doc.channelMessageToBot, '<at>stlrgload100</at> buttons');
    // Only the buttons matter here: without the documented picture (which would be fetched).
    channel.attachments = [];
    await post(running.url, personal);
    await post(running.url, channel);
    const [list] = await until(
      () => connector.delivered(personal.conversation.id),
      (r) => r.length >= 1,
    );
    const [buttons] = await until(
      () => connector.delivered(channel.conversation.id),
      (r) => r.length >= 1,
    );
    for (const [reply, text, count] of [
      [list!, 'Which city?', 5],
      [buttons!, 'Which size?', 3],
    ] as const) {
      expect(reply.body.text).toBeUndefined();
      expect(reply.body.suggestedActions).toBeUndefined();
      const [card] = reply.body.attachments;
      expect(card.contentType).toBe('application/vnd.microsoft.card.adaptive');
      expect(card.content.body).toEqual([{ type: 'TextBlock', text, wrap: true }]);
      expect(card.content.actions).toHaveLength(count);
    }
    expect(buttons!.body.attachments[0].content.actions[0]).toEqual({
      type: 'Action.Submit',
      title: 'Small',
      data: { msteams: { type: 'messageBack', text: 'size:s', displayText: 'Small' } },
    });
  });

  it('a long reply is split at the limit, in order, every piece a reply to the message', async () => {
    const activity = fresh(doc.personalMessage, 'long');
    await post(running.url, activity);
    const pieces = await until(
      () => connector.delivered(activity.conversation.id),
      (r) => r.length >= 2,
    );
    // The reply is marked sent once its last piece is.
    await settled(running.hub);
    const texts = connector.delivered(activity.conversation.id).map((r) => r.body.text as string);
    expect(texts.length).toBe(2);
    expect(texts.every((t) => t.length <= 4000)).toBe(true);
    expect(texts.join('')).toBe(`${'word '.repeat(1500)}end`);
    expect(pieces.every((p) => p.replyToId === activity.id)).toBe(true);
  });
});
