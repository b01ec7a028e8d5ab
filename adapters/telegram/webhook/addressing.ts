import type { InboundMessage } from './parse.ts';

/** The bot as a group message can name it: its user id (from the token) and its @username (getMe). */
export interface BotIdentity {
  userId: string;
  /** Without the `@`; undefined when not looked up (a message that needs it asks for it first). */
  username?: string;
}

/**
 * Whether a group message is meant for the bot (`TELEGRAM_GROUPS=accept`): it @mentions the bot
 * (by username, or by name for a text mention), replies to one of the bot's messages, or starts
 * with a `/command` that is the bot's (`/start@this_bot`, or a bare `/start`, which Telegram
 * gives every bot of the group and, in privacy mode, only the one that spoke last). The same
 * messages reach a bot in privacy mode; an admin bot, or one with privacy off, gets every
 * message, and this keeps it from answering them all. Slack likewise answers only mentions.
 */
export function addressedToBot(msg: InboundMessage, bot: BotIdentity): boolean {
  const a = msg.addressing;
  if (!a) return false;
  const username = bot.username?.toLowerCase();
  if (a.replyToUserId === bot.userId) return true;
  if (a.userIds?.includes(bot.userId)) return true;
  if (username && a.usernames?.includes(username)) return true;
  if (a.command && (a.command.bot === undefined || a.command.bot === username)) return true;
  return false;
}

/** Whether deciding (or cleaning the text of) this message needs the bot's @username. */
export function needsBotUsername(msg: InboundMessage): boolean {
  return Boolean(msg.addressing?.usernames?.length || msg.addressing?.command?.bot);
}

/**
 * The text without the bot's @mention (`@this_bot, what time is it?` reads `, what time is it?`
 * trimmed to `what time is it?`; `/start@this_bot` reads `/start`), as Slack's mention is taken
 * out: a dialog matches what was said to the bot, not its name.
 */
export function withoutBotMention(text: string, username: string | undefined): string {
  if (!username || !/^\w+$/.test(username)) return text;
  const mention = new RegExp(`@${username}(?![A-Za-z0-9_])`, 'gi');
  const out = text.replace(mention, '');
  if (out === text) return text;
  return out
    .replace(/^[\s,:]+/, '')
    .replace(/[ \t]{2,}/g, ' ')
    .trim();
}
