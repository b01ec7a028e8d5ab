import { describe, expect, it } from 'vitest';
import { normalizeTelegramId, telegram } from '../../adapters/telegram/channel.ts';
import { loadTelegramConfig } from '../../adapters/telegram/config.ts';
import { toSendError } from '../../adapters/telegram/errors.ts';
import { EMPTY_TEXT_PROMPT, planReply, TEXT_MAX } from '../../adapters/telegram/outbound.ts';
import { callbackToEnvelope, messageToEnvelope } from '../../adapters/telegram/webhook/envelope.ts';
import { NotATelegramUpdateError, parseUpdate } from '../../adapters/telegram/webhook/parse.ts';
import { verifySecretToken } from '../../adapters/telegram/webhook/verify.ts';
import { EnvelopeSchema, MAX_ATTACHMENT_NAME } from '../../src/envelope.ts';
import { RATING_SUGGESTIONS } from '../../src/lifecycle/rating.ts';
import * as doc from '../fixtures/telegram/updates.ts';
import { silentLogger } from '../helpers/database.ts';
import { testConfig } from '../helpers/hub.ts';

const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
const SECRET = 'S3cr3t_token-of-the-hub';
const options = {
  bot: 'default',
  botUserId: '123456789',
  groups: 'ignore' as const,
  now: new Date('2015-09-07T17:10:00Z'),
};

const message = (update: unknown) => {
  const parsed = parseUpdate(update);
  if (parsed.kind !== 'message') throw new Error(`expected a message, got ${parsed.kind}`);
  return parsed;
};

describe('Telegram webhook: the secret token', () => {
  it('accepts exactly the secret given to setWebhook', () => {
    expect(verifySecretToken(SECRET, SECRET)).toBe(true);
    expect(verifySecretToken(`${SECRET}x`, SECRET)).toBe(false);
    expect(verifySecretToken(SECRET.slice(0, -1), SECRET)).toBe(false);
    expect(verifySecretToken(SECRET.toLowerCase(), SECRET)).toBe(false);
    expect(verifySecretToken('', SECRET)).toBe(false);
    expect(verifySecretToken(undefined, SECRET)).toBe(false);
    expect(verifySecretToken('a'.repeat(257), 'a'.repeat(256))).toBe(false);
    expect(verifySecretToken('a'.repeat(256), 'a'.repeat(256))).toBe(true);
  });
});

describe('Telegram webhook: reading documented updates', () => {
  it('a text message in a private chat: the person, the chat, the time', () => {
    const { updateId, message: m } = message(doc.textMessage);
    expect(updateId).toBe(10000);
    expect(m).toEqual({
      messageId: 1365,
      chat: { id: '1111111', type: 'private' },
      from: { id: '1111111', isBot: false, name: 'Test Firstname Test Lastname', username: 'Testusername' },
      sentAt: new Date(1441645532 * 1000),
      text: '/start',
      attachments: [],
    });
  });

  it('a reply keeps the id of the message it answers', () => {
    expect(message(doc.replyMessage).message.replyToMessageId).toBe(1334);
  });

  it('audio, voice and documents are attachments referring to the file id, pending for the worker to fetch', () => {
    expect(message(doc.audioMessage).message.attachments).toEqual([
      {
        type: 'audio/mpeg',
        ref: 'AwADBAADbXXXXXXXXXXXGBdhD2l6_XX',
        size: 3897500,
        pending: true,
        data: { kind: 'audio', duration: 243 },
      },
    ]);
    expect(message(doc.voiceMessage).message.attachments[0]).toMatchObject({
      type: 'audio/ogg',
      data: { kind: 'voice', duration: 5 },
    });
    expect(message(doc.documentMessage).message.attachments).toEqual([
      {
        type: 'application/pdf',
        name: 'Testfile.pdf',
        ref: 'AwADBAADbXXXXXXXXXXXGBdhD2l6_XX',
        size: 536392,
        pending: true,
        data: { kind: 'document' },
      },
    ]);
  });

  it('edits and inline queries are acknowledged and not acted on', () => {
    expect(parseUpdate(doc.editedMessage)).toEqual({
      kind: 'other',
      updateId: 10000,
      reason: 'edited_message updates are not handled',
    });
    expect(parseUpdate(doc.inlineQuery)).toMatchObject({
      kind: 'other',
      reason: 'inline_query updates are not handled',
    });
  });

  it('a button press carries its data, and the chat when the button was on a chat message', () => {
    expect(parseUpdate(doc.callbackQuery)).toEqual({
      kind: 'callback',
      updateId: 10000,
      callback: {
        id: '4382bfdwdsb323b2d9',
        from: { id: '1111111', isBot: false, name: 'Test Firstname Test Lastname', username: 'Testusername' },
        data: 'Data from button callback',
      },
    });
    expect(parseUpdate(doc.callbackQueryInChat)).toMatchObject({
      kind: 'callback',
      callback: { chat: { id: '1111111', type: 'private' }, messageId: 1366 },
    });
  });

  it('a body without update_id is no update; an unreadable message is skipped with the reason', () => {
    expect(() => parseUpdate({ message: doc.textMessage.message })).toThrow(NotATelegramUpdateError);
    expect(() => parseUpdate('hello')).toThrow(NotATelegramUpdateError);
    const broken = structuredClone(doc.textMessage) as doc.Json;
    delete broken.message.chat;
    expect(parseUpdate(broken)).toMatchObject({
      kind: 'other',
      reason: expect.stringMatching(/^unreadable message: chat/),
    });
  });
});

describe('Telegram webhook: envelopes', () => {
  it('a document whose name is over the envelope limit: the message keeps its caption, the name is cut', () => {
    const name = `${'n'.repeat(596)}.pdf`;
    const { message: documented } = doc.documentMessage;
    const update = {
      ...doc.documentMessage,
      message: {
        ...documented,
        caption: 'my receipt',
        document: { ...documented.document, file_name: name },
      },
    };
    const { updateId, message: m } = message(update);
    const result = messageToEnvelope(updateId, m, options);
    if (!('envelope' in result)) throw new Error(`skipped: ${result.skipped}`);
    const envelope = EnvelopeSchema.parse(result.envelope);
    expect(envelope.text).toBe('my receipt');
    expect(envelope.attachments).toMatchObject([
      {
        type: 'application/pdf',
        ref: 'AwADBAADbXXXXXXXXXXXGBdhD2l6_XX',
        name: name.slice(0, MAX_ATTACHMENT_NAME),
      },
    ]);
  });

  it('a private message: the chat id is the person, the update id the envelope id', () => {
    const { updateId, message: m } = message(doc.textMessage);
    const result = messageToEnvelope(updateId, m, options);
    expect(result).toEqual({
      envelope: {
        id: 'telegram:123456789:10000',
        channel: 'telegram',
        bot: 'default',
        from: { id: '1111111', name: 'Test Firstname Test Lastname' },
        text: '/start',
        attachments: [],
        replyTo: { chatId: '1111111' },
        meta: {
          userId: '1111111',
          username: 'Testusername',
          chatType: 'private',
          messageId: 1365,
          updateId: 10000,
          sentAt: '2015-09-07T17:05:32.000Z',
        },
        receivedAt: '2015-09-07T17:10:00.000Z',
      },
    });
  });

  it('groups are off by default; answered, a person in a group is a session of their own, answered in reply', () => {
    const { updateId, message: m } = message(doc.groupMessage);
    expect(messageToEnvelope(updateId, m, options)).toEqual({
      skipped: 'group chats are off (TELEGRAM_GROUPS=ignore)',
    });
    const accepted = messageToEnvelope(updateId, m, { ...options, groups: 'all' });
    expect(accepted).toMatchObject({
      envelope: {
        from: { id: '1111111' },
        thread: '-1001111111',
        replyTo: { chatId: '-1001111111', replyToMessageId: 1365 },
        meta: { chatType: 'group', chatTitle: 'Test Group' },
      },
    });
  });

  it('a message from a bot is never answered', () => {
    const { updateId, message: m } = message(doc.botMessage);
    expect(messageToEnvelope(updateId, m, { ...options, groups: 'accept' })).toEqual({
      skipped: 'sent by a bot',
    });
  });

  it('a button press is a message of its data in the chat of the button; an inline-mode button has no chat', () => {
    const inChat = parseUpdate(doc.callbackQueryInChat);
    if (inChat.kind !== 'callback') throw new Error('callback expected');
    expect(callbackToEnvelope(inChat.updateId, inChat.callback, options)).toMatchObject({
      envelope: {
        id: 'telegram:123456789:10000',
        from: { id: '1111111' },
        text: 'Data from button callback',
        replyTo: { chatId: '1111111' },
        meta: { type: 'callback_query', callbackQueryId: '4382bfdwdsb323b2d9' },
      },
    });
    const inline = parseUpdate(doc.callbackQuery);
    if (inline.kind !== 'callback') throw new Error('callback expected');
    expect(callbackToEnvelope(inline.updateId, inline.callback, options)).toHaveProperty('skipped');
  });
});

describe('Telegram webhook: service messages and groups', () => {
  const inGroups = (groups: 'accept' | 'all') => ({
    ...options,
    botUserId: String(doc.BOT.id),
    botUsername: doc.BOT.username,
    groups,
  });

  it('service messages carry no text or media: acknowledged as other, with what they were, never a message', () => {
    const cases: [unknown, string][] = [
      [doc.newChatMembers, 'service message (new_chat_members)'],
      [doc.leftChatMember, 'service message (left_chat_member)'],
      [doc.pinnedMessage, 'service message (pinned_message)'],
      [doc.newChatTitle, 'service message (new_chat_title)'],
      [doc.migrateToChat, 'service message (migrate_to_chat_id)'],
      [doc.writeAccessAllowed, 'service message (write_access_allowed)'],
      [doc.pollMessage, 'poll messages are not handled'],
    ];
    for (const [update, reason] of cases)
      expect(parseUpdate(update)).toEqual({ kind: 'other', updateId: 10000, reason });
  });

  it("a Mini App's data is the text, the envelope's meta says web_app_data and names the button", () => {
    const { updateId, message: m } = message(doc.webAppData);
    expect(m.text).toBe('{"order":42}');
    const result = messageToEnvelope(updateId, m, options);
    if (!('envelope' in result)) throw new Error('envelope expected');
    expect(result.envelope.text).toBe('{"order":42}');
    expect(result.envelope.meta).toMatchObject({ type: 'web_app_data', buttonText: 'Order' });
  });

  it('a venue is one location attachment with its name and address', () => {
    expect(message(doc.venueMessage).message.attachments).toEqual([
      {
        type: 'location',
        data: {
          latitude: 37.44221496582,
          longitude: -122.16165924072,
          name: 'Philz Coffee',
          address: '101 Forest Ave, Palo Alto, CA 94301',
        },
      },
    ]);
  });

  it('TELEGRAM_GROUPS=accept answers a mention of the bot, a reply to it and its /command, without the mention', () => {
    const envelope = (update: unknown) => {
      const { updateId, message: m } = message(update);
      const result = messageToEnvelope(updateId, m, inGroups('accept'));
      if (!('envelope' in result)) throw new Error(`envelope expected, got ${result.skipped}`);
      return result.envelope;
    };
    expect(envelope(doc.groupMention)).toMatchObject({
      text: 'what are your hours?',
      thread: '-1001111111',
      replyTo: { chatId: '-1001111111', replyToMessageId: 1380 },
    });
    expect(envelope(doc.groupCommand).text).toBe('/start');
    expect(envelope(doc.groupReplyToBot).text).toBe('Ana');
  });

  it('TELEGRAM_GROUPS=accept leaves the rest of the group alone; all answers it', () => {
    const notForUs = 'a group message not meant for the bot (TELEGRAM_GROUPS=accept)';
    for (const update of [doc.groupMessage, doc.groupMentionOfAnother, doc.groupCommandOfAnother]) {
      const { updateId, message: m } = message(update);
      expect(messageToEnvelope(updateId, m, inGroups('accept'))).toEqual({ skipped: notForUs });
      expect(messageToEnvelope(updateId, m, inGroups('all'))).toHaveProperty('envelope');
    }
    // A private chat is always a conversation with the bot.
    const { updateId, message: m } = message(doc.textMessage);
    expect(messageToEnvelope(updateId, m, inGroups('accept'))).toHaveProperty('envelope');
  });

  it('who a message addresses comes from its entities (UTF-16 offsets) and the author of the message it replies to', () => {
    expect(message(doc.groupMention).message.addressing).toEqual({ usernames: ['switchboard_test_bot'] });
    expect(message(doc.groupCommand).message.addressing).toEqual({
      command: { name: 'start', bot: 'switchboard_test_bot' },
    });
    expect(message(doc.groupReplyToBot).message.addressing).toEqual({ replyToUserId: String(doc.BOT.id) });
    const emoji = structuredClone(doc.groupMention) as doc.Json;
    emoji.message.text = '👋 @Switchboard_Test_Bot hi';
    emoji.message.entities = [{ offset: 3, length: 21, type: 'mention' }];
    expect(message(emoji).message.addressing).toEqual({ usernames: ['switchboard_test_bot'] });
    const { updateId, message: m } = message(emoji);
    expect(messageToEnvelope(updateId, m, inGroups('accept'))).toMatchObject({ envelope: { text: '👋 hi' } });
    // Without the username (not looked up), a bare mention cannot be the bot's.
    expect(messageToEnvelope(updateId, m, { ...inGroups('accept'), botUsername: undefined })).toHaveProperty(
      'skipped',
    );
  });
});

describe('Telegram replies', () => {
  const reply = (text: string, suggestions?: { text: string; value?: string }[]) => ({
    seq: 1,
    text,
    payload: suggestions ? { suggestions } : {},
  });

  it('suggestions become a one-time reply keyboard on the last piece', () => {
    const { calls } = planReply(
      reply('Which plan?', [
        { text: 'Basic' },
        { text: 'Pro', value: 'pro' },
        { text: 'Team' },
        { text: 'Enterprise' },
      ]),
      { chatId: '1111111' },
    );
    expect(calls).toEqual([
      {
        chat_id: '1111111',
        text: 'Which plan?',
        reply_markup: {
          keyboard: [[{ text: 'Basic' }, { text: 'Pro' }, { text: 'Team' }], [{ text: 'Enterprise' }]],
          one_time_keyboard: true,
          resize_keyboard: true,
        },
      },
    ]);
  });

  it('long labels get a row each; equal labels are one button; no text gets a prompt', () => {
    const long = 'Funchal — the capital of Madeira';
    const { calls } = planReply(
      reply('', [{ text: 'A' }, { text: long }, { text: 'A', value: 'other' }, { text: 'B' }]),
      {
        chatId: '5',
      },
    );
    expect(calls).toHaveLength(1);
    expect(calls[0]!.text).toBe(EMPTY_TEXT_PROMPT);
    expect(calls[0]!.reply_markup).toEqual({
      keyboard: [[{ text: 'A' }], [{ text: long }], [{ text: 'B' }]],
      one_time_keyboard: true,
      resize_keyboard: true,
    });
  });

  it('long text is split under 4,096 characters; in a group the first piece answers the person', () => {
    const text = `${'word '.repeat(1500)}end`;
    const { calls } = planReply(reply(text, [{ text: 'OK' }]), {
      chatId: '-100',
      replyToMessageId: 7,
      topicId: 3,
    });
    expect(calls).toHaveLength(2);
    expect(calls.every((c) => c.text.length <= TEXT_MAX && c.message_thread_id === 3)).toBe(true);
    expect(calls.map((c) => c.text).join('')).toBe(text);
    expect(calls[0]!.reply_parameters).toEqual({ message_id: 7, allow_sending_without_reply: true });
    expect(calls[1]!.reply_parameters).toBeUndefined();
    expect(calls[0]!.reply_markup).toBeUndefined();
    expect(calls[1]!.reply_markup).toEqual({
      keyboard: [[{ text: 'OK' }]],
      one_time_keyboard: true,
      resize_keyboard: true,
    });
  });

  it('a rating ask is five inline buttons whose press sends the score, not the stars', () => {
    const { calls } = planReply(reply('How was it?', [...RATING_SUGGESTIONS]), { chatId: '7' });
    expect(calls).toEqual([
      {
        chat_id: '7',
        text: 'How was it?',
        reply_markup: {
          inline_keyboard: [
            [{ text: '★', callback_data: '1' }],
            [{ text: '★★', callback_data: '2' }],
            [{ text: '★★★', callback_data: '3' }],
            [{ text: '★★★★', callback_data: '4' }],
            [{ text: '★★★★★', callback_data: '5' }],
          ],
        },
      },
    ]);
    // Five star suggestions that are not the rating's values stay a reply keyboard.
    const other = planReply(
      reply(
        'Pick',
        RATING_SUGGESTIONS.map((s) => ({ text: s.text })),
      ),
      { chatId: '7' },
    );
    expect(other.calls[0]!.reply_markup).toHaveProperty('keyboard');
  });

  it('flood control waits retry_after; a blocked bot or a missing chat is not retried; outages are', () => {
    const flood = toSendError(
      { code: 429, description: 'Too Many Requests: retry after 7', retryAfterSeconds: 7 },
      [],
    );
    expect([flood.retryable, flood.retryAfterMs]).toEqual([true, 7000]);
    const blocked = toSendError({ code: 403, description: 'Forbidden: bot was blocked by the user' }, []);
    expect(blocked.retryable).toBe(false);
    expect(blocked.message).toBe('Telegram error 403: Forbidden: bot was blocked by the user');
    expect(toSendError({ code: 400, description: 'Bad Request: chat not found' }, []).retryable).toBe(false);
    expect(toSendError({ code: 502, description: 'Bad Gateway' }, []).retryable).toBe(true);
    expect(toSendError({ description: 'Network request for sendMessage failed' }, []).retryable).toBe(true);
  });
});

describe('Telegram configuration', () => {
  it('is off without its variables, and needs the token and the secret together', () => {
    expect(loadTelegramConfig({})).toBeUndefined();
    expect(() => loadTelegramConfig({ TELEGRAM_BOT_TOKEN: TOKEN })).toThrow(/needs TELEGRAM_WEBHOOK_SECRET/);
    expect(() => loadTelegramConfig({ TELEGRAM_WEBHOOK_SECRET: SECRET })).toThrow(/needs TELEGRAM_BOT_TOKEN/);
  });

  it('reads the bot id from the token, and defaults to the public Bot API', () => {
    expect(loadTelegramConfig({ TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_WEBHOOK_SECRET: SECRET })).toEqual({
      token: TOKEN,
      botUserId: '123456789',
      webhookSecret: SECRET,
      apiUrl: 'https://api.telegram.org',
      bot: 'default',
      groups: 'ignore',
      requestTimeoutMs: 15_000,
      publicUrl: undefined,
    });
  });

  it('refuses a secret Telegram would refuse, a malformed token, a bad bot name', () => {
    const base = { TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_WEBHOOK_SECRET: SECRET };
    expect(() => loadTelegramConfig({ ...base, TELEGRAM_WEBHOOK_SECRET: 'has space' })).toThrow(
      /TELEGRAM_WEBHOOK_SECRET: 1 to 256 of A-Z/,
    );
    expect(() => loadTelegramConfig({ ...base, TELEGRAM_WEBHOOK_SECRET: 'x'.repeat(257) })).toThrow(
      /TELEGRAM_WEBHOOK_SECRET/,
    );
    expect(() => loadTelegramConfig({ ...base, TELEGRAM_BOT_TOKEN: 'nope' })).toThrow(/TELEGRAM_BOT_TOKEN/);
    expect(() => loadTelegramConfig({ ...base, TELEGRAM_BOT: 'Bad Name' })).toThrow(/TELEGRAM_BOT/);
    expect(
      loadTelegramConfig({
        ...base,
        TELEGRAM_API_URL: 'http://127.0.0.1:9/',
        PUBLIC_URL: 'https://hub.example.com/',
      }),
    ).toMatchObject({
      apiUrl: 'http://127.0.0.1:9',
      publicUrl: 'https://hub.example.com',
    });
  });
});

describe('Telegram ids', () => {
  it('are integers: private chats positive, groups negative', () => {
    expect(normalizeTelegramId(' 1111111 ')).toBe('1111111');
    expect(normalizeTelegramId('-1001111111')).toBe('-1001111111');
    expect(normalizeTelegramId('007')).toBe('7');
    expect(() => normalizeTelegramId('@Testusername')).toThrow(/not a Telegram chat id/);
    expect(() => normalizeTelegramId('')).toThrow(/not a Telegram chat id/);
  });
});

describe('Telegram registration', () => {
  it('is on when its variables are set, and loadAdapter builds the adapter from them', async () => {
    expect(telegram.enabled({})).toBe(false);
    const env = { TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_WEBHOOK_SECRET: SECRET };
    expect(telegram.enabled(env)).toBe(true);
    const adapter = await telegram.loadAdapter({ config: testConfig(), env, logger: silentLogger });
    expect(adapter?.channel).toBe('telegram');
    expect(adapter?.sender).toBeDefined();
    await expect(
      telegram.loadAdapter({
        config: testConfig(),
        env: { TELEGRAM_BOT_TOKEN: TOKEN },
        logger: silentLogger,
      }),
    ).rejects.toThrow(/needs TELEGRAM_WEBHOOK_SECRET/);
  });
});

describe('Telegram: what errors say', () => {
  it('a failed request never quotes the token in the URL it names', async () => {
    const { withoutToken } = await import('../../adapters/telegram/bot-api.ts');
    expect(
      withoutToken(
        `Network request for 'sendPhoto' failed! (invalid json response body at http://127.0.0.1:1/bot${TOKEN}/sendPhoto reason: x)`,
      ),
    ).toBe(
      "Network request for 'sendPhoto' failed! (invalid json response body at http://127.0.0.1:1/bot<token>/sendPhoto reason: x)",
    );
    expect(withoutToken(`https://api.telegram.org/file/bot${TOKEN}/photos/a.jpg`)).toBe(
      'https://api.telegram.org/file/bot<token>/photos/a.jpg',
    );
  });
});
