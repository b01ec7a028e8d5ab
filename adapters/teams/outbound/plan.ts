import type { Activity, Attachment as BotAttachment, CardAction } from 'botbuilder';
import { type Card, isLinkButton } from '../../../src/cards/card.ts';
import type { OutboundReply } from '../../../src/delivery/sender.ts';
import { payloadCards } from '../../../src/files/client-view.ts';
import type { Suggestion } from '../../../src/store/records.ts';
import { splitText } from '../../../src/text.ts';

/** Teams shows at most three suggested actions ("Teams displays only the first three"). */
export const MAX_SUGGESTED_ACTIONS = 3;
export const ADAPTIVE_CARD_TYPE = 'application/vnd.microsoft.card.adaptive';
const ADAPTIVE_CARD_VERSION = '1.4';

export interface PlanOptions {
  /** `personal`, `groupChat` or `channel` (the conversation's `conversationType`). */
  conversationType: string | null | undefined;
  /** Longest text of one message, in UTF-16 units. */
  maxTextChars: number;
  /** A signed link (on PUBLIC_URL) that Teams can fetch a stored file by. */
  link?: (fileId: string) => string;
}

/** Images Teams shows inline from a URL; any other file goes as a card with a download button. */
const INLINE_IMAGES = new Set(['image/png', 'image/jpeg', 'image/gif']);

/**
 * The activities one reply becomes, in order: its text (split at the limit), its attachments,
 * and its suggestions. In a 1:1 chat up to three suggestions are suggested actions (`imBack`
 * buttons above the compose box). Group chats and channels do not show suggested actions to
 * everyone, and a 1:1 chat shows only three, so otherwise the last text becomes an Adaptive
 * Card whose buttons send the suggestion's value back (`messageBack`: the person sees the
 * title, the bot reads the value). Pure: no I/O.
 */
export function planReply(reply: OutboundReply, options: PlanOptions): Partial<Activity>[] {
  const cards = payloadCards(reply.payload.cards);
  const stored = storedFiles(reply.payload.attachments, options.link);
  // The text that only stands in for cards or files (for text-only channels) is not sent here.
  const shown = reply.payload.textIsFallback && (cards.length > 0 || stored.length > 0) ? '' : reply.text;
  const activities: Partial<Activity>[] = splitText(shown, options.maxTextChars)
    .filter((t) => t.trim() !== '')
    .map((t) => ({ type: 'message', text: t }));
  for (const attachment of readAttachments(reply.payload.attachments)) {
    activities.push({ type: 'message', attachments: [attachment] });
  }
  for (const attachment of stored) activities.push({ type: 'message', attachments: [attachment] });
  if (cards.length > 0)
    activities.push({
      type: 'message',
      ...(cards.length > 1 ? { attachmentLayout: 'carousel' } : {}),
      attachments: cards.map((c) => adaptiveCard(c, options.link)),
    });
  const suggestions = readSuggestions(reply.payload.suggestions);
  if (suggestions.length === 0) return activities;

  const last = activities.at(-1);
  const personal = options.conversationType === 'personal';
  if (personal && last && suggestions.length <= MAX_SUGGESTED_ACTIONS) {
    last.suggestedActions = { to: [], actions: suggestions.map(imBack) };
    return activities;
  }
  const text = last && last.text !== undefined && !last.attachments ? last.text : undefined;
  const card = suggestionCard(text, suggestions);
  if (text !== undefined) activities[activities.length - 1] = card;
  else activities.push(card);
  return activities;
}

function imBack(s: Suggestion): CardAction {
  return { type: 'imBack', title: s.text, value: s.value ?? s.text };
}

/** An Adaptive Card: the text (when there is one) and a button per suggestion. */
export function suggestionCard(text: string | undefined, suggestions: Suggestion[]): Partial<Activity> {
  return {
    type: 'message',
    attachments: [
      adaptiveCardAttachment(
        text ? [{ type: 'TextBlock', text, wrap: true }] : [],
        suggestions.map((s) => ({
          type: 'Action.Submit',
          title: s.text,
          data: {
            msteams: { type: 'messageBack', text: s.value ?? s.text, displayText: s.text },
          },
        })),
      ),
    ],
  };
}

/** Suggestions as the engine stores them; anything else in the payload is ignored. */
function readSuggestions(raw: unknown): Suggestion[] {
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((s) => {
    if (typeof s !== 'object' || s === null || typeof (s as Suggestion).text !== 'string') return [];
    const { text, value } = s as Suggestion;
    return [{ text, ...(typeof value === 'string' ? { value } : {}) }];
  });
}

/** A reply's attachments that point at something Teams can fetch (a URL). */
function readAttachments(raw: unknown): BotAttachment[] {
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((a) => {
    if (typeof a !== 'object' || a === null || 'fileId' in a) return [];
    const { type, url, name } = a as { type?: unknown; url?: unknown; name?: unknown };
    if (typeof url !== 'string' || url === '') return [];
    const contentType = typeof type === 'string' && type.includes('/') ? type : 'application/octet-stream';
    return [{ contentType, contentUrl: url, ...(typeof name === 'string' ? { name } : {}) }];
  });
}

/**
 * The store's files a reply sends: an image as an image attachment by its signed link; any other
 * file as an Adaptive Card with its name and size and a download button (Teams bots cannot attach
 * other files in a 1:1 chat without the consent flow).
 */
function storedFiles(raw: unknown, link: ((fileId: string) => string) | undefined): BotAttachment[] {
  if (!Array.isArray(raw) || !link) return [];
  return raw.flatMap((a): BotAttachment[] => {
    const { type, name, size, fileId } = (a ?? {}) as {
      type?: string;
      name?: string;
      size?: number;
      fileId?: string;
    };
    if (!fileId || !type) return [];
    const url = link(fileId);
    if (INLINE_IMAGES.has(type)) return [{ contentType: type, contentUrl: url, ...(name ? { name } : {}) }];
    return [
      adaptiveCardAttachment(
        [
          { type: 'TextBlock', text: name ?? 'file', weight: 'Bolder', wrap: true },
          ...(size !== undefined
            ? [{ type: 'TextBlock', text: `${type}, ${size} bytes`, isSubtle: true, spacing: 'None' }]
            : []),
        ],
        [{ type: 'Action.OpenUrl', title: 'Download', url }],
      ),
    ];
  });
}

/** A card as an Adaptive Card: image, title, text; value buttons send the value back (`messageBack`), links open. */
export function adaptiveCard(card: Card, link: ((fileId: string) => string) | undefined): BotAttachment {
  const image = card.image
    ? 'fileId' in card.image
      ? link?.(card.image.fileId)
      : card.image.url
    : undefined;
  return adaptiveCardAttachment(
    [
      ...(image ? [{ type: 'Image', url: image, size: 'Stretch', altText: card.title ?? '' }] : []),
      ...(card.title
        ? [{ type: 'TextBlock', text: card.title, weight: 'Bolder', size: 'Medium', wrap: true }]
        : []),
      ...(card.text ? [{ type: 'TextBlock', text: card.text, wrap: true }] : []),
    ],
    card.buttons.map((b) =>
      isLinkButton(b)
        ? { type: 'Action.OpenUrl', title: b.title, url: b.url }
        : {
            type: 'Action.Submit',
            title: b.title,
            data: { msteams: { type: 'messageBack', text: b.value, displayText: b.title }, value: b.value },
          },
    ),
  );
}

/** An Adaptive Card attachment of `body` elements and `actions`. */
function adaptiveCardAttachment(body: unknown[], actions: unknown[]): BotAttachment {
  return {
    contentType: ADAPTIVE_CARD_TYPE,
    content: {
      type: 'AdaptiveCard',
      $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
      version: ADAPTIVE_CARD_VERSION,
      body,
      actions,
    },
  };
}
