import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackAdapter, loadSlackConfig } from '../../adapters/slack/index.ts';
import { createTeamsAdapter, loadTeamsConfig } from '../../adapters/teams/index.ts';
import { createTelegramAdapter, loadTelegramConfig } from '../../adapters/telegram/index.ts';
import { DEFAULT_RATING_QUESTION } from '../../src/lifecycle/rating.ts';
import type { ChannelAdapter } from '../../src/ports.ts';
import * as slackDoc from '../fixtures/slack/events.ts';
import * as teamsDoc from '../fixtures/teams/activities.ts';
import * as telegramDoc from '../fixtures/telegram/updates.ts';
import * as waDoc from '../fixtures/whatsapp/cloud-payloads.ts';
import { startBotConnector } from '../helpers/bot-connector.ts';
import { startGraphApi } from '../helpers/graph-api.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { startSlackWebApi } from '../helpers/slack-web-api.ts';
import { postSlackWebhook } from '../helpers/slack-webhook.ts';
import { startTelegramBotApi } from '../helpers/telegram-bot-api.ts';
import { postTelegramUpdate } from '../helpers/telegram-hub.ts';
import { until } from '../helpers/until.ts';
import { postWhatsAppWebhook, whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';

/**
 * The rating ask on each channel, through the channel's adapter against its local fake: what the
 * platform receives (the five stars its own way) for `ASK RATING` and for the hub's own ask at
 * the end (`sessions.askRating`), and the button or reply coming back stored as the rating.
 * The bot (test/fixtures/rating-channels) asks when told `rate`, and the hub asks at every end.
 */
const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/rating-channels');
const ADMIN_TOKEN = 'rating-channels-admin-token-0123456789abcdef';
const STARS = ['★', '★★', '★★★', '★★★★', '★★★★★'];

interface Rated {
  session_id: string;
  score: string;
  source: string | null;
}

/** The channel's sessions of one person, oldest first, and the ratings they gave. */
function ratingsOf(running: RunningHub, channel: string, nativeKey: string) {
  const q = async <T>(sql: string) => (await running.hub.db.query(sql, [channel, nativeKey])).rows as T[];
  const sessions = () =>
    q<{ id: string; ended_at: Date | null }>(
      'SELECT id, ended_at FROM sessions WHERE channel = $1 AND native_key = $2 ORDER BY created_at',
    );
  const ratings = () =>
    q<Rated>(
      `SELECT e.session_id, COALESCE(e.data->>'score', e.data->>'value') AS score, e.data->>'source' AS source
       FROM session_events e JOIN sessions s ON s.id = e.session_id
       WHERE s.channel = $1 AND s.native_key = $2 AND e.type = 'rating' ORDER BY e.id`,
    );
  return {
    sessions,
    ratings,
    /** The hub's ask at the end was answered: the one rating is the ended session's, and no session began. */
    answeredAsk: async (sessionId: string, score: string) => {
      expect(await ratings()).toEqual([{ session_id: sessionId, score, source: 'askRating' }]);
      expect(await sessions()).toHaveLength(1);
    },
  };
}

/** Waits until the texts the platform received include `text` (the bot's answer). */
const sawText = (texts: () => unknown[], text: string) => until(texts, (t) => t.includes(text));

/** The hub with the rating bot and one channel's adapter. */
const startRatingHub = (adapter: ChannelAdapter) =>
  startTestHub({ configDir: CONFIG_DIR, adminToken: ADMIN_TOKEN }, { adapters: [adapter] });

/**
 * For one describe: the channel's local fake, then the rating hub with the adapter made against
 * it, started before its tests and stopped after (hub first, so nothing is sent to a closed fake).
 */
function ratingHubAgainst<F extends { close(): Promise<void> }>(
  startFake: () => Promise<F>,
  adapterFor: (fake: F) => ChannelAdapter,
): { fake: F; running: RunningHub } {
  const hub = {} as { fake: F; running: RunningHub };
  beforeAll(async () => {
    hub.fake = await startFake();
    hub.running = await startRatingHub(adapterFor(hub.fake));
  });
  afterAll(async () => {
    await hub.running?.stop();
    await hub.fake?.close();
  });
  return hub;
}

/** Ends a session as an operator does; the hub then asks for the rating. */
async function endByOperator(running: RunningHub, sessionId: string): Promise<void> {
  const res = await fetch(`${running.url}/api/admin/sessions/${sessionId}/end`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  expect(res.status).toBe(202);
}

describe('Telegram: the stars as buttons under the message', () => {
  const TOKEN = '7100000002:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
  const SECRET = 'hub-secret_rating_0123';
  let update = 0;

  const hub = ratingHubAgainst(
    () => startTelegramBotApi(TOKEN),
    (api) =>
      createTelegramAdapter(
        loadTelegramConfig({
          TELEGRAM_BOT_TOKEN: TOKEN,
          TELEGRAM_WEBHOOK_SECRET: SECRET,
          TELEGRAM_API_URL: api.url,
        })!,
      ),
  );

  const deliver = (body: unknown) => postTelegramUpdate(hub.running.url, body, SECRET);
  const say = (chat: number, text: string) =>
    deliver(telegramDoc.variant(telegramDoc.textMessage, { updateId: chat + ++update, userId: chat, text }));
  const press = (chat: number, data: string) =>
    deliver(
      telegramDoc.variant(telegramDoc.callbackQueryInChat, {
        updateId: chat + ++update,
        userId: chat,
        text: data,
      }),
    );
  const asks = (chat: number) =>
    hub.fake
      .sentTo(chat)
      .filter((c) => (c.body.reply_markup as { inline_keyboard?: unknown })?.inline_keyboard);
  const texts = (chat: number) => hub.fake.sentTo(chat).map((c) => c.body.text);
  const inlineStars = STARS.map((text, i) => [{ text, callback_data: String(i + 1) }]);

  it('ASK RATING: five buttons whose press sends the score, stored as the rating', async () => {
    const chat = 710_001;
    const r = ratingsOf(hub.running, 'telegram', String(chat));
    expect((await say(chat, 'rate')).status).toBe(200);
    const [ask] = await until(
      () => asks(chat),
      (a) => a.length === 1,
    );
    expect(ask!.body).toMatchObject({
      chat_id: String(chat),
      text: DEFAULT_RATING_QUESTION,
      reply_markup: { inline_keyboard: inlineStars },
    });
    expect((await press(chat, '4')).status).toBe(200);
    await sawText(() => texts(chat), 'You gave 4');
    expect(await r.ratings()).toEqual([expect.objectContaining({ score: '4', source: null })]);
  });

  it("askRating: the end asks with the same buttons; the press is the ended session's rating", async () => {
    const chat = 710_002;
    const r = ratingsOf(hub.running, 'telegram', String(chat));
    await say(chat, 'hello');
    const [session] = await until(r.sessions, (s) => s.length === 1);
    await sawText(() => texts(chat), 'You said hello');
    await endByOperator(hub.running, session!.id);
    const [ask] = await until(
      () => asks(chat),
      (a) => a.length === 1,
    );
    expect(ask!.body).toMatchObject({
      text: DEFAULT_RATING_QUESTION,
      reply_markup: { inline_keyboard: inlineStars },
    });
    await press(chat, '5');
    await sawText(() => texts(chat), 'Thank you for your rating!');
    await r.answeredAsk(session!.id, '5');
  });
});

describe('WhatsApp Cloud API: the stars as a list message', () => {
  const ACCESS_TOKEN = 'EAAJB-rating-token';
  const APP_SECRET = 'rating-app-secret';
  const NUMBER = '106540352242931';
  let serial = 0;

  const hub = ratingHubAgainst(
    () => startGraphApi(ACCESS_TOKEN),
    (graph) =>
      whatsAppCloudAdapter({
        graphUrl: graph.url,
        numbers: `${NUMBER}:default`,
        accessToken: ACCESS_TOKEN,
        appSecret: APP_SECRET,
      }),
  );

  const post = (payload: unknown) => postWhatsAppWebhook(hub.running.url, payload, APP_SECRET);
  const say = (from: string, text: string) => {
    const p = waDoc.variant(waDoc.textMessage, {
      from,
      suffix: `${from}.${++serial}`,
      phoneNumberId: NUMBER,
      timestamp: new Date(),
    }) as waDoc.Json;
    p.entry[0].changes[0].value.messages[0].text.body = text;
    return post(p);
  };
  /** The row the person taps in the list: its id is the score we sent. */
  const tap = (from: string, score: number) => {
    const p = waDoc.variant(waDoc.listReply, {
      from,
      suffix: `${from}.${++serial}`,
      phoneNumberId: NUMBER,
      timestamp: new Date(),
    }) as waDoc.Json;
    p.entry[0].changes[0].value.messages[0].interactive.list_reply = {
      id: String(score),
      title: STARS[score - 1],
    };
    return post(p);
  };
  const sent = (to: string) => hub.fake.to(to).map((r) => r.body);
  const texts = (to: string) =>
    sent(to).map((b) =>
      b.type === 'text' ? b.text.body : b.type === 'interactive' ? b.interactive.body.text : '',
    );
  const listMessage = {
    type: 'interactive',
    interactive: {
      type: 'list',
      body: { text: DEFAULT_RATING_QUESTION },
      action: {
        button: expect.any(String),
        sections: [{ rows: STARS.map((title, i) => ({ id: String(i + 1), title })) }],
      },
    },
  };

  it('ASK RATING: a list of five rows (reply buttons hold only three); the tapped row is the rating', async () => {
    const from = '16505559001';
    const r = ratingsOf(hub.running, 'whatsapp', `+${from}`);
    expect((await say(from, 'rate')).status).toBe(200);
    const asked = await until(
      () => sent(from).filter((b) => b.type === 'interactive'),
      (a) => a.length === 1,
    );
    expect(asked[0]).toMatchObject({ messaging_product: 'whatsapp', to: from, ...listMessage });
    expect((await tap(from, 3)).status).toBe(200);
    await sawText(() => texts(from), 'You gave 3');
    expect(await r.ratings()).toEqual([expect.objectContaining({ score: '3', source: null })]);
  });

  it("askRating: the end sends the same list; the tap is the ended session's rating", async () => {
    const from = '16505559002';
    const r = ratingsOf(hub.running, 'whatsapp', `+${from}`);
    await say(from, 'hello');
    await sawText(() => texts(from), 'You said hello');
    const [session] = await r.sessions();
    await endByOperator(hub.running, session!.id);
    const asked = await until(
      () => sent(from).filter((b) => b.type === 'interactive'),
      (a) => a.length === 1,
    );
    expect(asked[0]).toMatchObject(listMessage);
    await tap(from, 2);
    await sawText(() => texts(from), 'Thank you for your rating!');
    await r.answeredAsk(session!.id, '2');
  });
});

describe('Slack: the stars as buttons', () => {
  const SIGNING_SECRET = '8f742231b10e8888abcd99yyyzzz85a6';
  const BOT_TOKEN = 'xoxb-17653672481-19874698323-ratingzzzzzzzzzzzzz';
  const TEAM = 'T123ABC456';
  let clock = 1_710_000_000;
  const ts = () => `${++clock}.000100`;

  const hub = ratingHubAgainst(
    () => startSlackWebApi(BOT_TOKEN),
    (api) =>
      createSlackAdapter(
        loadSlackConfig({
          SLACK_SIGNING_SECRET: SIGNING_SECRET,
          SLACK_BOT_TOKEN: BOT_TOKEN,
          SLACK_API_URL: api.url,
        })!,
      ),
  );

  const deliver = (route: '' | '/interactions', raw: string) =>
    postSlackWebhook(hub.running.url, route, raw, { secret: SIGNING_SECRET });
  const say = (p: { user: string; dm: string }, text: string) => {
    const at = ts();
    return deliver(
      '',
      JSON.stringify(
        slackDoc.wrap(
          { ...slackDoc.directMessage, channel: p.dm, user: p.user, text, ts: at, event_ts: at },
          { eventId: `Ev${at}` },
        ),
      ),
    );
  };
  /** The person presses the button for `score` on the message `messageTs`. */
  const press = (p: { user: string; dm: string }, messageTs: string, score: number) => {
    const payload = structuredClone(slackDoc.blockActions) as slackDoc.Json;
    payload.team.id = TEAM;
    payload.user = { id: p.user, username: 'rater', name: 'rater', team_id: TEAM };
    payload.container = { type: 'message', message_ts: messageTs, channel_id: p.dm, is_ephemeral: false };
    payload.channel = { id: p.dm, name: 'directmessage' };
    payload.message = { ...payload.message, ts: messageTs };
    payload.actions = [
      {
        ...payload.actions[0],
        action_id: `suggestion-${score - 1}`,
        block_id: 'suggestions',
        text: { type: 'plain_text', text: STARS[score - 1], emoji: true },
        value: String(score),
        action_ts: ts(),
      },
    ];
    return deliver('/interactions', slackDoc.interactionBody(payload));
  };
  const posted = (dm: string) => hub.fake.postedTo(dm);
  const texts = (dm: string) => posted(dm).map((c) => c.args.text);
  const asks = (dm: string) =>
    posted(dm).filter((c) =>
      (c.args.blocks as { type: string }[] | undefined)?.some((b) => b.type === 'actions'),
    );
  const buttons = STARS.map((text, i) => ({
    type: 'button',
    text: { type: 'plain_text', text, emoji: true },
    value: String(i + 1),
  }));

  it('ASK RATING: five buttons; the press is the rating', async () => {
    const p = { user: 'U9RATE0001', dm: 'D9RATE0001' };
    const r = ratingsOf(hub.running, 'slack', `${TEAM}:${p.user}`);
    expect((await say(p, 'rate')).status).toBe(200);
    const [ask] = await until(
      () => asks(p.dm),
      (a) => a.length === 1,
    );
    expect(ask!.args.text).toBe(DEFAULT_RATING_QUESTION);
    expect((ask!.args.blocks as { type: string; elements?: unknown[] }[]).at(-1)!.elements).toEqual(
      buttons.map((b) => expect.objectContaining(b)),
    );
    expect((await press(p, `${clock}.000200`, 5)).status).toBe(200);
    await sawText(() => texts(p.dm), 'You gave 5');
    expect(await r.ratings()).toEqual([expect.objectContaining({ score: '5', source: null })]);
  });

  it("askRating: the end posts the same buttons; the press is the ended session's rating", async () => {
    const p = { user: 'U9RATE0002', dm: 'D9RATE0002' };
    const r = ratingsOf(hub.running, 'slack', `${TEAM}:${p.user}`);
    await say(p, 'hello');
    await sawText(() => texts(p.dm), 'You said hello');
    const [session] = await r.sessions();
    await endByOperator(hub.running, session!.id);
    const [ask] = await until(
      () => asks(p.dm),
      (a) => a.length === 1,
    );
    expect(ask!.args.text).toBe(DEFAULT_RATING_QUESTION);
    expect((ask!.args.blocks as { type: string; elements?: unknown[] }[]).at(-1)!.elements).toEqual(
      buttons.map((b) => expect.objectContaining(b)),
    );
    await press(p, `${clock}.000300`, 1);
    await sawText(() => texts(p.dm), 'Thank you for your rating!');
    await r.answeredAsk(session!.id, '1');
  });
});

describe('Teams: the stars as an Adaptive Card', () => {
  let serial = 0;

  const hub = ratingHubAgainst(
    () => startBotConnector(),
    () => createTeamsAdapter(loadTeamsConfig({ TEAMS_ENABLED: 'true', TEAMS_BOT: 'default' }, '127.0.0.1')!),
  );

  const post = (activity: unknown) =>
    fetch(`${hub.running.url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(activity),
    });
  /** A 1:1 conversation of its own; `say` sends the next message in it (a card button's messageBack too). */
  const conversation = () => {
    const suffix = `rate${++serial}`;
    let n = 0;
    const first = teamsDoc.variant(teamsDoc.personalMessage, { suffix, serviceUrl: hub.fake.url });
    const say = (text: string) =>
      post(
        teamsDoc.variant(teamsDoc.personalMessage, {
          suffix,
          serviceUrl: hub.fake.url,
          text,
          id: `${first.id}.${++n}`,
        }),
      );
    return {
      id: first.conversation.id as string,
      key: `${first.from.aadObjectId}#${first.conversation.id}`,
      say,
    };
  };
  const cards = (id: string) =>
    hub.fake
      .delivered(id)
      .map((r) => r.body.attachments?.[0])
      .filter((a) => a?.contentType === 'application/vnd.microsoft.card.adaptive');
  const texts = (id: string) => hub.fake.delivered(id).map((r) => r.body.text);
  const starCard = {
    contentType: 'application/vnd.microsoft.card.adaptive',
    content: expect.objectContaining({
      body: [{ type: 'TextBlock', text: DEFAULT_RATING_QUESTION, wrap: true }],
      actions: STARS.map((title, i) => ({
        type: 'Action.Submit',
        title,
        data: { msteams: { type: 'messageBack', text: String(i + 1), displayText: title } },
      })),
    }),
  };

  it('ASK RATING: one card with five buttons (Teams shows only three suggested actions); the press is the rating', async () => {
    const c = conversation();
    const r = ratingsOf(hub.running, 'teams', c.key);
    expect((await c.say('rate')).status).toBe(200);
    const [card] = await until(
      () => cards(c.id),
      (x) => x.length === 1,
    );
    expect(card).toEqual(starCard);
    // A messageBack press arrives as a message whose text is the button's `text`.
    await c.say('4');
    await sawText(() => texts(c.id), 'You gave 4');
    expect(await r.ratings()).toEqual([expect.objectContaining({ score: '4', source: null })]);
  });

  it("askRating: the end sends the same card; the press is the ended session's rating", async () => {
    const c = conversation();
    const r = ratingsOf(hub.running, 'teams', c.key);
    await c.say('hello');
    await sawText(() => texts(c.id), 'You said hello');
    const [session] = await r.sessions();
    await endByOperator(hub.running, session!.id);
    const [card] = await until(
      () => cards(c.id),
      (x) => x.length === 1,
    );
    expect(card).toEqual(starCard);
    await c.say('3');
    await sawText(() => texts(c.id), 'Thank you for your rating!');
    await r.answeredAsk(session!.id, '3');
  });
});
