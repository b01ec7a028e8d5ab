import type { OutboundReply } from '../../src/delivery/sender.ts';
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

export interface SendMessageCall {
  chat_id: string;
  text: string;
  reply_markup?:
    | {
        keyboard: { text: string }[][];
        one_time_keyboard: true;
        resize_keyboard: true;
      }
    /** A rating ask: buttons under the message. */
    | { inline_keyboard: { text: string; callback_data: string }[][] };
  reply_parameters?: { message_id: number; allow_sending_without_reply: true };
  message_thread_id?: number;
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
