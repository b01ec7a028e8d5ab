import type { Queryable } from '../store/db.ts';
import { json } from '../store/records.ts';
import type { OutboundTemplate } from './capability.ts';
import { type OutboundMessage, toOutboundMessage } from './store.ts';

/** One broadcast (a row of `broadcasts`); its recipients are `outbound_messages` rows. */
export interface Broadcast {
  id: string;
  bot: string;
  channel: string;
  text: string;
  template: OutboundTemplate | null;
  subject: string | null;
  ratePerSecond: number;
  total: number;
  /** Recipients already opted out when it was accepted. */
  optedOut: number;
  audience: unknown;
  idempotencyKey: string | null;
  requestHash: string | null;
  createdAt: string;
  /** When every recipient had been handed to their session's lane (or set aside). */
  finishedAt: string | null;
  /** When the run saw no recipient left queued and sent `broadcast.completed` (watched only for webhooks). */
  completedAt: string | null;
}

const iso = (v: unknown) => (v ? new Date(v as string).toISOString() : null);

const toBroadcast = (row: Record<string, unknown>): Broadcast => ({
  id: row.id as string,
  bot: row.bot as string,
  channel: row.channel as string,
  text: row.text as string,
  template: (row.template as OutboundTemplate | null) ?? null,
  subject: (row.subject as string | null) ?? null,
  ratePerSecond: Number(row.rate_per_second),
  total: Number(row.total),
  optedOut: Number(row.opted_out),
  audience: row.audience ?? null,
  idempotencyKey: (row.idempotency_key as string | null) ?? null,
  requestHash: (row.request_hash as string | null) ?? null,
  createdAt: iso(row.created_at)!,
  finishedAt: iso(row.finished_at),
  completedAt: iso(row.completed_at),
});

/** Who a broadcast goes to: recipient session keys, with the open session for explicit channels. */
export type RecipientSource =
  | { kind: 'keys'; nativeKeys: string[]; sessionIds?: (string | null)[] }
  | { kind: 'query'; sql: string; params: unknown[] };

/**
 * Records a broadcast and one pending row per recipient, in one transaction's `tx`; recipients
 * who opted out are recorded as such. Undefined when the idempotency key is taken.
 */
export async function insertBroadcast(
  tx: Queryable,
  b: Omit<Broadcast, 'total' | 'optedOut' | 'createdAt' | 'finishedAt' | 'completedAt'>,
  recipients: RecipientSource,
): Promise<{ total: number; optedOut: number } | undefined> {
  const inserted = await tx.query(
    `INSERT INTO broadcasts (id, bot, channel, text, template, subject, rate_per_second, total, audience,
       idempotency_key, request_hash)
     VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, 0, $8::jsonb, $9, $10)
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`,
    [
      b.id,
      b.bot,
      b.channel,
      b.text,
      b.template ? json(b.template) : null,
      b.subject,
      b.ratePerSecond,
      b.audience === null ? null : json(b.audience),
      b.idempotencyKey,
      b.requestHash,
    ],
  );
  if (inserted.rows.length === 0) return undefined;
  // Every row: the broadcast's content, an id of its own, 'pending' until the run hands it over.
  const base = [b.bot, b.channel, b.text, b.template ? json(b.template) : null, b.subject, b.id];
  const insert = (from: string) =>
    `INSERT INTO outbound_messages (id, bot, channel, native_key, session_id, text, template, subject, status, broadcast_id)
     SELECT gen_random_uuid(), $1::text, $2::text, r.native_key, r.session_id, $3::text, $4::jsonb, $5::text, 'pending', $6::uuid
     FROM ${from} ON CONFLICT DO NOTHING`;
  if (recipients.kind === 'keys')
    await tx.query(insert('unnest($7::text[], $8::uuid[]) AS r(native_key, session_id)'), [
      ...base,
      recipients.nativeKeys,
      recipients.sessionIds ?? recipients.nativeKeys.map(() => null),
    ]);
  // The audience query's parameters follow the six above; it yields (native_key, session_id).
  else await tx.query(insert(`(${recipients.sql}) AS r`), [...base, ...recipients.params]);
  const optedOut = await tx.query(
    `UPDATE outbound_messages o SET status = 'opted_out', error = 'opted_out'
     FROM outbound_opt_outs x
     WHERE o.broadcast_id = $1 AND x.bot = o.bot AND x.channel = o.channel
       AND x.native_id = split_part(o.native_key, '#', 1)
     RETURNING o.id`,
    [b.id],
  );
  const { rows } = await tx.query(
    `UPDATE broadcasts SET total = (SELECT count(*) FROM outbound_messages WHERE broadcast_id = $1),
       opted_out = $2 WHERE id = $1 RETURNING total`,
    [b.id, optedOut.rows.length],
  );
  return { total: Number(rows[0]!.total), optedOut: optedOut.rows.length };
}

export async function findBroadcast(q: Queryable, id: string): Promise<Broadcast | undefined> {
  const { rows } = await q.query('SELECT * FROM broadcasts WHERE id = $1', [id]);
  return rows[0] ? toBroadcast(rows[0]) : undefined;
}

export async function findBroadcastByKey(q: Queryable, key: string): Promise<Broadcast | undefined> {
  const { rows } = await q.query('SELECT * FROM broadcasts WHERE idempotency_key = $1', [key]);
  return rows[0] ? toBroadcast(rows[0]) : undefined;
}

export async function listBroadcasts(q: Queryable, bots: string[] | undefined, limit: number) {
  const { rows } = await q.query(
    `SELECT * FROM broadcasts WHERE ($1::text[] IS NULL OR bot = ANY($1::text[]))
     ORDER BY created_at DESC LIMIT $2`,
    [bots ?? null, limit],
  );
  return rows.map(toBroadcast);
}

/** Recipient rows a tick that died left claimed: they are handed over again. */
export async function leftoverRecipients(q: Queryable, broadcastId: string): Promise<OutboundMessage[]> {
  const { rows } = await q.query(
    `SELECT * FROM outbound_messages WHERE broadcast_id = $1 AND status = 'dispatching'`,
    [broadcastId],
  );
  return rows.map(toOutboundMessage);
}

/** Claims up to `limit` pending recipients for this tick (pending → dispatching). */
export async function claimRecipients(
  q: Queryable,
  broadcastId: string,
  limit: number,
): Promise<OutboundMessage[]> {
  if (limit <= 0) return [];
  const { rows } = await q.query(
    `UPDATE outbound_messages SET status = 'dispatching'
     WHERE id IN (SELECT id FROM outbound_messages WHERE broadcast_id = $1 AND status = 'pending'
                  ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
     RETURNING *`,
    [broadcastId, limit],
  );
  return rows.map(toOutboundMessage);
}

/** Whether recipients still wait to be handed over. */
export async function hasWaitingRecipients(q: Queryable, broadcastId: string): Promise<boolean> {
  const { rows } = await q.query(
    `SELECT 1 FROM outbound_messages WHERE broadcast_id = $1 AND status IN ('pending', 'dispatching') LIMIT 1`,
    [broadcastId],
  );
  return rows.length > 0;
}

/** Whether a tick has handed any recipient over, or set one aside at its turn. */
export async function runHasBegun(q: Queryable, broadcastId: string): Promise<boolean> {
  const { rows } = await q.query(
    `SELECT 1 FROM outbound_messages WHERE broadcast_id = $1 AND status IN ('dispatching', 'queued', 'failed') LIMIT 1`,
    [broadcastId],
  );
  return rows.length > 0;
}

/** Settles every recipient still waiting as failed with `error` (a broadcast that will not run); how many. */
export async function abandonRecipients(q: Queryable, broadcastId: string, error: string): Promise<number> {
  const { rowCount } = await q.query(
    `UPDATE outbound_messages SET status = 'failed', error = $2 WHERE broadcast_id = $1 AND status = 'pending'`,
    [broadcastId, error],
  );
  return rowCount;
}

/** A dispatching recipient's outcome: handed to its lane (queued, with its session), or set aside. */
export async function settleRecipient(
  q: Queryable,
  id: string,
  to: 'queued' | 'failed' | 'opted_out',
  extra: { nativeKey?: string; sessionId?: string; replyTo?: unknown; error?: string } = {},
): Promise<void> {
  await q.query(
    `UPDATE outbound_messages SET status = $2, native_key = COALESCE($3, native_key),
       session_id = COALESCE($4, session_id), reply_to = COALESCE($5::jsonb, reply_to), error = $6
     WHERE id = $1 AND status = 'dispatching'`,
    [
      id,
      to,
      extra.nativeKey ?? null,
      extra.sessionId ?? null,
      extra.replyTo === undefined || extra.replyTo === null ? null : json(extra.replyTo),
      extra.error ?? null,
    ],
  );
}

export async function markBroadcastFinished(q: Queryable, id: string): Promise<boolean> {
  const { rows } = await q.query(
    `UPDATE broadcasts SET finished_at = now() WHERE id = $1 AND finished_at IS NULL RETURNING id`,
    [id],
  );
  return rows.length > 0;
}

export interface BroadcastCounts {
  total: number;
  queued: number;
  sent: number;
  delivered: number;
  failed: number;
  opted_out: number;
}

/**
 * Where every recipient is: waiting or in the outbox (queued), sent, delivered (or read),
 * failed (refused by the channel, or delivery failed), opted out. The buckets add up to total.
 */
export async function broadcastCounts(q: Queryable, id: string): Promise<BroadcastCounts> {
  const { rows } = await q.query(
    `SELECT CASE
         WHEN o.status IN ('pending', 'dispatching', 'scheduled') THEN 'queued'
         WHEN o.status = 'opted_out' THEN 'opted_out'
         WHEN o.status = 'queued' THEN CASE m.delivery_status
           WHEN 'sent' THEN 'sent' WHEN 'delivered' THEN 'delivered' WHEN 'read' THEN 'delivered'
           WHEN 'failed' THEN 'failed' ELSE 'queued' END
         ELSE 'failed' END AS bucket,
       count(*) AS n
     FROM outbound_messages o
     LEFT JOIN messages m ON m.envelope_id = 'outbound:operator:' || o.id::text
     WHERE o.broadcast_id = $1
     GROUP BY 1`,
    [id],
  );
  const counts: BroadcastCounts = { total: 0, queued: 0, sent: 0, delivered: 0, failed: 0, opted_out: 0 };
  for (const row of rows) {
    const n = Number(row.n);
    counts[row.bucket as Exclude<keyof BroadcastCounts, 'total'>] += n;
    counts.total += n;
  }
  return counts;
}

/** Marks the broadcast completed, once: true for the one call that did (it sends the event). */
export async function markBroadcastCompleted(q: Queryable, id: string): Promise<boolean> {
  const { rows } = await q.query(
    `UPDATE broadcasts SET completed_at = now() WHERE id = $1 AND completed_at IS NULL RETURNING id`,
    [id],
  );
  return rows.length > 0;
}
