import type { ChannelQueryable } from '../../src/channels/declaration.ts';
import { json, type Suggestion } from '../../src/store/records.ts';
import type { EmailReplyTo } from './reply-to.ts';

/** The channel's own tables (its migrations: adapters/email/migrations/), through its host store. */

export interface MailboxState {
  uidValidity: number;
  lastUid: number;
}

export async function mailboxState(q: ChannelQueryable, mailbox: string): Promise<MailboxState | undefined> {
  const { rows } = await q.query<{ uid_validity: string | number; last_uid: string | number }>(
    'SELECT uid_validity, last_uid FROM email_mailboxes WHERE mailbox = $1',
    [mailbox],
  );
  const row = rows[0];
  return row ? { uidValidity: Number(row.uid_validity), lastUid: Number(row.last_uid) } : undefined;
}

/**
 * Records that every UID up to `lastUid` is handled. Under the same UIDVALIDITY it never moves
 * backwards (two gateways reading one mailbox); a new UIDVALIDITY replaces the row.
 */
export async function saveMailboxState(
  q: ChannelQueryable,
  mailbox: string,
  state: MailboxState,
): Promise<void> {
  await q.query(
    `INSERT INTO email_mailboxes (mailbox, uid_validity, last_uid) VALUES ($1, $2, $3)
     ON CONFLICT (mailbox) DO UPDATE SET
       last_uid = CASE WHEN email_mailboxes.uid_validity = EXCLUDED.uid_validity
                       THEN GREATEST(email_mailboxes.last_uid, EXCLUDED.last_uid) ELSE EXCLUDED.last_uid END,
       uid_validity = EXCLUDED.uid_validity, updated_at = now()`,
    [mailbox, state.uidValidity, state.lastUid],
  );
}

export interface KnownMessage {
  direction: 'in' | 'out';
  thread: string;
  envelopeId: string | null;
  sessionId: string | null;
  suggestions: Suggestion[] | null;
  replyTo: unknown;
}

export async function knownMessage(
  q: ChannelQueryable,
  messageId: string,
): Promise<KnownMessage | undefined> {
  const { rows } = await q.query<{
    direction: 'in' | 'out';
    thread: string;
    envelope_id: string | null;
    session_id: string | null;
    suggestions: Suggestion[] | null;
    reply_to: unknown;
  }>(
    'SELECT direction, thread, envelope_id, session_id, suggestions, reply_to FROM email_messages WHERE message_id = $1',
    [messageId],
  );
  const row = rows[0];
  return row
    ? {
        direction: row.direction,
        thread: row.thread,
        envelopeId: row.envelope_id,
        sessionId: row.session_id,
        suggestions: row.suggestions,
        replyTo: row.reply_to,
      }
    : undefined;
}

export async function recordInbound(
  q: ChannelQueryable,
  m: {
    messageId: string;
    thread: string;
    envelopeId: string;
    mailbox: string;
    uidValidity: number;
    uid: number;
    replyTo: EmailReplyTo | null;
    noReply: string | null;
  },
): Promise<void> {
  await q.query(
    `INSERT INTO email_messages (message_id, direction, thread, envelope_id, mailbox, uid_validity, uid, reply_to, no_reply)
     VALUES ($1, 'in', $2, $3, $4, $5, $6, $7::jsonb, $8) ON CONFLICT (message_id) DO NOTHING`,
    [m.messageId, m.thread, m.envelopeId, m.mailbox, m.uidValidity, m.uid, json(m.replyTo), m.noReply],
  );
}

export async function recordOutbound(
  q: ChannelQueryable,
  m: { messageId: string; thread: string; envelopeId: string; sessionId: string; suggestions: Suggestion[] },
): Promise<void> {
  await q.query(
    `INSERT INTO email_messages (message_id, direction, thread, envelope_id, session_id, suggestions)
     VALUES ($1, 'out', $2, $3, $4, $5::jsonb) ON CONFLICT (message_id) DO NOTHING`,
    [m.messageId, m.thread, m.envelopeId, m.sessionId, json(m.suggestions)],
  );
}

/** The last mail we sent in a session: its choices are the ones still waiting for an answer. */
export async function latestOutbound(q: ChannelQueryable, sessionId: string): Promise<string | undefined> {
  const { rows } = await q.query<{ message_id: string }>(
    `SELECT message_id FROM email_messages WHERE direction = 'out' AND session_id = $1
     ORDER BY created_at DESC, message_id DESC LIMIT 1`,
    [sessionId],
  );
  return rows[0]?.message_id;
}

/** The reply data recorded for an inbound envelope (when the session's latest no longer matches). */
export async function inboundReplyTo(q: ChannelQueryable, envelopeId: string): Promise<unknown> {
  const { rows } = await q.query<{ reply_to: unknown }>(
    `SELECT reply_to FROM email_messages WHERE direction = 'in' AND envelope_id = $1`,
    [envelopeId],
  );
  return rows[0]?.reply_to ?? undefined;
}

export const ATTACHMENT_REF_PREFIX = 'email-attachment:';

/**
 * The bytes behind an older envelope attachment's `ref` (`email-attachment:<id>`): since the
 * attachments moved into the file store (migration 0055), the file with that id. New envelopes
 * carry the file's `fileId` instead; read it as any file (`ctx.readFile`).
 */
export async function readEmailAttachment(
  q: ChannelQueryable,
  ref: string,
): Promise<{ filename: string | null; contentType: string; content: Buffer } | undefined> {
  if (!ref.startsWith(ATTACHMENT_REF_PREFIX)) return undefined;
  const id = ref.slice(ATTACHMENT_REF_PREFIX.length);
  if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
  const { rows } = await q.query<{ name: string; type: string; data: Uint8Array }>(
    `SELECT f.name, f.type, c.data FROM files f
       JOIN file_blobs b ON b.sha256 = f.sha256
       JOIN file_chunks c ON c.blob_id = b.blob_id
      WHERE f.id = $1 ORDER BY c.seq`,
    [id],
  );
  const first = rows[0];
  return first
    ? {
        filename: first.name,
        contentType: first.type,
        content: Buffer.concat(rows.map((r) => Buffer.from(r.data))),
      }
    : undefined;
}

/** Where a failing mail is: the mailbox key and its UID under a UIDVALIDITY. */
export interface MailAt {
  mailbox: string;
  uidValidity: number;
  uid: number;
}

/**
 * A mail's failures so far, counted apart: to be fetched whole (`fetchFailures`) and to be handled
 * (`failures`); and the latest reason (none yet: undefined).
 */
export async function mailFailure(
  q: ChannelQueryable,
  at: MailAt,
): Promise<{ failures: number; fetchFailures: number; reason: string } | undefined> {
  const { rows } = await q.query<{ failures: number; fetch_failures: number; reason: string }>(
    `SELECT failures, fetch_failures, reason FROM email_failures
      WHERE mailbox = $1 AND uid_validity = $2 AND uid = $3 AND set_aside_at IS NULL`,
    [at.mailbox, at.uidValidity, at.uid],
  );
  const row = rows[0];
  return row
    ? { failures: Number(row.failures), fetchFailures: Number(row.fetch_failures), reason: row.reason }
    : undefined;
}

/**
 * Counts one more failure of a mail (`kind`: to be fetched whole, or to be handled; each its own
 * count) and keeps the latest reason; returns how many of that kind so far.
 */
export async function recordMailFailure(
  q: ChannelQueryable,
  at: MailAt,
  failure: { kind: 'fetch' | 'handle'; reason: string; messageId?: string | undefined },
): Promise<number> {
  const fetch = failure.kind === 'fetch';
  const { rows } = await q.query<{ failures: number }>(
    `INSERT INTO email_failures (mailbox, uid_validity, uid, message_id, failures, fetch_failures, reason)
     VALUES ($1, $2, $3, $4, CASE WHEN $6 THEN 0 ELSE 1 END, CASE WHEN $6 THEN 1 ELSE 0 END, $5)
     ON CONFLICT (mailbox, uid_validity, uid) DO UPDATE SET
       failures = email_failures.failures + CASE WHEN $6 THEN 0 ELSE 1 END,
       fetch_failures = email_failures.fetch_failures + CASE WHEN $6 THEN 1 ELSE 0 END,
       reason = EXCLUDED.reason,
       message_id = COALESCE(EXCLUDED.message_id, email_failures.message_id), updated_at = now()
     RETURNING CASE WHEN $6 THEN fetch_failures ELSE failures END AS failures`,
    [at.mailbox, at.uidValidity, at.uid, failure.messageId ?? null, failure.reason, fetch],
  );
  return Number(rows[0]!.failures);
}

/** Records that a mail was set aside (and where it was moved), with the reason. */
export async function recordMailSetAside(
  q: ChannelQueryable,
  at: MailAt,
  aside: { reason: string; movedTo?: string | undefined; messageId?: string | undefined },
): Promise<void> {
  await q.query(
    `INSERT INTO email_failures (mailbox, uid_validity, uid, message_id, reason, set_aside_at, moved_to)
     VALUES ($1, $2, $3, $4, $5, now(), $6)
     ON CONFLICT (mailbox, uid_validity, uid) DO UPDATE SET
       reason = EXCLUDED.reason, set_aside_at = now(), moved_to = EXCLUDED.moved_to,
       message_id = COALESCE(EXCLUDED.message_id, email_failures.message_id), updated_at = now()`,
    [at.mailbox, at.uidValidity, at.uid, aside.messageId ?? null, aside.reason, aside.movedTo ?? null],
  );
}
