import type { OutboundReply } from '../../src/delivery/sender.ts';
import type { Suggestion } from '../../src/store/records.ts';
import { splitText } from '../../src/text.ts';
import type { SlackReplyTo } from './reply-to.ts';

/** A section block's text limit; every piece is cut to it so the last one can carry the buttons. */
export const TEXT_MAX = 3000;
/** Elements one actions block holds. */
export const MAX_BUTTONS = 25;
export const BUTTON_TEXT_MAX = 75;
export const BUTTON_VALUE_MAX = 2000;
/** A section needs text; this stands in when a reply is only suggestions. */
export const EMPTY_TEXT_PROMPT = 'Please choose:';
/** The block holding the suggestions; its buttons' action ids are `suggestion-<n>`. */
export const SUGGESTIONS_BLOCK_ID = 'suggestions';

export interface PostMessageCall {
  channel: string;
  text: string;
  thread_ts?: string;
  blocks?: Record<string, unknown>[];
  /** The bot's text is never turned into link previews. */
  unfurl_links: false;
  unfurl_media: false;
}

/**
 * Slack's text is mrkdwn in which `&`, `<` and `>` are control characters (`<!channel>`, `<@U…>`,
 * links): the bot's text, which can repeat what a person wrote, is escaped so it stays text.
 */
export function escapeText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * The `chat.postMessage` calls that carry one reply, in the conversation and thread of `to`: the
 * text in pieces of at most 3,000 characters; suggestions as Block Kit buttons (value = the
 * suggestion's value) under the last piece, which keeps `text` as the notification's fallback.
 */
export function planReply(
  reply: OutboundReply,
  to: SlackReplyTo,
): { calls: PostMessageCall[]; droppedSuggestions: number; droppedAttachments: number } {
  const suggestions = usable(reply.payload.suggestions ?? []);
  let pieces = splitText(escapeText(reply.text), TEXT_MAX).filter((p) => p.trim() !== '');
  if (pieces.length === 0 && suggestions.length > 0) pieces = [EMPTY_TEXT_PROMPT];
  const calls = pieces.map(
    (text): PostMessageCall => ({
      channel: to.channel,
      text,
      ...(to.threadTs ? { thread_ts: to.threadTs } : {}),
      unfurl_links: false,
      unfurl_media: false,
    }),
  );
  const shown = suggestions.slice(0, MAX_BUTTONS);
  const last = calls.at(-1);
  if (last && shown.length > 0) {
    last.blocks = [
      { type: 'section', text: { type: 'mrkdwn', text: last.text } },
      {
        type: 'actions',
        block_id: SUGGESTIONS_BLOCK_ID,
        elements: shown.map((s, i) => ({
          type: 'button',
          action_id: `suggestion-${i}`,
          text: { type: 'plain_text', text: truncate(s.text, BUTTON_TEXT_MAX), emoji: true },
          value: s.value ?? s.text,
        })),
      },
    ];
  }
  return {
    calls,
    droppedSuggestions: (reply.payload.suggestions ?? []).length - shown.length,
    droppedAttachments: (reply.payload.attachments ?? []).length,
  };
}

/** Buttons need a label, and a value Slack accepts. */
function usable(suggestions: Suggestion[]): Suggestion[] {
  return suggestions.filter((s) => s.text.trim() !== '' && (s.value ?? s.text).length <= BUTTON_VALUE_MAX);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`;
}
