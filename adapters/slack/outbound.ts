import { type Card, isLinkButton } from '../../src/cards/card.ts';
import type { OutboundReply } from '../../src/delivery/sender.ts';
import { payloadCards } from '../../src/files/client-view.ts';
import type { Suggestion } from '../../src/store/records.ts';
import { splitText } from '../../src/text.ts';
import type { SlackReplyTo } from './reply-to.ts';

/** A section block's text limit; every piece is cut to it so the last one can carry the buttons. */
export const TEXT_MAX = 3000;
/** Elements one actions block holds. */
export const MAX_BUTTONS = 25;
export const BUTTON_TEXT_MAX = 75;
export const BUTTON_VALUE_MAX = 2000;
/** Blocks one message holds. */
export const MAX_BLOCKS = 50;
/** An image block's alt text limit. */
const ALT_TEXT_MAX = 2000;
/** A section needs text; this stands in when a reply is only suggestions. */
export const EMPTY_TEXT_PROMPT = 'Please choose:';
/** The block holding the suggestions; its buttons' action ids are `suggestion-<n>`. */
export const SUGGESTIONS_BLOCK_ID = 'suggestions';
/** A card's buttons are in block `card-<n>`, value buttons `card-<n>-<i>`, links `link-<n>-<i>`. */
export const CARD_BLOCK_PREFIX = 'card-';

export interface PostMessageCall {
  channel: string;
  text: string;
  thread_ts?: string;
  blocks?: Record<string, unknown>[];
  /** The bot's text is never turned into link previews. */
  unfurl_links: false;
  unfurl_media: false;
}

/** A stored file the reply sends: uploaded with Slack's external upload flow, then shared. */
export interface FileUpload {
  fileId: string;
  name?: string;
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
 * suggestion's value) and cards as Block Kit (section, image, actions) under the last piece, which
 * keeps `text` as the notification's fallback; then the stored files, uploaded one by one.
 * `imageUrl` gives a stored card image's public address (undefined: Slack could not fetch it).
 */
export function planReply(
  reply: OutboundReply,
  to: SlackReplyTo,
  imageUrl: (fileId: string) => string | undefined = () => undefined,
): {
  calls: PostMessageCall[];
  uploads: FileUpload[];
  droppedSuggestions: number;
  droppedAttachments: number;
} {
  const suggestions = usable(reply.payload.suggestions ?? []);
  const cards = payloadCards(reply.payload.cards);
  const uploads: FileUpload[] = [];
  let droppedAttachments = 0;
  for (const a of (reply.payload.attachments ?? []) as { fileId?: unknown; name?: unknown }[]) {
    if (typeof a?.fileId === 'string')
      uploads.push({ fileId: a.fileId, ...(typeof a.name === 'string' ? { name: a.name } : {}) });
    else droppedAttachments++;
  }
  // The text the engine wrote in place of cards or files (numbered choices, file names) is for
  // channels that show neither: here it is only the notification's text.
  const fallback = reply.payload.textIsFallback === true && (cards.length > 0 || uploads.length > 0);
  let pieces = fallback ? [] : splitText(escapeText(reply.text), TEXT_MAX).filter((p) => p.trim() !== '');
  if (pieces.length === 0 && suggestions.length > 0) pieces = [EMPTY_TEXT_PROMPT];
  const cardText = fallback && cards.length > 0 ? truncate(escapeText(reply.text), TEXT_MAX) : undefined;
  if (pieces.length === 0 && cards.length > 0) pieces = [cardText || EMPTY_TEXT_PROMPT];
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
  if (last && (shown.length > 0 || cards.length > 0)) {
    const blocks: Record<string, unknown>[] = [];
    if (!(cards.length > 0 && last.text === cardText))
      blocks.push({ type: 'section', text: { type: 'mrkdwn', text: last.text } });
    if (shown.length > 0)
      blocks.push({
        type: 'actions',
        block_id: SUGGESTIONS_BLOCK_ID,
        elements: shown.map((s, i) => ({
          type: 'button',
          action_id: `suggestion-${i}`,
          text: { type: 'plain_text', text: truncate(s.text, BUTTON_TEXT_MAX), emoji: true },
          value: s.value ?? s.text,
        })),
      });
    cards.forEach((card, n) => {
      const more = cardBlocks(card, n, imageUrl);
      if (blocks.length + more.length + 1 > MAX_BLOCKS) return;
      if (n > 0 || blocks.length > 0) blocks.push({ type: 'divider' });
      blocks.push(...more);
    });
    last.blocks = blocks;
  }
  return {
    calls,
    uploads,
    droppedSuggestions: (reply.payload.suggestions ?? []).length - shown.length,
    droppedAttachments,
  };
}

/**
 * One card as Block Kit: a section with the title (bold) and text, an image block, and an actions
 * block whose value buttons send their value back (`block_actions`) and whose link buttons open
 * their `url`.
 */
export function cardBlocks(
  card: Card,
  n: number,
  imageUrl: (fileId: string) => string | undefined,
): Record<string, unknown>[] {
  const blocks: Record<string, unknown>[] = [];
  const lines = [card.title ? `*${escapeText(card.title)}*` : '', card.text ? escapeText(card.text) : ''];
  const text = truncate(lines.filter(Boolean).join('\n'), TEXT_MAX);
  if (text) blocks.push({ type: 'section', text: { type: 'mrkdwn', text } });
  const url = card.image ? ('url' in card.image ? card.image.url : imageUrl(card.image.fileId)) : undefined;
  if (card.image && url)
    blocks.push({
      type: 'image',
      image_url: url,
      alt_text: truncate(
        card.title ?? ('name' in card.image ? card.image.name : undefined) ?? 'image',
        ALT_TEXT_MAX,
      ),
    });
  if (card.buttons.length > 0)
    blocks.push({
      type: 'actions',
      block_id: `${CARD_BLOCK_PREFIX}${n}`,
      elements: card.buttons.map((b, i) => {
        const label = { type: 'plain_text', text: truncate(b.title, BUTTON_TEXT_MAX), emoji: true };
        return isLinkButton(b)
          ? { type: 'button', action_id: `link-${n}-${i}`, text: label, url: b.url }
          : { type: 'button', action_id: `card-${n}-${i}`, text: label, value: b.value };
      }),
    });
  return blocks;
}

/** Buttons need a label, and a value Slack accepts. */
function usable(suggestions: Suggestion[]): Suggestion[] {
  return suggestions.filter((s) => s.text.trim() !== '' && (s.value ?? s.text).length <= BUTTON_VALUE_MAX);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`;
}
