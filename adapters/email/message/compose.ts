import type { Readable } from 'node:stream';
import { type Card, cardChoices, isLinkButton } from '../../../src/cards/card.ts';
import type { OutboundReply } from '../../../src/delivery/sender.ts';
import { payloadCards } from '../../../src/files/client-view.ts';
import type { Suggestion } from '../../../src/store/records.ts';
import type { EmailAddress } from '../config.ts';
import type { EmailReplyTo } from '../reply-to.ts';
import { renderSuggestions } from './suggestions.ts';
import { ourMessageId, replyReferences, replySubject } from './thread.ts';

/**
 * Headers on every mail we send. `Auto-Submitted: auto-replied` (RFC 3834) tells vacation
 * responders and other bots not to answer us; `X-Auto-Response-Suppress` asks the same of Exchange.
 */
export const LOOP_GUARD_HEADERS = {
  'Auto-Submitted': 'auto-replied',
  'X-Auto-Response-Suppress': 'All',
} as const;

export interface OutgoingMail {
  from: EmailAddress;
  to: EmailAddress;
  subject: string;
  text: string;
  /** With angle brackets, as the headers carry them. */
  messageId: string;
  /** Absent on the first mail of a thread the business starts. */
  inReplyTo?: string;
  references?: string[];
  headers: Record<string, string>;
  /** With cards: an HTML part beside the text (the text is the alternative). */
  html?: string;
  /** Files the bot sent, as real attachments (streamed from the file store). */
  attachments?: MailAttachment[];
}

export interface MailAttachment {
  filename: string;
  contentType: string;
  content: Readable | Buffer;
  /** Shown inside the HTML part (`<img src="cid:…">`). */
  cid?: string;
}

/** A stored file the mail carries, looked up by the sender. */
export interface StoredMailFile {
  name: string;
  type: string;
  open(): Readable;
}

export interface ComposedReply {
  /** Without brackets: what the mail is known by (the replies' channel message id). */
  messageId: string;
  mail: OutgoingMail;
  /** The numbered choices the mail offers, in order. */
  suggestions: Suggestion[];
}

/** One mail answering one received mail, joining all the replies of a turn. */
export function composeReply(input: {
  replies: readonly OutboundReply[];
  replyTo: EmailReplyTo;
  from: EmailAddress;
  messageIdDomain: string;
  sessionId: string;
  /** The stored files the replies name (attachments and card images), by file id. */
  files?: ReadonlyMap<string, StoredMailFile>;
}): ComposedReply {
  const { replies, replyTo } = input;
  const first = replies[0];
  if (!first) throw new Error('composeReply needs at least one reply');
  // A thread the business starts: its first mail is the root the session is keyed with.
  const messageId = replyTo.newThread
    ? replyTo.messageId
    : ourMessageId(input.sessionId, first.seq, input.messageIdDomain);
  const offered = replies.flatMap((r) => r.payload.suggestions ?? []);
  const cards = replies.flatMap((r) => payloadCards(r.payload.cards));
  // A card's value buttons are answered by number, as the text alternative numbers them.
  const suggestions = offered.length === 0 && cards.length > 0 ? cardChoices(cards) : offered;
  const files = input.files ?? new Map<string, StoredMailFile>();
  const attachments: MailAttachment[] = [];
  for (const r of replies)
    for (const a of (r.payload.attachments ?? []) as { fileId?: string }[]) {
      const f = a.fileId ? files.get(a.fileId) : undefined;
      if (f) attachments.push({ filename: f.name, contentType: f.type, content: f.open() });
    }
  const parts = replies.map((r) =>
    [r.text.trim(), ...attachmentLines(r.payload.attachments)].filter(Boolean).join('\n'),
  );
  if (offered.length > 0) parts.push(renderSuggestions(offered));
  else if (suggestions.length > 0) parts.push('(Reply with the number of your choice.)');
  const html = cards.length > 0 ? cardsHtml(replies, cards, files, attachments) : undefined;
  return {
    messageId,
    suggestions,
    mail: {
      from: input.from,
      to: replyTo.to,
      subject: replyTo.newThread ? replyTo.subject : replySubject(replyTo.subject),
      text: `${parts.filter(Boolean).join('\n\n')}\n`,
      messageId: `<${messageId}>`,
      ...(replyTo.newThread
        ? {}
        : {
            inReplyTo: `<${replyTo.messageId}>`,
            references: replyReferences(replyTo).map((id) => `<${id}>`),
          }),
      headers: { ...LOOP_GUARD_HEADERS },
      ...(html ? { html } : {}),
      ...(attachments.length ? { attachments } : {}),
    },
  };
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * The HTML part of a mail with cards: the replies' own text, then each card as a bordered box
 * (its image inline by Content-ID, its value buttons numbered as in the text, its links as links).
 */
function cardsHtml(
  replies: readonly OutboundReply[],
  cards: readonly Card[],
  files: ReadonlyMap<string, StoredMailFile>,
  attachments: MailAttachment[],
): string {
  const texts = replies
    .filter((r) => !r.payload.textIsFallback && r.text.trim() !== '')
    .map((r) => `<p>${escapeHtml(r.text.trim()).replaceAll('\n', '<br>')}</p>`);
  let n = 0;
  const boxes = cards.map((card, i) => {
    const rows: string[] = [];
    if (card.image && 'fileId' in card.image) {
      const f = files.get(card.image.fileId);
      if (f) {
        const cid = `card-${i}@switchboard`;
        attachments.push({ filename: f.name, contentType: f.type, content: f.open(), cid });
        rows.push(
          `<img src="cid:${cid}" alt="${escapeHtml(card.title ?? f.name)}" style="max-width:100%;border-radius:6px">`,
        );
      }
    } else if (card.image && 'url' in card.image)
      rows.push(`<img src="${escapeHtml(card.image.url)}" alt="" style="max-width:100%;border-radius:6px">`);
    if (card.title) rows.push(`<h3 style="margin:8px 0 4px">${escapeHtml(card.title)}</h3>`);
    if (card.text) rows.push(`<p style="margin:0 0 8px">${escapeHtml(card.text)}</p>`);
    for (const b of card.buttons)
      rows.push(
        isLinkButton(b)
          ? `<p style="margin:4px 0"><a href="${escapeHtml(b.url)}">${escapeHtml(b.title)}</a></p>`
          : `<p style="margin:4px 0"><b>${++n}.</b> ${escapeHtml(b.title)}</p>`,
      );
    return `<div style="border:1px solid #d0d4da;border-radius:8px;padding:12px;margin:8px 0;max-width:420px">${rows.join('')}</div>`;
  });
  const hint = n > 0 ? '<p style="color:#5c6370">(Reply with the number of your choice.)</p>' : '';
  return `<!doctype html><html><body style="font-family:sans-serif">${[...texts, ...boxes, hint].join('\n')}</body></html>`;
}

/** A bot's attachments travel as links: `name: url`. */
function attachmentLines(attachments: unknown[] | undefined): string[] {
  if (!attachments) return [];
  return attachments.flatMap((a) => {
    if (!a || typeof a !== 'object') return [];
    const { url, name } = a as { url?: unknown; name?: unknown };
    if (typeof url !== 'string' || !url) return [];
    return [typeof name === 'string' && name ? `${name}: ${url}` : url];
  });
}
