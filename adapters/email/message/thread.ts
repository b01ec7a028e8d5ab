import { createHash } from 'node:crypto';

/** Longest id kept as it is in a thread key; longer ones are hashed (envelope fields are bounded). */
const MAX_ID_LENGTH = 300;
/** References kept on a reply: the root and the most recent ones, as RFC 5322 §3.6.4 suggests. */
export const MAX_REFERENCES = 20;

/** `<abc@host>` → `abc@host`; blank or bracket-only → undefined. */
export function normalizeMessageId(value: string | undefined | null): string | undefined {
  if (!value) return undefined;
  const trimmed = value.trim().replace(/^<+/, '').replace(/>+$/, '').trim();
  if (!trimmed) return undefined;
  return trimmed.length > MAX_ID_LENGTH ? `sha256-${sha256(trimmed)}@hashed.invalid` : trimmed;
}

/** Every Message-ID in a References or In-Reply-To value, in order. */
export function messageIdList(value: string | string[] | undefined | null): string[] {
  if (!value) return [];
  const text = Array.isArray(value) ? value.join(' ') : value;
  const bracketed = text.match(/<[^<>\s]+>/g);
  const raw = bracketed ?? text.split(/[\s,]+/);
  return raw.map((id) => normalizeMessageId(id)).filter((id): id is string => Boolean(id));
}

/**
 * The conversation a mail belongs to: the first entry of References (the thread's root), else
 * In-Reply-To, else the mail's own Message-ID (it starts a thread).
 */
export function threadRoot(mail: { messageId: string; references: string[]; inReplyTo?: string }): string {
  return mail.references[0] ?? mail.inReplyTo ?? mail.messageId;
}

/** References for a reply to `mail`: its References plus its Message-ID, the root kept when trimmed. */
export function replyReferences(mail: { messageId: string; references: string[] }): string[] {
  const all = [...mail.references.filter((id) => id !== mail.messageId), mail.messageId];
  if (all.length <= MAX_REFERENCES) return all;
  return [all[0]!, ...all.slice(all.length - (MAX_REFERENCES - 1))];
}

/** `Re: `, `RE:`, `Aw:`, `SV:`, `Re[2]:` and the like, repeated: reply prefixes of common clients and locales. */
const REPLY_PREFIX = /^\s*(?:(?:re|aw|sv|vs|antw|ref|odp|r)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+/i;

/** The subject of a reply: exactly one `Re: ` before the original subject. */
export function replySubject(subject: string | undefined): string {
  const base = (subject ?? '').replace(/\s+/g, ' ').replace(REPLY_PREFIX, '').trim();
  return base ? `Re: ${base}` : 'Re:';
}

/**
 * The Message-ID of the mail answering a turn: derived from the session and the turn's first
 * reply, so a retried send carries the same id and the person's client shows one copy.
 */
export function ourMessageId(sessionId: string, firstSeq: number, domain: string): string {
  return `sb.${sessionId}.${firstSeq}@${domain}`;
}

/**
 * Whether a Message-ID is one we generated. The local part's shape matters, not just the domain:
 * Apple Mail and Thunderbird put the sender's own domain in theirs, so a colleague writing from
 * the same domain must not look like us.
 */
export function isOurMessageId(messageId: string, domain: string): boolean {
  const at = messageId.lastIndexOf('@');
  return (
    at > 0 &&
    messageId.slice(at + 1).toLowerCase() === domain.toLowerCase() &&
    /^sb\.[^.@]+\.\d+$/.test(messageId.slice(0, at))
  );
}

/** A stable Message-ID for a mail that has none: the same bytes always give the same id. */
export function syntheticMessageId(raw: Buffer): string {
  return `sha256-${sha256(raw)}@missing-message-id.invalid`;
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
