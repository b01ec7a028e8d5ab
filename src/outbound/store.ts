import type { Queryable } from '../store/db.ts';
import { json } from '../store/records.ts';
import type { OutboundTemplate } from './capability.ts';

export const OUTBOUND_STATES = [
  'pending',
  'dispatching',
  'queued',
  'scheduled',
  'cancelled',
  'failed',
  'opted_out',
] as const;
export type OutboundState = (typeof OUTBOUND_STATES)[number];

/** One message an operator sent first (a row of `outbound_messages`). */
export interface OutboundMessage {
  id: string;
  bot: string;
  channel: string;
  nativeKey: string;
  sessionId: string | null;
  replyTo: unknown;
  text: string;
  template: OutboundTemplate | null;
  subject: string | null;
  status: OutboundState;
  error: string | null;
  sendAt: string | null;
  broadcastId: string | null;
  idempotencyKey: string | null;
  requestHash: string | null;
}

export const toOutboundMessage = (row: Record<string, unknown>): OutboundMessage => ({
  id: row.id as string,
  bot: row.bot as string,
  channel: row.channel as string,
  nativeKey: row.native_key as string,
  sessionId: (row.session_id as string | null) ?? null,
  replyTo: row.reply_to ?? null,
  text: row.text as string,
  template: (row.template as OutboundTemplate | null) ?? null,
  subject: (row.subject as string | null) ?? null,
  status: row.status as OutboundState,
  error: (row.error as string | null) ?? null,
  sendAt: row.send_at ? new Date(row.send_at as string).toISOString() : null,
  broadcastId: (row.broadcast_id as string | null) ?? null,
  idempotencyKey: (row.idempotency_key as string | null) ?? null,
  requestHash: (row.request_hash as string | null) ?? null,
});

/** The origin type of the envelope an operator's message (or a broadcast's) becomes; its id is the row's. */
export const OPERATOR_ORIGIN = 'operator';
/** The envelope id of the history row a message becomes (see `outboundEnvelope`). */
export const outboundEnvelopeId = (messageId: string) => `outbound:${OPERATOR_ORIGIN}:${messageId}`;
/** The error of a message that could not enter a session: the one it was for ended, and none can be opened. */
export const SESSION_ENDED_ERROR = 'the session it was for has ended';

/**
 * Records a message; with an idempotency key already taken, records nothing and returns
 * undefined (the caller reads the first one).
 */
export async function insertOutboundMessage(
  q: Queryable,
  m: Omit<OutboundMessage, 'error'>,
): Promise<OutboundMessage | undefined> {
  const { rows } = await q.query(
    `INSERT INTO outbound_messages (id, bot, channel, native_key, session_id, reply_to, text, template, subject,
       status, send_at, broadcast_id, idempotency_key, request_hash)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb, $9, $10, $11, $12, $13, $14)
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING *`,
    [
      m.id,
      m.bot,
      m.channel,
      m.nativeKey,
      m.sessionId,
      json(m.replyTo),
      m.text,
      m.template ? json(m.template) : null,
      m.subject,
      m.status,
      m.sendAt,
      m.broadcastId,
      m.idempotencyKey,
      m.requestHash,
    ],
  );
  return rows[0] ? toOutboundMessage(rows[0]) : undefined;
}

export async function findOutboundMessage(q: Queryable, id: string): Promise<OutboundMessage | undefined> {
  const { rows } = await q.query('SELECT * FROM outbound_messages WHERE id = $1', [id]);
  return rows[0] ? toOutboundMessage(rows[0]) : undefined;
}

export async function findByIdempotencyKey(q: Queryable, key: string): Promise<OutboundMessage | undefined> {
  const { rows } = await q.query('SELECT * FROM outbound_messages WHERE idempotency_key = $1', [key]);
  return rows[0] ? toOutboundMessage(rows[0]) : undefined;
}

/** Moves a message from `from` to `to`; false when it was not in `from` (someone else moved it). */
export async function moveOutboundMessage(
  q: Queryable,
  id: string,
  from: OutboundState,
  to: OutboundState,
  extra: { sessionId?: string; error?: string } = {},
): Promise<boolean> {
  const { rows } = await q.query(
    `UPDATE outbound_messages SET status = $3, session_id = COALESCE($4, session_id), error = COALESCE($5, error)
     WHERE id = $1 AND status = $2 RETURNING id`,
    [id, from, to, extra.sessionId ?? null, extra.error ?? null],
  );
  return rows.length > 0;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The message `id` while it waits to be recorded in a session (handed to its lane, not settled). */
export async function findWaitingMessage(q: Queryable, id: string): Promise<OutboundMessage | undefined> {
  if (!UUID.test(id)) return undefined;
  const { rows } = await q.query(
    `SELECT * FROM outbound_messages WHERE id = $1 AND status IN ('queued', 'dispatching')`,
    [id],
  );
  return rows[0] ? toOutboundMessage(rows[0]) : undefined;
}

/**
 * Settles a message that was handed to its session's lane (queued, or a broadcast's recipient
 * still dispatching) as failed with `error`, when its turn could not record it; false when it was
 * not waiting (already settled, or no such message).
 */
export async function failHandedOver(q: Queryable, id: string, error: string): Promise<boolean> {
  if (!UUID.test(id)) return false;
  const { rows } = await q.query(
    `UPDATE outbound_messages SET status = 'failed', error = $2
     WHERE id = $1 AND status IN ('queued', 'dispatching') RETURNING id`,
    [id, error],
  );
  return rows.length > 0;
}

/** The delivery of the history row a message became, once its session recorded it. */
export async function deliveryOf(
  q: Queryable,
  messageId: string,
): Promise<{ status: string; error: string | null; sessionId: string } | undefined> {
  const { rows } = await q.query(
    'SELECT delivery_status, delivery_error, session_id FROM messages WHERE envelope_id = $1',
    [outboundEnvelopeId(messageId)],
  );
  const row = rows[0];
  return row
    ? {
        status: row.delivery_status as string,
        error: (row.delivery_error as string | null) ?? null,
        sessionId: row.session_id as string,
      }
    : undefined;
}
