import { OPERATOR_ORIGIN } from '../outbound/store.ts';
import { msAgo } from '../store/clock.ts';
import type { Queryable } from '../store/db.ts';

/**
 * Retention of `outbound_messages` (what an operator or a broadcast sent first: text, address,
 * reply address, subject), which no foreign key ties to a session. A message goes once nothing
 * will send it any more and what holds it goes: its session expires, the bot's
 * `keepMessagesDays` passes, or (held by no session) the bot's anonymous retention passes. A
 * message still to be sent never goes: `pending` or `dispatching` (a broadcast handing it out),
 * `scheduled` (it waits for its `send_at`), or `queued` while its envelope may still be in its
 * session's lane.
 */

/** The history row a message became once its session recorded it (`outboundEnvelopeId`). */
const HISTORY = `SELECT 1 FROM messages m WHERE m.envelope_id = 'outbound:${OPERATOR_ORIGIN}:' || o.id::text`;

/**
 * Settled: refused or cancelled before it went (`failed`, `cancelled`, `opted_out`); recorded in
 * a session and delivered, or given up on (its history row past `queued`); or queued long enough
 * ago (`$lost` ms, see `ExpiryDeps.queuedLostAfterMs`) that its envelope, never recorded, can be
 * in no lane and no dead letter any more.
 */
const settled = (lost: string) => `(o.status IN ('failed', 'cancelled', 'opted_out')
  OR (o.status = 'queued' AND EXISTS (${HISTORY} AND m.delivery_status <> 'queued'))
  OR (o.status = 'queued' AND NOT EXISTS (${HISTORY}) AND o.created_at < ${msAgo(lost)}))`;

/**
 * The messages of sessions the expiry job is removing, before they go (in its transaction):
 * those the sessions recorded (sent, or still waiting for delivery, which the session's removal
 * ends), and those settled. A message the sessions did not record stays while it may still be
 * in their lane (it then opens a new session, or fails, and goes later); one recorded in another
 * session (the ended one's key opened a new one for it) stays with that session.
 */
export async function deleteOutboundOfExpired(
  tx: Queryable,
  sessionIds: readonly string[],
  queuedLostAfterMs: number,
): Promise<number> {
  if (sessionIds.length === 0) return 0;
  const { rowCount } = await tx.query(
    `DELETE FROM outbound_messages o WHERE o.session_id = ANY($1::uuid[])
       AND NOT EXISTS (${HISTORY} AND m.session_id <> ALL($1::uuid[]))
       AND (EXISTS (${HISTORY}) OR ${settled('$2')})`,
    [[...sessionIds], queuedLostAfterMs],
  );
  return rowCount;
}

/**
 * Messages of `bots` older than `keepMs` (their `keepMessagesDays`) that are settled; run before
 * the history rows of that age go, which tell a sent message from one still in its lane.
 */
export async function deleteSettledOutbound(
  q: Queryable,
  bots: readonly string[],
  keepMs: number,
  queuedLostAfterMs: number,
  limit: number,
): Promise<number> {
  const { rowCount } = await q.query(
    `DELETE FROM outbound_messages WHERE id IN (
       SELECT o.id FROM outbound_messages o
       WHERE o.bot = ANY($1::text[]) AND o.created_at < ${msAgo('$2')} AND ${settled('$3')}
       LIMIT $4)`,
    [[...bots], keepMs, queuedLostAfterMs, limit],
  );
  return rowCount;
}

/**
 * Messages no session holds, settled, older than `retentionMs` (the bots' anonymous retention):
 * never recorded in a session (a send that failed, a scheduled one cancelled, a broadcast's
 * recipient who opted out) or whose session is gone (it expired while the message was still
 * in its lane, or before messages went with their sessions' expiry). `others`: every bot but
 * `bots` (those no longer configured).
 */
export async function deleteOrphanOutbound(
  q: Queryable,
  bots: { names: readonly string[]; others: boolean },
  retentionMs: number,
  queuedLostAfterMs: number,
  limit: number,
): Promise<number> {
  const { rowCount } = await q.query(
    `DELETE FROM outbound_messages WHERE id IN (
       SELECT o.id FROM outbound_messages o
       WHERE (CASE WHEN $2::boolean THEN NOT (o.bot = ANY($1::text[])) ELSE o.bot = ANY($1::text[]) END)
         AND o.created_at < ${msAgo('$3')}
         AND (o.session_id IS NULL OR NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = o.session_id))
         AND NOT EXISTS (${HISTORY}) AND ${settled('$4')}
       LIMIT $5)`,
    [[...bots.names], bots.others, retentionMs, queuedLostAfterMs, limit],
  );
  return rowCount;
}
