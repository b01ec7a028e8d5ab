import { z } from 'zod';
import { type Card, isLinkButton, isValueButton } from '../../../src/cards/card.ts';
import type { OutboundReply } from '../../../src/delivery/sender.ts';
import { payloadCards } from '../../../src/files/client-view.ts';
import type { Suggestion } from '../../../src/store/records.ts';
import { splitText, truncate } from '../text.ts';

/** An operator's template message, as the outbound envelope keeps it in the row's payload. */
const TemplatePayload = z.object({
  name: z.string().min(1),
  language: z.string().min(1),
  parameters: z.array(z.string()).optional(),
  components: z.array(z.record(z.string(), z.unknown())).optional(),
});

/**
 * A Cloud API template message: body `parameters` become the body component's text parameters;
 * `components` go through as the Cloud API defines them.
 */
export function templateMessage(t: z.infer<typeof TemplatePayload>): Record<string, unknown> {
  const components =
    t.components ??
    (t.parameters?.length
      ? [{ type: 'body', parameters: t.parameters.map((text) => ({ type: 'text', text })) }]
      : undefined);
  return {
    type: 'template',
    template: { name: t.name, language: { code: t.language }, ...(components ? { components } : {}) },
  };
}

/** Limits of the Cloud API's message objects, in characters. */
export const TEXT_MAX = 4096;
export const INTERACTIVE_BODY_MAX = 1024;
export const MAX_REPLY_BUTTONS = 3;
export const BUTTON_TITLE_MAX = 20;
export const BUTTON_ID_MAX = 256;
export const MAX_LIST_ROWS = 10;
export const ROW_TITLE_MAX = 24;
export const ROW_DESCRIPTION_MAX = 72;
export const ROW_ID_MAX = 200;
/** The label of the button that opens a list. */
export const LIST_BUTTON_LABEL = 'Options';
/** Interactive messages need a body; this stands in when the reply is only suggestions. */
export const EMPTY_BODY_PROMPT = 'Please choose:';

const MEDIA_TYPES = ['image', 'video', 'audio'] as const;

export interface OutboundPlan {
  /** Message objects (without `messaging_product`), sent in this order. */
  messages: Record<string, unknown>[];
  /** Suggestions beyond what one list can hold, left out. */
  droppedSuggestions: number;
  /** Attachments that have neither a URL nor a media id, left out. */
  droppedAttachments: number;
}

/**
 * The Cloud API messages that carry one reply to `to`: the text in pieces of at most 4,096
 * characters; suggestions as reply buttons (up to 3, titles up to 20 characters) or else a list
 * (up to 10 rows), on the last piece of text; attachments with a URL or a media id after it.
 */
export function planReply(
  reply: OutboundReply,
  to: string,
  /** Files of the store already uploaded to the Cloud API: file id → media id. */
  media: ReadonlyMap<string, string> = new Map(),
): OutboundPlan {
  const base = { recipient_type: 'individual', to };
  const template = TemplatePayload.safeParse(reply.payload.template);
  if (template.success)
    return {
      messages: [{ ...base, ...templateMessage(template.data) }],
      droppedSuggestions: 0,
      droppedAttachments: 0,
    };
  const messages: Record<string, unknown>[] = [];
  const suggestions = reply.payload.suggestions ?? [];
  const cards = payloadCards(reply.payload.cards);
  // With cards, a text that only stands in for them is not sent (the cards say it).
  const text = cards.length > 0 && reply.payload.textIsFallback ? '' : reply.text;
  let droppedSuggestions = 0;

  if (cards.length > 0) {
    for (const piece of splitText(text, TEXT_MAX))
      if (piece.trim() !== '')
        messages.push({ ...base, type: 'text', text: { body: piece, preview_url: false } });
    for (const card of cards) {
      const planned = cardMessage(card, media);
      droppedSuggestions += planned.dropped;
      messages.push({ ...base, ...planned.message });
    }
  } else if (suggestions.length > 0) {
    const { head, tail } = splitForInteractive(text);
    for (const piece of head)
      messages.push({ ...base, type: 'text', text: { body: piece, preview_url: false } });
    const body = tail.trim() === '' ? EMPTY_BODY_PROMPT : tail;
    const interactive = interactiveFor(suggestions, body);
    droppedSuggestions = interactive.dropped;
    messages.push({ ...base, type: 'interactive', interactive: interactive.object });
  } else if (!captionOnly(reply, text)) {
    for (const piece of splitText(text, TEXT_MAX)) {
      if (piece.trim() === '') continue;
      messages.push({ ...base, type: 'text', text: { body: piece, preview_url: false } });
    }
  }

  let droppedAttachments = 0;
  for (const a of (reply.payload.attachments ?? []) as {
    type?: string;
    url?: string;
    ref?: string;
    name?: string;
    fileId?: string;
  }[]) {
    const stored = a.fileId ? media.get(a.fileId) : undefined;
    const object: Record<string, unknown> = stored
      ? { id: stored }
      : a.url && !a.fileId
        ? { link: a.url }
        : a.ref
          ? { id: a.ref }
          : {};
    if (!('link' in object) && !('id' in object)) {
      droppedAttachments++;
      continue;
    }
    const kind = MEDIA_TYPES.find((k) => a.type === k || a.type?.startsWith(`${k}/`)) ?? 'document';
    if (kind === 'document' && a.name) object.filename = a.name;
    // A file sent alone carries the reply's text as its caption (images and documents take one).
    if (
      messages.length === 0 &&
      a.fileId &&
      !reply.payload.textIsFallback &&
      kind !== 'audio' &&
      text.trim() !== '' &&
      text.length <= INTERACTIVE_BODY_MAX
    )
      object.caption = text;
    messages.push({ ...base, type: kind, [kind]: object });
  }
  return { messages, droppedSuggestions, droppedAttachments };
}

/** Splits text so the last piece fits an interactive body and every other piece a text message. */
function splitForInteractive(text: string): { head: string[]; tail: string } {
  if (text.length <= INTERACTIVE_BODY_MAX) return { head: [], tail: text };
  const pieces = splitText(text, INTERACTIVE_BODY_MAX);
  const tail = pieces.pop()!;
  const headText = text.slice(0, text.length - tail.length);
  const head = splitText(headText, TEXT_MAX).filter((p) => p.trim() !== '');
  return { head, tail };
}

function interactiveFor(
  suggestions: Suggestion[],
  body: string,
): { object: Record<string, unknown>; dropped: number } {
  const unique = dedupe(suggestions);
  const fitsButtons =
    unique.length <= MAX_REPLY_BUTTONS &&
    unique.every((s) => s.text.length <= BUTTON_TITLE_MAX && idOf(s).length <= BUTTON_ID_MAX);
  if (fitsButtons) {
    return {
      object: {
        type: 'button',
        body: { text: body },
        action: {
          buttons: unique.map((s) => ({ type: 'reply', reply: { id: idOf(s), title: s.text } })),
        },
      },
      dropped: suggestions.length - unique.length,
    };
  }
  const rows = unique.slice(0, MAX_LIST_ROWS).map((s) => {
    const row: Record<string, unknown> = {
      id: truncateId(idOf(s), ROW_ID_MAX),
      title: truncate(s.text, ROW_TITLE_MAX),
    };
    // A title cut short is shown whole (as far as it fits) underneath.
    if (s.text.length > ROW_TITLE_MAX) row.description = truncate(s.text, ROW_DESCRIPTION_MAX);
    return row;
  });
  return {
    object: {
      type: 'list',
      body: { text: body },
      action: { button: LIST_BUTTON_LABEL, sections: [{ rows }] },
    },
    dropped: suggestions.length - rows.length,
  };
}

/** The id of a button or row is the suggestion's value: it comes back as the text of the answer. */
function idOf(s: Suggestion): string {
  return s.value ?? s.text;
}

function truncateId(id: string, max: number): string {
  return id.length <= max ? id : id.slice(0, max);
}

/** WhatsApp refuses two buttons or rows with the same id. */
function dedupe(suggestions: Suggestion[]): Suggestion[] {
  const seen = new Set<string>();
  return suggestions.filter((s) => {
    const id = idOf(s);
    if (seen.has(id) || s.text.trim() === '') return false;
    seen.add(id);
    return true;
  });
}

/** A reply that is files with a short text: the text goes as the first file's caption (or not at all when it only names them). */
function captionOnly(reply: OutboundReply, text: string): boolean {
  const files = (reply.payload.attachments ?? []) as { type?: string; fileId?: string }[];
  // Only a bot's files from the store (SHOW IMAGE, SEND FILE): other attachments follow the text.
  if (files.length === 0 || !files.every((f) => f.fileId)) return false;
  if (reply.payload.textIsFallback) return true;
  const first = files[0]?.type ?? '';
  return !first.startsWith('audio') && text.length <= INTERACTIVE_BODY_MAX;
}

/**
 * One card as one Cloud API message: value buttons as reply buttons (up to 3, titles up to 20
 * characters) or else a list (up to 10 rows); a single link button alone as a `cta_url` button;
 * the image as the header (uploaded, by media id); other links written into the body.
 */
export function cardMessage(
  card: Card,
  media: ReadonlyMap<string, string>,
): { message: Record<string, unknown>; dropped: number } {
  const values = card.buttons.filter(isValueButton);
  const links = card.buttons.filter(isLinkButton);
  const imageId = card.image && 'fileId' in card.image ? media.get(card.image.fileId) : undefined;
  const imageLink = card.image && 'url' in card.image ? card.image.url : undefined;
  const header = imageId
    ? { type: 'image', image: { id: imageId } }
    : imageLink
      ? { type: 'image', image: { link: imageLink } }
      : undefined;
  const linkLines = (values.length > 0 ? links : links.slice(1)).map((b) => `${b.title}: ${b.url}`);
  const bodyText = truncate(
    [card.title ? `*${card.title}*` : '', card.text ?? '', ...linkLines].filter(Boolean).join('\n') ||
      EMPTY_BODY_PROMPT,
    INTERACTIVE_BODY_MAX,
  );
  if (values.length > 0) {
    const interactive = interactiveFor(
      values.map((b) => ({ text: b.title, value: b.value })),
      bodyText,
    );
    if (header && interactive.object.type === 'button') interactive.object.header = header;
    return {
      message: { type: 'interactive', interactive: interactive.object },
      dropped: interactive.dropped,
    };
  }
  if (links.length > 0) {
    const link = links[0]!;
    return {
      message: {
        type: 'interactive',
        interactive: {
          type: 'cta_url',
          ...(header ? { header } : {}),
          body: { text: bodyText },
          action: {
            name: 'cta_url',
            parameters: { display_text: truncate(link.title, BUTTON_TITLE_MAX), url: link.url },
          },
        },
      },
      dropped: 0,
    };
  }
  if (imageId || imageLink)
    return {
      message: {
        type: 'image',
        image: { ...(imageId ? { id: imageId } : { link: imageLink }), caption: bodyText },
      },
      dropped: 0,
    };
  return { message: { type: 'text', text: { body: bodyText, preview_url: false } }, dropped: 0 };
}
