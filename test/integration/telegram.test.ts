import { spawn } from 'node:child_process';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTelegramCommand } from '../../adapters/telegram/cli.ts';
import { createTelegramAdapter, loadTelegramConfig } from '../../adapters/telegram/index.ts';
import { SessionSettingsSchema } from '../../src/lifecycle/rules.ts';
import * as doc from '../fixtures/telegram/updates.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { botApiError, startTelegramBotApi, type TelegramBotApi } from '../helpers/telegram-bot-api.ts';
import { postTelegramUpdate } from '../helpers/telegram-hub.ts';
import { until } from '../helpers/until.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const DIALOG_CONFIG = path.join(REPO_ROOT, 'test/fixtures/dialog');
const TOKEN = '7100000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
const SECRET = 'hub-secret_0123456789';
const RATE_LIMIT = 8;
const NOTICE = SessionSettingsSchema.parse({}).rateLimitNotice;

const env = (api: TelegramBotApi, extra: Record<string, string> = {}) => ({
  TELEGRAM_BOT_TOKEN: TOKEN,
  TELEGRAM_WEBHOOK_SECRET: SECRET,
  TELEGRAM_API_URL: api.url,
  ...extra,
});

/** POSTs an update as Telegram does: JSON, with the secret token header (or another, or none). */
const deliver = (hub: RunningHub, update: unknown, secret: string | null = SECRET) =>
  postTelegramUpdate(hub.url, update, secret);

describe('Telegram through a whole hub', () => {
  let api: TelegramBotApi;
  let running: RunningHub;
  let serial = 0;

  beforeAll(async () => {
    api = await startTelegramBotApi(TOKEN);
    running = await startTestHub(
      { configDir: FIXTURE_CONFIG, rateLimitPerMinute: RATE_LIMIT },
      { adapters: [createTelegramAdapter(loadTelegramConfig(env(api))!)] },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await api?.close();
  });

  /** A fresh person (their private chat id) and update ids of their own for each test. */
  const person = () => 500_000 + ++serial * 1000;
  let updates = 0;
  const say = (userId: number, text: string, template: doc.Json = doc.textMessage) =>
    doc.variant(template, { updateId: userId + ++updates, userId, text });

  const texts = (chatId: number) => api.sentTo(chatId).map((c) => c.body.text as string);
  const query = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    (await running.hub.db.query(sql, params)).rows as T[];

  it('a private message reaches the engine; the answer goes to the chat with sendMessage; the person is identified', async () => {
    const chat = person();
    const update = say(chat, 'Hello');
    const res = await deliver(running, update);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: 'accepted',
      envelope_id: `telegram:7100000001:${update.update_id}`,
    });
    await until(
      () => texts(chat),
      (t) => t.length >= 2,
    );
    expect(texts(chat)).toEqual(['welcome', 'echo Hello #1']);
    // "typing…" while the bot worked.
    expect(api.calls.some((c) => c.method === 'sendChatAction' && c.body.chat_id === String(chat))).toBe(
      true,
    );
    const [session] = await query<{
      id: string;
      user_id: string | null;
      meta: { name?: string; username?: string };
    }>(`SELECT id, user_id, meta FROM sessions WHERE channel = 'telegram' AND native_key = $1`, [
      String(chat),
    ]);
    expect(session!.user_id).not.toBeNull();
    expect(session!.meta).toMatchObject({ name: 'Test Firstname Test Lastname', username: 'Testusername' });
    const identities = await query(
      `SELECT user_id FROM user_identities WHERE channel = 'telegram' AND native_id = $1`,
      [String(chat)],
    );
    expect(identities).toEqual([{ user_id: session!.user_id }]);
    const rows = await until(
      () =>
        query<{ delivery_status: string; channel_message_id: string | null }>(
          `SELECT delivery_status, channel_message_id FROM messages WHERE session_id = $1 AND role = 'assistant' ORDER BY seq`,
          [session!.id],
        ),
      (r) => r.length === 2 && r.every((m) => m.delivery_status === 'sent'),
    );
    expect(rows.every((r) => new RegExp(`^${chat}:\\d+$`).test(r.channel_message_id ?? ''))).toBe(true);
  });

  it('a wrong or missing secret token is 401 and nothing is queued', async () => {
    const chat = person();
    const update = say(chat, 'forged');
    for (const secret of ['not-the-secret', null, `${SECRET}x`, '']) {
      const res = await deliver(running, update, secret);
      expect(res.status).toBe(401);
      expect((await res.json()).error.code).toBe('invalid_secret_token');
    }
    expect(
      await query(`SELECT 1 FROM inbox WHERE envelope_id = $1`, [`telegram:7100000001:${update.update_id}`]),
    ).toEqual([]);
    // The person's first real message is their first: nothing of the refused one was processed.
    await deliver(running, say(chat, 'real'));
    await until(
      () => texts(chat),
      (t) => t.length >= 2,
    );
    expect(texts(chat)).toEqual(['welcome', 'echo real #1']);
  });

  it('a redelivered update_id is processed once', async () => {
    const chat = person();
    const update = say(chat, 'once');
    const results = await Promise.all([
      deliver(running, update),
      deliver(running, update),
      deliver(running, update),
    ]);
    const bodies = await Promise.all(results.map((r) => r.json()));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(bodies.map((b) => b.status).sort()).toEqual(['accepted', 'duplicate', 'duplicate']);
    // Telegram redelivers later too (it got no answer in time): still a duplicate.
    expect(await (await deliver(running, update)).json()).toMatchObject({ status: 'duplicate' });
    await deliver(running, say(chat, 'after'));
    await until(
      () => texts(chat),
      (t) => t.includes('echo after #2'),
    );
    expect(texts(chat)).toEqual(['welcome', 'echo once #1', 'echo after #2']);
  });

  it("a button press (callback_query) is the button's data, and the button stops spinning", async () => {
    const chat = person();
    await deliver(running, say(chat, 'first'));
    await until(
      () => texts(chat),
      (t) => t.length >= 2,
    );
    const press = doc.variant(doc.callbackQueryInChat, {
      updateId: chat + ++updates,
      userId: chat,
      text: 'size:s',
    });
    expect((await deliver(running, press)).status).toBe(200);
    await until(
      () => texts(chat),
      (t) => t.length >= 3,
    );
    expect(texts(chat)[2]).toBe('echo size:s #2');
    await until(
      () =>
        api.calls.filter(
          (c) => c.method === 'answerCallbackQuery' && c.body.callback_query_id === press.callback_query.id,
        ),
      (c) => c.length === 1,
    );
  });

  it('groups are off by default, other bots and edits are never answered: acknowledged, nothing queued', async () => {
    const group = doc.variant(doc.groupMessage, { updateId: 9_000_001, text: 'hello group' });
    const bot = doc.variant(doc.botMessage, { updateId: 9_000_002 });
    const edit = doc.variant(doc.editedMessage, { updateId: 9_000_003 });
    for (const update of [group, bot, edit]) {
      const res = await deliver(running, update);
      expect(res.status).toBe(200);
      expect((await res.json()).status).toBe('ignored');
    }
    expect(await query(`SELECT 1 FROM inbox WHERE envelope_id LIKE 'telegram:7100000001:900000_'`)).toEqual(
      [],
    );
    expect(api.sentTo(-1001111111)).toEqual([]);
  });

  it("service messages run no turn and are acknowledged as ignored; a Mini App's data is the text", async () => {
    const chat = person();
    for (const template of [doc.pinnedMessage, doc.writeAccessAllowed, doc.pollMessage]) {
      const res = await deliver(running, doc.variant(template, { updateId: chat + ++updates, userId: chat }));
      expect(res.status).toBe(200);
      expect((await res.json()).status).toBe('ignored');
    }
    await deliver(running, say(chat, 'hello'));
    await deliver(running, doc.variant(doc.webAppData, { updateId: chat + ++updates, userId: chat }));
    await until(
      () => texts(chat),
      (t) => t.length >= 3,
    );
    expect(texts(chat)).toEqual(['welcome', 'echo hello #1', 'echo {"order":42} #2']);
  });

  it('flood control (429 with retry_after) is waited out and the reply goes once; a blocked bot fails at once', async () => {
    const chat = person();
    api.script(
      (c) => c.method === 'sendMessage' && c.body.chat_id === String(chat) && c.body.text === 'welcome',
      botApiError(429, 'Too Many Requests: retry after 1', { retry_after: 1 }),
    );
    await deliver(running, say(chat, 'flood'));
    await until(
      () => texts(chat),
      (t) => t.includes('echo flood #1'),
      20_000,
    );
    expect(texts(chat)).toEqual(['welcome', 'welcome', 'echo flood #1']);

    const blocked = person();
    api.script(
      (c) => c.method === 'sendMessage' && c.body.chat_id === String(blocked),
      botApiError(403, 'Forbidden: bot was blocked by the user'),
    );
    api.script(
      (c) => c.method === 'sendMessage' && c.body.chat_id === String(blocked),
      botApiError(403, 'Forbidden: bot was blocked by the user'),
    );
    await deliver(running, say(blocked, 'hi'));
    const rows = await until(
      () =>
        query<{ delivery_status: string; delivery_error: string; delivery_attempts: number }>(
          `SELECT m.delivery_status, m.delivery_error, m.delivery_attempts FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE s.channel = 'telegram' AND s.native_key = $1 AND m.role = 'assistant' ORDER BY m.seq`,
          [String(blocked)],
        ),
      (r) => r.length === 2 && r.every((m) => m.delivery_status === 'failed'),
    );
    expect(rows[0]!.delivery_error).toBe('Telegram error 403: Forbidden: bot was blocked by the user');
    expect(rows.map((r) => r.delivery_attempts)).toEqual([1, 1]);
  });

  it('the rate limit holds: messages over it are recorded as refused, and the person is told once', async () => {
    const chat = person();
    for (let i = 1; i <= RATE_LIMIT + 2; i++) {
      const res = await deliver(running, say(chat, `message ${i}`));
      // Telegram is always told "received": a refusal is ours to handle, not a reason to redeliver.
      expect(res.status, `message ${i}`).toBe(200);
    }
    const inbound = await until(
      () =>
        query<{ content: string; refused: string | null }>(
          `SELECT m.content, m.payload->>'refused' AS refused FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE s.channel = 'telegram' AND s.native_key = $1 AND m.role = 'user' ORDER BY m.seq`,
          [String(chat)],
        ),
      (r) => r.length === RATE_LIMIT + 2,
    );
    expect(inbound.slice(0, RATE_LIMIT).every((r) => r.refused === null)).toBe(true);
    expect(inbound.slice(RATE_LIMIT).map((r) => [r.content, r.refused])).toEqual([
      [`message ${RATE_LIMIT + 1}`, 'rate_limited'],
      [`message ${RATE_LIMIT + 2}`, 'rate_limited'],
    ]);
    await until(
      () => texts(chat).filter((t) => t === NOTICE),
      (n) => n.length >= 1,
    );
    await until(
      () => texts(chat),
      (t) => t.includes(`echo message ${RATE_LIMIT} #${RATE_LIMIT}`),
    );
    expect(texts(chat).filter((t) => t === NOTICE)).toHaveLength(1);
    expect(texts(chat).some((t) => t.startsWith(`echo message ${RATE_LIMIT + 1}`))).toBe(false);
  });
});

describe('Telegram with a dialog script', () => {
  let api: TelegramBotApi;
  let running: RunningHub;

  beforeAll(async () => {
    api = await startTelegramBotApi(TOKEN);
    running = await startTestHub(
      { configDir: DIALOG_CONFIG },
      {
        adapters: [
          createTelegramAdapter(
            loadTelegramConfig(env(api, { TELEGRAM_BOT: 'intake', TELEGRAM_GROUPS: 'accept' }))!,
          ),
        ],
      },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await api?.close();
  });

  it('HEAR waits for the answer; the choices are a reply keyboard whose button sends the label', async () => {
    const chat = 777_001;
    const sent = () => api.sentTo(chat);
    let n = 0;
    const say = (text: string) =>
      deliver(running, doc.variant(doc.textMessage, { updateId: 880_000 + ++n, userId: chat, text }));
    await say('hi');
    await until(sent, (s) => s.length >= 1);
    await say('Ana');
    await until(sent, (s) => s.length >= 2);
    expect(sent()[0]!.body.text).toBe('Welcome on telegram. What is your name?');
    expect(sent()[1]!.body).toMatchObject({
      chat_id: String(chat),
      text: 'Which plan, Ana?',
      reply_markup: {
        keyboard: [[{ text: 'Basic' }, { text: 'Pro' }]],
        one_time_keyboard: true,
        resize_keyboard: true,
      },
    });
    // Tapping "Pro" sends its label as a message.
    await say(sent()[1]!.body.reply_markup.keyboard[0][1].text);
    await until(sent, (s) => s.length >= 3);
    expect(sent()[2]!.body.text).toBe('Thanks Ana (telegram), plan Pro');
    expect(sent()[2]!.body.reply_markup).toBeUndefined();
  });

  it("a mention waits for the bot's username: getMe failing is a 503 Telegram retries; once read it is kept", async () => {
    const group = -1002223335;
    const mention = (updateId: number, userId: number) => {
      const u = doc.variant(doc.groupMention, { updateId, userId }) as doc.Json;
      u.message.chat.id = group;
      return u;
    };
    const getMe = () => api.calls.filter((c) => c.method === 'getMe').length;
    api.script((c) => c.method === 'getMe', botApiError(500, 'Internal Server Error'));
    const first = mention(995_001, 51);
    const refused = await deliver(running, first);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(
      await running.hub.db.query(`SELECT 1 FROM inbox WHERE envelope_id = $1`, [
        'telegram:7100000001:995001',
      ]),
    ).toMatchObject({ rows: [] });
    // Telegram delivers it again.
    expect(await (await deliver(running, first)).json()).toMatchObject({ status: 'accepted' });
    expect(await (await deliver(running, mention(995_002, 52))).json()).toMatchObject({ status: 'accepted' });
    expect(getMe()).toBe(2);
    await until(
      () => api.sentTo(group),
      (s) => s.length >= 2,
    );
  });

  it('with TELEGRAM_GROUPS=accept, a person talks to the bot by mentioning it, its /command or a reply to it; each is a session of their own, answered in reply', async () => {
    const group = -1002223334;
    let n = 990_000;
    const inGroup = (template: doc.Json, userId: number, text?: string) => {
      const u = doc.variant(template, { updateId: ++n, userId, ...(text ? { text } : {}) }) as doc.Json;
      u.message.chat.id = group;
      u.message.from = { ...u.message.from, id: userId, first_name: `Person${userId}` };
      return u;
    };
    const sent = () => api.sentTo(group);
    // A join, the group's chatter, a mention and a command of another bot: not for this bot.
    for (const update of [
      inGroup(doc.newChatMembers, 41),
      inGroup(doc.groupMessage, 41),
      inGroup(doc.groupMentionOfAnother, 42),
      inGroup(doc.groupCommandOfAnother, 42),
    ]) {
      const res = await deliver(running, update);
      expect(res.status).toBe(200);
      expect((await res.json()).status).toBe('ignored');
    }
    const mention = inGroup(doc.groupMention, 41);
    const command = inGroup(doc.groupCommand, 42);
    await deliver(running, mention);
    await deliver(running, command);
    await until(sent, (s) => s.length >= 2);
    expect(sent().map((c) => c.body.text)).toEqual([
      'Welcome on telegram. What is your name?',
      'Welcome on telegram. What is your name?',
    ]);
    // Two people, two sessions: their answers go out in either order.
    expect(
      sent()
        .map((c) => c.body.reply_parameters.message_id as number)
        .sort(),
    ).toEqual([mention.message.message_id, command.message.message_id]);
    // The answer said to the group, not to the bot, is not taken; the reply to its question is.
    expect((await (await deliver(running, inGroup(doc.groupMessage, 41, 'Bob'))).json()).status).toBe(
      'ignored',
    );
    await deliver(running, inGroup(doc.groupReplyToBot, 41, 'Ana'));
    await until(sent, (s) => s.length >= 3);
    expect(sent()[2]!.body).toMatchObject({ text: 'Which plan, Ana?', reply_parameters: { message_id: n } });
    const keys = await running.hub.db.query<{ native_key: string }>(
      `SELECT native_key FROM sessions WHERE channel = 'telegram' AND native_key LIKE $1 ORDER BY native_key`,
      [`%#${group}`],
    );
    expect(keys.rows.map((r) => r.native_key)).toEqual([`41#${group}`, `42#${group}`]);
  });
});

describe('switchboard telegram set-webhook', () => {
  let api: TelegramBotApi;
  beforeAll(async () => {
    api = await startTelegramBotApi(TOKEN);
  });
  afterAll(async () => {
    await api?.close();
  });

  const run = async (extra: Record<string, string>, args = ['set-webhook']) => {
    let out = '';
    const stream = new Writable({
      write(chunk, _enc, done) {
        out += String(chunk);
        done();
      },
    });
    const code = await runTelegramCommand(args, env(api, extra), stream);
    return { code, out };
  };

  it('registers PUBLIC_URL/webhooks/telegram with the secret and the update types, and reads it back', async () => {
    const { code, out } = await run({ PUBLIC_URL: 'https://hub.example.com/' });
    expect(code).toBe(0);
    expect(api.webhook()).toEqual({
      url: 'https://hub.example.com/webhooks/telegram',
      secret: SECRET,
      allowedUpdates: ['message', 'callback_query'],
    });
    const call = api.calls.find((c) => c.method === 'setWebhook')!;
    expect(call.body.drop_pending_updates).toBeUndefined();
    expect(out).toContain('webhook set: https://hub.example.com/webhooks/telegram');
    expect(out).toContain('allowed updates: message, callback_query');
    await run({ PUBLIC_URL: 'https://hub.example.com' }, ['set-webhook', '--drop-pending-updates']);
    expect(api.calls.filter((c) => c.method === 'setWebhook').at(-1)!.body.drop_pending_updates).toBe(true);
  });

  it('needs PUBLIC_URL, over https; refuses an unknown command', async () => {
    await expect(run({})).rejects.toThrow(/set PUBLIC_URL/);
    await expect(run({ PUBLIC_URL: 'http://hub.example.com' })).rejects.toThrow(
      /only delivers webhooks to https/,
    );
    await expect(run({ PUBLIC_URL: 'https://hub.example.com' }, ['delete-everything'])).rejects.toThrow(
      /unknown telegram command/,
    );
  });

  it('runs as `switchboard telegram set-webhook`, and `switchboard help` lists it', async () => {
    const cli = (args: string[], extra: Record<string, string> = {}) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/switchboard.js'), ...args], {
          env: { PATH: process.env.PATH ?? '', ...env(api), ...extra },
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('exit', (code) => resolve({ code, out, err }));
      });
    const ok = await cli(['telegram', 'set-webhook'], { PUBLIC_URL: 'https://cli.example.com' });
    expect(ok).toMatchObject({ code: 0, err: '' });
    expect(ok.out).toContain('webhook set: https://cli.example.com/webhooks/telegram');
    expect(api.webhook().url).toBe('https://cli.example.com/webhooks/telegram');
    const missing = await cli(['telegram', 'set-webhook']);
    expect(missing.code).toBe(1);
    expect(missing.err).toBe(
      'switchboard: set PUBLIC_URL to the hub’s address as the internet sees it (https://…)\n',
    );
    expect((await cli(['help'])).out).toContain('telegram set-webhook [--drop-pending-updates]');
  });

  it("a token Telegram does not know: the Bot API's 401 is the error", async () => {
    let caught: unknown;
    try {
      await runTelegramCommand(
        ['set-webhook'],
        {
          ...env(api),
          TELEGRAM_BOT_TOKEN: '7100000001:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
          PUBLIC_URL: 'https://hub.example.com',
        },
        new Writable({ write: (_c, _e, done) => done() }),
      );
    } catch (err) {
      caught = err;
    }
    expect(String(caught)).toBe('ConfigError: Telegram refused: 401 Unauthorized');
  });
});
