import { createHash } from 'node:crypto';
import { type Card, isLinkButton } from '../../src/cards/card.ts';
import type { OutboundReply } from '../../src/delivery/sender.ts';
import { payloadCards } from '../../src/files/client-view.ts';
import { isRatingAsk, RATING_SUGGESTIONS } from '../../src/lifecycle/rating.ts';
import type { Suggestion } from '../../src/store/records.ts';
import { splitText } from '../../src/text.ts';
import type { TelegramReplyTo } from './reply-to.ts';

/** `sendMessage`'s text limit, in characters after entity parsing (we send plain text). */
export const TEXT_MAX = 4096;
/** Buttons a reply keyboard row holds when their labels are short. */
export const BUTTONS_PER_ROW = 3;
/** A label longer than this gets a row of its own. */
export const SHORT_LABEL = 20;
/** Telegram refuses an empty message; this stands in when a reply is only suggestions. */
export const EMPTY_TEXT_PROMPT = 'Please choose:';

/** A photo's or document's caption limit. */
export const CAPTION_MAX = 1024;
/** `callback_data` is at most 64 bytes: a longer value goes as a stored key. */
export const CALLBACK_DATA_MAX = 64;
/** `callback_data` that names a stored value: `sb:<key>`. */
export const CALLBACK_KEY_PREFIX = 'sb:';
/** The adapter store's key of a long button value: `callback:<key>`. */
export const CALLBACK_VALUE_KEY = 'callback:';
/**
 * A long button value is kept this long at most (and no longer than its session: it goes when
 * the session ends or is removed, an erasure included). A press after that is told the button
 * has expired.
 */
export const CALLBACK_VALUE_TTL_MS = 7 * 86_400_000;
/** Images sent with `sendPhoto` (shown inline); every other file is a document. */
const PHOTO_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp']);

export type InlineButton = { text: string; callback_data: string } | { text: string; url: string };

export interface ReplyKeyboard {
  keyboard: { text: string }[][];
  one_time_keyboard: true;
  resize_keyboard: true;
}

export interface SendMessageCall {
  chat_id: string;
  text: string;
  /** Suggestions: a reply keyboard; a rating ask: inline buttons under the message. */
  reply_markup?: ReplyKeyboard | { inline_keyboard: InlineButton[][] };
  reply_parameters?: { message_id: number; allow_sending_without_reply: true };
  message_thread_id?: number;
}

/** A photo or document: a stored file (uploaded as multipart) or an https URL Telegram fetches. */
export interface SendFileCall extends Omit<SendMessageCall, 'text'> {
  method: 'sendPhoto' | 'sendDocument';
  file: { fileId: string; name?: string } | { url: string };
  caption?: string;
}

export type TelegramCall = ({ method: 'sendMessage' } & SendMessageCall) | SendFileCall;

/** A button value too long for `callback_data`, and the key its button carries instead. */
export interface LongValue {
  key: string;
  value: string;
}

/**
 * The key a long button value is stored under; its `callback_data` is `sb:<key>`. Each session
 * (`scope`) has keys of its own, so that its values go with it (an erasure's, the end's) and
 * never with another person's.
 */
export function callbackKey(value: string, scope: string): string {
  return createHash('sha256').update(scope).update('\n').update(value).digest('base64url').slice(0, 32);
}

/** A value button's `callback_data`: the value itself when it fits, else a stored key (`key`). */
export function callbackData(value: string, scope: string): { data: string; key?: string } {
  if (Buffer.byteLength(value) <= CALLBACK_DATA_MAX && !value.startsWith(CALLBACK_KEY_PREFIX))
    return { data: value };
  const key = callbackKey(value, scope);
  return { data: `${CALLBACK_KEY_PREFIX}${key}`, key };
}

/**
 * Everything one reply sends, in order: its text (as `planReply` cuts it) — or, when the reply
 * carries files and a short text, the text as the first file's caption — then the files
 * (`sendPhoto` for pictures, `sendDocument` otherwise), then each card as a message of its own
 * with an inline keyboard (a picture card as a photo with the card as caption). `longValues` are
 * the button values too long for `callback_data` and their keys (in `scope`, the session's id),
 * to be stored before the cards go.
 */
export function planCalls(
  reply: OutboundReply,
  to: TelegramReplyTo,
  scope: string,
): { calls: TelegramCall[]; longValues: LongValue[]; droppedAttachments: number } {
  const cards = payloadCards(reply.payload.cards);
  const files: SendFileCall['file'][] = [];
  let dropped = 0;
  for (const a of (reply.payload.attachments ?? []) as {
    fileId?: unknown;
    name?: unknown;
    type?: unknown;
  }[]) {
    if (typeof a?.fileId !== 'string') {
      dropped++;
      continue;
    }
    files.push({ fileId: a.fileId, ...(typeof a.name === 'string' ? { name: a.name } : {}) });
  }
  const types = new Map(
    ((reply.payload.attachments ?? []) as { fileId?: unknown; type?: unknown }[]).flatMap((a) =>
      typeof a?.fileId === 'string' && typeof a.type === 'string' ? [[a.fileId, a.type] as const] : [],
    ),
  );
  const fallback = reply.payload.textIsFallback === true && (cards.length > 0 || files.length > 0);
  const hasSuggestions = (reply.payload.suggestions ?? []).length > 0;
  const caption =
    !fallback &&
    files.length > 0 &&
    !hasSuggestions &&
    reply.text.trim() !== '' &&
    reply.text.length <= CAPTION_MAX
      ? reply.text
      : undefined;
  const calls: TelegramCall[] =
    fallback || caption !== undefined
      ? []
      : planReply(reply, to).calls.map((c) => ({ method: 'sendMessage' as const, ...c }));
  const where = (first: boolean) => ({
    chat_id: to.chatId,
    ...(first && to.replyToMessageId !== undefined
      ? { reply_parameters: { message_id: to.replyToMessageId, allow_sending_without_reply: true as const } }
      : {}),
    ...(to.topicId !== undefined ? { message_thread_id: to.topicId } : {}),
  });
  files.forEach((file, i) => {
    const type = 'fileId' in file ? types.get(file.fileId) : undefined;
    calls.push({
      method: type && PHOTO_TYPES.has(type) ? 'sendPhoto' : 'sendDocument',
      ...where(calls.length === 0),
      file,
      ...(i === 0 && caption !== undefined ? { caption } : {}),
    });
  });
  const longValues: LongValue[] = [];
  for (const card of cards) {
    const keyboard = inlineKeyboard(card, scope, longValues);
    const text = [card.title, card.text].filter(Boolean).join('\n\n');
    const markup = keyboard.length > 0 ? { reply_markup: { inline_keyboard: keyboard } } : {};
    if (card.image && text.length <= CAPTION_MAX) {
      calls.push({
        method: 'sendPhoto',
        ...where(calls.length === 0),
        file:
          'url' in card.image
            ? { url: card.image.url }
            : { fileId: card.image.fileId, ...(card.image.name ? { name: card.image.name } : {}) },
        ...(text ? { caption: text } : {}),
        ...markup,
      });
      continue;
    }
    for (const piece of splitText(text || EMPTY_TEXT_PROMPT, TEXT_MAX))
      calls.push({ method: 'sendMessage', ...where(calls.length === 0), text: piece });
    const last = calls.at(-1);
    if (last && keyboard.length > 0) last.reply_markup = { inline_keyboard: keyboard };
  }
  return { calls, longValues, droppedAttachments: dropped };
}

/** A card's buttons, one per row: a value button answers with `callback_data`, a link opens `url`. */
function inlineKeyboard(card: Card, scope: string, longValues: LongValue[]): InlineButton[][] {
  return card.buttons.map((b) => {
    if (isLinkButton(b)) return [{ text: b.title, url: b.url }];
    const { data, key } = callbackData(b.value, scope);
    if (key !== undefined) longValues.push({ key, value: b.value });
    return [{ text: b.title, callback_data: data }];
  });
}

/**
 * The `sendMessage` calls that carry one reply: its text in pieces of at most 4,096 characters,
 * the suggestions as a one-time reply keyboard on the last piece (a button sends its label as the
 * person's next message); a rating ask's five stars as inline buttons whose press sends the score. Attachments are not sent on this channel yet: the count is returned.
 */
export function planReply(
  reply: OutboundReply,
  to: TelegramReplyTo,
): { calls: SendMessageCall[]; droppedAttachments: number } {
  const suggestions = uniqueLabels(reply.payload.suggestions ?? []);
  let pieces = splitText(reply.text, TEXT_MAX).filter((p) => p.trim() !== '');
  if (pieces.length === 0 && suggestions.length > 0) pieces = [EMPTY_TEXT_PROMPT];
  const calls = pieces.map((text, i): SendMessageCall => {
    const call: SendMessageCall = { chat_id: to.chatId, text };
    // In a group only the first piece answers the person's message; the rest follow it.
    if (i === 0 && to.replyToMessageId !== undefined)
      call.reply_parameters = { message_id: to.replyToMessageId, allow_sending_without_reply: true };
    if (to.topicId !== undefined) call.message_thread_id = to.topicId;
    return call;
  });
  const last = calls.at(-1);
  if (last && isRatingAsk(reply.payload.suggestions))
    // A rating: buttons under the message whose press sends the score (callback_data), not the stars.
    last.reply_markup = {
      inline_keyboard: RATING_SUGGESTIONS.map((s) => [{ text: s.text, callback_data: s.value! }]),
    };
  else if (last && suggestions.length > 0)
    last.reply_markup = { keyboard: rows(suggestions), one_time_keyboard: true, resize_keyboard: true };
  return { calls, droppedAttachments: (reply.payload.attachments ?? []).length };
}

function rows(labels: string[]): { text: string }[][] {
  const out: { text: string }[][] = [];
  let row: { text: string }[] = [];
  for (const text of labels) {
    if (text.length > SHORT_LABEL) {
      if (row.length > 0) out.push(row);
      out.push([{ text }]);
      row = [];
      continue;
    }
    row.push({ text });
    if (row.length === BUTTONS_PER_ROW) {
      out.push(row);
      row = [];
    }
  }
  if (row.length > 0) out.push(row);
  return out;
}

/** A keyboard button can only send its label, so two suggestions with one label are one button. */
function uniqueLabels(suggestions: Suggestion[]): string[] {
  return [...new Set(suggestions.map((s) => s.text.trim()).filter((t) => t !== ''))];
}
