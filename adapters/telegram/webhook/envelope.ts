import type { EnvelopeInput } from '../../../src/envelope.ts';
import type { TelegramReplyTo } from '../reply-to.ts';
import { addressedToBot, withoutBotMention } from './addressing.ts';
import type { InboundCallback, InboundMessage, TelegramChat, TelegramUser } from './parse.ts';

export interface EnvelopeOptions {
  bot: string;
  /** The bot's own user id: update ids count per bot, so the envelope id carries it. */
  botUserId: string;
  /** The bot's @username (getMe), when a group message needs it: see `needsBotUsername`. */
  botUsername?: string;
  /**
   * Group chats: `ignore`d; `accept`ed when a message is meant for the bot (a mention, a reply
   * to it, its /command); or `all` answered.
   */
  groups: 'ignore' | 'accept' | 'all';
  now?: Date;
}

export type EnvelopeResult = { envelope: EnvelopeInput } | { skipped: string };

/** A platform time this far ahead of ours is not believed (clock skew, or a bad value). */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * A message as an envelope. The id is `telegram:<bot id>:<update_id>`, so a redelivered update is
 * a duplicate. In a private chat the session key is the chat id (which is the person's user id);
 * in an accepted group it is the person within the group (`<user id>#<chat id>`).
 */
export function messageToEnvelope(updateId: number, msg: InboundMessage, o: EnvelopeOptions): EnvelopeResult {
  const now = o.now ?? new Date();
  const sentAt = msg.sentAt.getTime() <= now.getTime() + MAX_CLOCK_SKEW_MS ? msg.sentAt : now;
  const who = identify(msg.chat, msg.from, o);
  if ('skipped' in who) return who;
  const inGroup = msg.chat.type !== 'private';
  if (
    inGroup &&
    o.groups === 'accept' &&
    !addressedToBot(msg, { userId: o.botUserId, username: o.botUsername })
  )
    return { skipped: 'a group message not meant for the bot (TELEGRAM_GROUPS=accept)' };
  const replyTo: TelegramReplyTo = { chatId: msg.chat.id };
  if (inGroup) replyTo.replyToMessageId = msg.messageId;
  if (msg.topicId !== undefined) replyTo.topicId = msg.topicId;
  return {
    envelope: {
      id: updateEnvelopeId(o.botUserId, updateId),
      channel: 'telegram',
      bot: o.bot,
      from: who.from,
      ...(who.thread ? { thread: who.thread } : {}),
      text: inGroup ? withoutBotMention(msg.text, o.botUsername) : msg.text,
      attachments: msg.attachments,
      replyTo,
      meta: {
        ...userMeta(msg.from),
        ...(msg.webApp
          ? { type: 'web_app_data', ...(msg.webApp.buttonText ? { buttonText: msg.webApp.buttonText } : {}) }
          : {}),
        chatType: msg.chat.type,
        ...(msg.chat.title ? { chatTitle: msg.chat.title } : {}),
        messageId: msg.messageId,
        updateId,
        sentAt: sentAt.toISOString(),
        ...(msg.replyToMessageId !== undefined ? { replyToMessageId: msg.replyToMessageId } : {}),
      },
      receivedAt: now.toISOString(),
    },
  };
}

/**
 * A button press (`callback_query`) as an envelope whose text is the button's data, in the
 * session of the chat the button was shown in.
 */
export function callbackToEnvelope(updateId: number, q: InboundCallback, o: EnvelopeOptions): EnvelopeResult {
  if (!q.chat) return { skipped: 'a button of an inline-mode message has no chat to answer in' };
  const now = o.now ?? new Date();
  const who = identify(q.chat, q.from, o);
  if ('skipped' in who) return who;
  const replyTo: TelegramReplyTo = { chatId: q.chat.id };
  if (q.chat.type !== 'private' && q.messageId !== undefined) replyTo.replyToMessageId = q.messageId;
  return {
    envelope: {
      id: updateEnvelopeId(o.botUserId, updateId),
      channel: 'telegram',
      bot: o.bot,
      from: who.from,
      ...(who.thread ? { thread: who.thread } : {}),
      text: q.data,
      attachments: [],
      replyTo,
      meta: {
        ...userMeta(q.from),
        chatType: q.chat.type,
        type: 'callback_query',
        callbackQueryId: q.id,
        ...(q.messageId !== undefined ? { messageId: q.messageId } : {}),
        updateId,
      },
      receivedAt: now.toISOString(),
    },
  };
}

export function updateEnvelopeId(botUserId: string, updateId: number): string {
  return `telegram:${botUserId}:${updateId}`;
}

function identify(
  chat: TelegramChat,
  user: TelegramUser | undefined,
  o: EnvelopeOptions,
): { from: EnvelopeInput['from']; thread?: string } | { skipped: string } {
  if (user?.isBot) return { skipped: 'sent by a bot' };
  const name = user?.name ? { name: user.name } : {};
  if (chat.type === 'private') return { from: { id: chat.id, ...name } };
  if (chat.type === 'channel') return { skipped: 'channel posts are not conversations' };
  if (o.groups === 'ignore') return { skipped: 'group chats are off (TELEGRAM_GROUPS=ignore)' };
  if (!user) return { skipped: 'a group message without a sender' };
  return { from: { id: user.id, ...name }, thread: chat.id };
}

function userMeta(user: TelegramUser | undefined): Record<string, unknown> {
  if (!user) return {};
  return {
    userId: user.id,
    ...(user.username ? { username: user.username } : {}),
    ...(user.languageCode ? { languageCode: user.languageCode } : {}),
  };
}
