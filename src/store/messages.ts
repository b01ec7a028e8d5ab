import { msAgo } from './clock.ts';
import { prepared, type Queryable } from './db.ts';
import { type DeliveryStatus, type MessageRecord, type MessageRole, toMessageRecord } from './records.ts';

export const MAX_PAGE_SIZE = 200;

export interface HistoryPage {
  /** Return messages with seq > afterSeq, oldest first. */
  afterSeq?: number;
  /** Return the newest messages with seq < beforeSeq, still oldest first. */
  beforeSeq?: number;
  limit: number;
}

/** Postgres text[] literal for a list of roles (plain identifiers, so nothing to quote). */
const roleList = (roles: readonly MessageRole[] | undefined): string | null =>
  roles ? `{${roles.join(',')}}` : null;

/**
 * A session's history, every role unless `roles` narrows it. What a person is shown is read
 * through `personHistory` (`person-history.ts`), never with this directly.
 */
export async function listMessages(
  q: Queryable,
  sessionId: string,
  page: HistoryPage,
  roles?: readonly MessageRole[],
): Promise<MessageRecord[]> {
  const limit = Math.min(Math.max(page.limit, 1), MAX_PAGE_SIZE);
  const only = roleList(roles);
  if (page.beforeSeq !== undefined) {
    const { rows } = await q.query(
      `SELECT * FROM messages WHERE session_id = $1 AND seq < $2 AND ($4::text[] IS NULL OR role = ANY($4::text[]))
       ORDER BY seq DESC LIMIT $3`,
      [sessionId, page.beforeSeq, limit, only],
    );
    return rows.map(toMessageRecord).reverse();
  }
  const { rows } = await q.query(
    `SELECT * FROM messages WHERE session_id = $1 AND seq > $2 AND ($4::text[] IS NULL OR role = ANY($4::text[]))
     ORDER BY seq ASC LIMIT $3`,
    [sessionId, page.afterSeq ?? 0, limit, only],
  );
  return rows.map(toMessageRecord);
}

/** The rows of these roles a turn added after its inbound message, in order; empty when not processed (yet). */
export async function repliesTo(
  q: Queryable,
  envelopeId: string,
  roles: readonly MessageRole[],
): Promise<MessageRecord[]> {
  const { rows } = await q.query(
    'SELECT * FROM messages WHERE in_reply_to = $1 AND role = ANY($2::text[]) ORDER BY seq ASC',
    [envelopeId, roleList(roles)],
  );
  return rows.map(toMessageRecord);
}

const ENVELOPE_RECORDED = prepared('envelope_recorded', 'SELECT 1 FROM messages WHERE envelope_id = $1');

export async function isEnvelopeRecorded(q: Queryable, envelopeId: string): Promise<boolean> {
  const { rows } = await q.query(ENVELOPE_RECORDED, [envelopeId]);
  return rows.length > 0;
}

export interface DeliveryUpdate {
  sessionId: string;
  seq: number;
  status: DeliveryStatus;
  error?: string | null;
  channelMessageId?: string | null;
  /** Count this as one more delivery attempt. */
  attempted?: boolean;
}

export async function updateDelivery(q: Queryable, update: DeliveryUpdate): Promise<void> {
  await q.query(
    `UPDATE messages SET delivery_status = $3, delivery_error = $4,
       channel_message_id = COALESCE($5, channel_message_id),
       delivery_attempts = delivery_attempts + $6, updated_at = now()
     WHERE session_id = $1 AND seq = $2`,
    [
      update.sessionId,
      update.seq,
      update.status,
      update.error ?? null,
      update.channelMessageId ?? null,
      update.attempted ? 1 : 0,
    ],
  );
}

/**
 * A client that reads its replies itself (the web widget) acknowledged everything up to `seq`:
 * the replies it saw move from `sent` to `delivered`. Returns how many moved.
 */
export async function markDeliveredThrough(q: Queryable, sessionId: string, seq: number): Promise<number> {
  const { rowCount } = await q.query(
    `UPDATE messages SET delivery_status = 'delivered', updated_at = now()
     WHERE session_id = $1 AND seq <= $2 AND role IN ('assistant', 'agent') AND delivery_status = 'sent'`,
    [sessionId, seq],
  );
  return rowCount;
}

const STATUS_RANK: Record<DeliveryStatus, number> = {
  received: 0,
  queued: 1,
  failed: 2,
  sent: 3,
  delivered: 4,
  read: 5,
};

/**
 * Applies a status the platform reported for one of our outbound messages (WhatsApp statuses,
 * read receipts). Statuses arrive out of order; one never moves a message backwards
 * (a late `sent` cannot undo `read`), except `failed`, which the platform may report after `sent`.
 */
export async function applyPlatformStatus(
  q: Queryable,
  channelMessageId: string,
  status: DeliveryStatus,
  error?: string,
): Promise<number> {
  const lower = Object.entries(STATUS_RANK)
    .filter(([, rank]) => rank < STATUS_RANK[status] || status === 'failed')
    .map(([s]) => s)
    .filter((s) => s !== status);
  const { rowCount } = await q.query(
    `UPDATE messages SET delivery_status = $2, delivery_error = COALESCE($3, delivery_error), updated_at = now()
     WHERE channel_message_id = $1 AND delivery_status = ANY($4::text[])`,
    [channelMessageId, status, error ?? null, `{${lower.join(',')}}`],
  );
  return rowCount;
}

/** Replies still waiting for their first delivery, oldest first (a sender died, or never ran). */
export async function undeliveredReplies(
  q: Queryable,
  olderThan: Date,
  limit: number,
): Promise<MessageRecord[]> {
  const { rows } = await q.query(
    `SELECT * FROM messages WHERE delivery_status = 'queued' AND created_at < $1 ORDER BY created_at, session_id, seq LIMIT $2`,
    [olderThan, limit],
  );
  return rows.map(toMessageRecord);
}

/** A reply waiting to be sent, with its times on the database's clock. */
export interface QueuedReply extends MessageRecord {
  /** How long it has waited: since it was committed, or put back by an operator. */
  queuedForMs: number;
  /** How long until its next attempt is due (a retry's backoff); 0 when it is due now. */
  dueInMs: number;
}

/** A session's replies waiting to be sent, in order. */
export async function queuedReplies(q: Queryable, sessionId: string): Promise<QueuedReply[]> {
  const { rows } = await q.query(
    `SELECT *,
       extract(epoch FROM now() - coalesce(delivery_queued_at, created_at)) * 1000 AS queued_for_ms,
       greatest(coalesce(extract(epoch FROM delivery_next_attempt_at - now()) * 1000, 0), 0) AS due_in_ms
     FROM messages WHERE session_id = $1 AND delivery_status = 'queued' ORDER BY seq`,
    [sessionId],
  );
  return rows.map((r) => ({
    ...toMessageRecord(r),
    queuedForMs: Math.max(0, Number(r.queued_for_ms)),
    dueInMs: Math.ceil(Number(r.due_in_ms)),
  }));
}

/**
 * Sessions with replies queued and untouched for `olderThanMs` (0: any queued until now, on the
 * database's clock): their sender died, or never ran. A reply waiting for a retry counts from
 * when that retry is due: the scheduler's job wakes it then, and this finds it only once that
 * job is `olderThanMs` late (lost).
 */
export async function sessionsWithStaleReplies(
  q: Queryable,
  olderThanMs: number,
  limit: number,
): Promise<string[]> {
  const { rows } = await q.query<{ session_id: string }>(
    `SELECT DISTINCT session_id FROM messages WHERE delivery_status = 'queued'
       AND coalesce(delivery_next_attempt_at, updated_at) <= ${msAgo('$1')} LIMIT $2`,
    [olderThanMs, limit],
  );
  return rows.map((r) => r.session_id);
}

/** Replies that exhausted their delivery attempts, newest first. */
export async function failedReplies(
  q: Queryable,
  limit: number,
): Promise<(MessageRecord & { bot: string; channel: string })[]> {
  const { rows } = await q.query(
    `SELECT m.*, s.bot, s.channel FROM messages m JOIN sessions s ON s.id = m.session_id
     WHERE m.delivery_status = 'failed' ORDER BY m.updated_at DESC LIMIT $1`,
    [limit],
  );
  return rows.map((r) => ({ ...toMessageRecord(r), bot: r.bot as string, channel: r.channel as string }));
}

/**
 * Puts failed replies back in the queue (all of them, or one session's), each with a fresh
 * delivery budget; returns the sessions touched.
 */
export async function requeueFailedReplies(q: Queryable, sessionId?: string): Promise<string[]> {
  const { rows } = await q.query<{ session_id: string }>(
    `UPDATE messages SET delivery_status = 'queued', delivery_error = NULL, delivery_attempts = 0,
       delivery_queued_at = now(), delivery_next_attempt_at = NULL, updated_at = now() - interval '1 hour'
     WHERE delivery_status = 'failed' AND ($1::uuid IS NULL OR session_id = $1) RETURNING session_id`,
    [sessionId ?? null],
  );
  return [...new Set(rows.map((r) => r.session_id))];
}

export interface DeliveryOutcome {
  seq: number;
  status: DeliveryStatus;
  channelMessageId?: string | null;
  error?: string | null;
  /** A reply left `queued` after a failure: its next attempt is due this long from now. */
  retryInMs?: number;
}

/** Records one delivery attempt for several replies of a session, in one statement. */
export async function recordDeliveries(
  q: Queryable,
  sessionId: string,
  outcomes: readonly DeliveryOutcome[],
): Promise<void> {
  if (outcomes.length === 0) return;
  await q.query(
    `UPDATE messages m SET delivery_status = x.status, channel_message_id = COALESCE(x.channel_message_id, m.channel_message_id),
       delivery_error = x.error, delivery_attempts = m.delivery_attempts + 1, updated_at = now(),
       delivery_next_attempt_at = now() + x.retry_in_ms * interval '1 millisecond'
     FROM jsonb_to_recordset($2::jsonb) AS x(seq bigint, status text, channel_message_id text, error text, retry_in_ms double precision)
     WHERE m.session_id = $1 AND m.seq = x.seq`,
    [
      sessionId,
      JSON.stringify(
        outcomes.map((o) => ({
          seq: o.seq,
          status: o.status,
          channel_message_id: o.channelMessageId ?? null,
          error: o.error ?? null,
          retry_in_ms: o.retryInMs ?? null,
        })),
      ),
    ],
  );
}
