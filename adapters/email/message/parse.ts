import { type AddressObject, type HeaderValue, type ParsedMail, simpleParser } from 'mailparser';
import { truncateUtf8 } from '../../../src/text.ts';
import { type NoReplyReason, noReplyReason, type Ours } from './no-reply.ts';
import { visibleReplyTextWithin } from './reply-text.ts';
import { messageIdList, normalizeMessageId, syntheticMessageId } from './thread.ts';

export interface MailAddress {
  /** Lower-case. */
  address: string;
  name?: string;
}

export interface InboundAttachment {
  filename?: string;
  contentType: string;
  size: number;
  content: Buffer;
  contentId?: string;
  /** Shown inside the HTML body (a pasted image, a signature logo) rather than attached. */
  inline: boolean;
}

/** One received mail, reduced to what the channel needs. */
export interface InboundEmail {
  /** Without angle brackets; a stable synthetic one when the mail has none. */
  messageId: string;
  inReplyTo?: string;
  references: string[];
  from?: MailAddress;
  /** Every From address (a mail may name several; only a mail with one can be verified). */
  fromAll: MailAddress[];
  /** The first Reply-To address, if any: honoured only for verified mail (see sender-trust.ts). */
  replyTo?: MailAddress;
  /** The values of every Authentication-Results header, topmost (added last) first. */
  authenticationResults: string[];
  to: MailAddress[];
  cc: MailAddress[];
  subject: string;
  date?: string;
  /** What the person wrote: quoted text and signature removed. */
  text: string;
  /** The reply cutter ran out of time (REPLY_CUT_TIMEOUT_MS): `text` is the whole text. */
  replyCutTimedOut?: true;
  /** The whole text body (text/plain, or the HTML turned into text). */
  fullText: string;
  attachments: InboundAttachment[];
  noReply?: NoReplyReason;
}

/**
 * How much of the text body the reply cutter reads, in multiples of the longest text handed to
 * the bot (`maxTextBytes`, the hub's MAX_TEXT_BYTES): what the person wrote is at the top and is
 * cut to `maxTextBytes` after the quote is removed (inbound.ts); the rest leaves room for the
 * quote header and the quote under a long answer, which the cutter must see to remove them. A
 * body can be far longer (a decoded line has no length limit) and the cutter's work grows with
 * what it reads.
 */
export const REPLY_CUT_TEXT_FACTOR = 4;
/**
 * The longest the reply cutter may take for one mail. A long real one (4 × 16 KB: a reply over a
 * quoted thread, or prose) takes 50–65 ms here; crafted text can take minutes (reply-text.ts).
 */
export const REPLY_CUT_TIMEOUT_MS = 500;

/**
 * Parses a raw RFC 5322 message. Pure apart from parsing: no I/O. `maxTextBytes`: the longest
 * text the bot is handed (see REPLY_CUT_TEXT_FACTOR).
 */
export async function parseEmail(raw: Buffer, ours: Ours, maxTextBytes: number): Promise<InboundEmail> {
  const mail = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true });
  return toInboundEmail(mail, raw, ours, maxTextBytes);
}

export function toInboundEmail(
  mail: ParsedMail,
  raw: Buffer,
  ours: Ours,
  maxTextBytes: number,
): InboundEmail {
  const messageId = normalizeMessageId(mail.messageId) ?? syntheticMessageId(raw);
  const references = messageIdList(mail.references).filter((id) => id !== messageId);
  const inReplyTo = messageIdList(mail.inReplyTo).find((id) => id !== messageId);
  const fromAll = addresses(mail.from);
  const from = fromAll[0];
  const replyTo = addresses(mail.replyTo)[0];
  const fullText = (mail.text ?? '').replace(/\r\n?/g, '\n').trim();
  const reply = visibleReplyTextWithin(
    truncateUtf8(fullText, REPLY_CUT_TEXT_FACTOR * maxTextBytes),
    REPLY_CUT_TIMEOUT_MS,
  );
  // Raw header lines: mailparser folds some headers into others (List-* becomes `list`).
  const header = (name: string) => rawHeader(mail, name);
  const contentType = mail.headers.get('content-type');
  const noReply = noReplyReason(
    {
      header,
      from: from?.address,
      returnPath: returnPath(mail.headers.get('return-path')),
      contentType:
        contentType && typeof contentType === 'object' && 'value' in contentType
          ? String(contentType.value).toLowerCase()
          : undefined,
      messageId,
    },
    ours,
  );
  return {
    messageId,
    ...(inReplyTo ? { inReplyTo } : {}),
    references,
    ...(from ? { from } : {}),
    fromAll,
    ...(replyTo ? { replyTo } : {}),
    authenticationResults: rawHeaders(mail, 'authentication-results'),
    to: addresses(mail.to),
    cc: addresses(mail.cc),
    subject: (mail.subject ?? '').trim(),
    ...(mail.date && !Number.isNaN(mail.date.getTime()) ? { date: mail.date.toISOString() } : {}),
    text: reply.text,
    ...(reply.timedOut ? { replyCutTimedOut: true as const } : {}),
    fullText,
    attachments: mail.attachments.map((a) => ({
      ...(a.filename ? { filename: a.filename } : {}),
      contentType: a.contentType || 'application/octet-stream',
      size: a.size ?? a.content.length,
      content: a.content,
      ...(a.contentId ? { contentId: a.contentId } : {}),
      inline: a.related === true || a.contentDisposition === 'inline',
    })),
    ...(noReply ? { noReply } : {}),
  };
}

function addresses(field: AddressObject | AddressObject[] | undefined): MailAddress[] {
  const list = field === undefined ? [] : Array.isArray(field) ? field : [field];
  const out: MailAddress[] = [];
  const visit = (entries: AddressObject['value']) => {
    for (const entry of entries) {
      if (entry.group) visit(entry.group);
      else if (entry.address?.includes('@'))
        out.push({ address: entry.address.toLowerCase(), ...(entry.name ? { name: entry.name } : {}) });
    }
  };
  for (const obj of list) visit(obj.value);
  return out;
}

/** `''` for the null reverse path `<>` (bounces and auto-replies use it), undefined when absent. */
function returnPath(value: HeaderValue | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value.replace(/[<>\s]/g, '').toLowerCase();
  if (typeof value === 'object' && 'value' in value && Array.isArray(value.value)) {
    const first = (value as AddressObject).value[0];
    return (first?.address ?? '').toLowerCase();
  }
  return undefined;
}

/** A header's value as the mail carries it (unfolded), the first occurrence when repeated. */
function rawHeader(mail: ParsedMail, name: string): string | undefined {
  return rawHeaders(mail, name)[0];
}

/** Every value of a header as the mail carries them (unfolded), topmost first. */
function rawHeaders(mail: ParsedMail, name: string): string[] {
  return mail.headerLines
    .filter((h) => h.key === name)
    .map((h) =>
      h.line
        .slice(h.line.indexOf(':') + 1)
        .replace(/\r?\n[ \t]+/g, ' ')
        .trim(),
    );
}
