import type { Activity, Attachment as BotAttachment, CardAction } from 'botbuilder';
import type { OutboundReply } from '../../../src/delivery/sender.ts';
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
}

/**
 * The activities one reply becomes, in order: its text (split at the limit), its attachments,
 * and its suggestions. In a 1:1 chat up to three suggestions are suggested actions (`imBack`
 * buttons above the compose box). Group chats and channels do not show suggested actions to
 * everyone, and a 1:1 chat shows only three, so otherwise the last text becomes an Adaptive
 * Card whose buttons send the suggestion's value back (`messageBack`: the person sees the
 * title, the bot reads the value). Pure: no I/O.
 */
export function planReply(reply: OutboundReply, options: PlanOptions): Partial<Activity>[] {
  const activities: Partial<Activity>[] = splitText(reply.text, options.maxTextChars).map((text) => ({
    type: 'message',
    text,
  }));
  for (const attachment of readAttachments(reply.payload.attachments)) {
    activities.push({ type: 'message', attachments: [attachment] });
  }
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
      {
        contentType: ADAPTIVE_CARD_TYPE,
        content: {
          type: 'AdaptiveCard',
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          version: ADAPTIVE_CARD_VERSION,
          body: text ? [{ type: 'TextBlock', text, wrap: true }] : [],
          actions: suggestions.map((s) => ({
            type: 'Action.Submit',
            title: s.text,
            data: {
              msteams: { type: 'messageBack', text: s.value ?? s.text, displayText: s.text },
            },
          })),
        },
      },
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
    if (typeof a !== 'object' || a === null) return [];
    const { type, url, name } = a as { type?: unknown; url?: unknown; name?: unknown };
    if (typeof url !== 'string' || url === '') return [];
    const contentType = typeof type === 'string' && type.includes('/') ? type : 'application/octet-stream';
    return [{ contentType, contentUrl: url, ...(typeof name === 'string' ? { name } : {}) }];
  });
}
