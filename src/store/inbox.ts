import type { Envelope } from '../envelope.ts';
import { msAgo } from './clock.ts';
import type { Queryable } from './db.ts';
import { json } from './records.ts';

export interface InboxEntry {
  id: number;
  lane: string;
  envelope: Envelope;
  attempts: number;
  /** Found pending at start: a previous process may have handled it already. */
  recovered?: boolean;
}

/** Records an envelope durably. False when the envelope id is already there (a duplicate). */
export async function insertInbox(
  q: Queryable,
  lane: string,
  envelope: Envelope,
): Promise<InboxEntry | undefined> {
  const { rows } = await q.query<{ id: number }>(
    'INSERT INTO inbox (envelope_id, lane, envelope) VALUES ($1, $2, $3::jsonb) ON CONFLICT (envelope_id) DO NOTHING RETURNING id',
    [envelope.id, lane, json(envelope)],
  );
  return rows[0] ? { id: rows[0].id, lane, envelope, attempts: 0 } : undefined;
}

/**
 * Records several envelopes in one statement, in the order given (their ids increase in that
 * order). Returns, in the same order, each one's entry, or undefined for a duplicate: of an
 * envelope already there, or of one earlier in the same batch.
 */
export async function insertInboxBatch(
  q: Queryable,
  items: readonly { lane: string; envelope: Envelope }[],
): Promise<(InboxEntry | undefined)[]> {
  const { rows } = await q.query<{ id: number; envelope_id: string }>(
    `INSERT INTO inbox (envelope_id, lane, envelope)
     SELECT e, l, v::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(e, l, v, n)
     ORDER BY n
     ON CONFLICT (envelope_id) DO NOTHING
     RETURNING id, envelope_id`,
    [items.map((i) => i.envelope.id), items.map((i) => i.lane), items.map((i) => json(i.envelope))],
  );
  const inserted = new Map(rows.map((r) => [r.envelope_id, r.id]));
  return items.map(({ lane, envelope }) => {
    const id = inserted.get(envelope.id);
    // The first of the batch with this id got the row; any later one is its duplicate.
    inserted.delete(envelope.id);
    return id === undefined ? undefined : { id, lane, envelope, attempts: 0 };
  });
}

export async function markInboxProcessed(q: Queryable, ids: readonly number[]): Promise<void> {
  if (ids.length === 0) return;
  await q.query(`UPDATE inbox SET processed_at = now() WHERE id = ANY($1::bigint[])`, [`{${ids.join(',')}}`]);
}

export async function recordInboxAttempt(
  q: Queryable,
  id: number,
  error: string,
  failed: boolean,
): Promise<void> {
  await q.query(
    `UPDATE inbox SET attempts = attempts + 1, last_error = $2, failed_at = CASE WHEN $3 THEN now() ELSE NULL END WHERE id = $1`,
    [id, error, failed],
  );
}

/** Envelopes accepted but not yet processed, in the order they arrived: what a restart resumes. */
export async function pendingInbox(q: Queryable): Promise<InboxEntry[]> {
  const { rows } = await q.query<{ id: number; lane: string; envelope: Envelope; attempts: number }>(
    'SELECT id, lane, envelope, attempts FROM inbox WHERE processed_at IS NULL AND failed_at IS NULL ORDER BY id',
  );
  return rows.map((r) => ({ id: Number(r.id), lane: r.lane, envelope: r.envelope, attempts: r.attempts }));
}

/** Envelopes that exhausted their attempts, for an operator to inspect and replay. */
/** Envelopes of the embedded queue waiting for their turn, and those set aside (`switchboard queue status`). */
export async function inboxCounts(q: Queryable): Promise<{ pending: number; failed: number }> {
  const { rows } = await q.query<{ pending: string; failed: string }>(
    `SELECT count(*) FILTER (WHERE processed_at IS NULL AND failed_at IS NULL) AS pending,
            count(*) FILTER (WHERE failed_at IS NOT NULL) AS failed
       FROM inbox`,
  );
  return { pending: Number(rows[0]!.pending), failed: Number(rows[0]!.failed) };
}

export async function failedInbox(q: Queryable): Promise<(InboxEntry & { lastError: string | null })[]> {
  const { rows } = await q.query<{
    id: number;
    lane: string;
    envelope: Envelope;
    attempts: number;
    last_error: string | null;
  }>('SELECT id, lane, envelope, attempts, last_error FROM inbox WHERE failed_at IS NOT NULL ORDER BY id');
  return rows.map((r) => ({
    id: Number(r.id),
    lane: r.lane,
    envelope: r.envelope,
    attempts: r.attempts,
    lastError: r.last_error,
  }));
}

/** Forgets envelopes processed more than `olderThanMs` ago (the dedupe window), on the database's clock. */
export async function pruneInbox(q: Queryable, olderThanMs: number): Promise<number> {
  const { rowCount } = await q.query(`DELETE FROM inbox WHERE processed_at <= ${msAgo('$1')}`, [olderThanMs]);
  return rowCount;
}

/**
 * Forgets envelopes set aside more than `olderThanMs` ago (DEAD_LETTER_KEEP_DAYS): they hold
 * what people wrote, and `switchboard queue failed|replay` work on those still kept.
 */
export async function pruneFailedInbox(q: Queryable, olderThanMs: number): Promise<number> {
  const { rowCount } = await q.query(`DELETE FROM inbox WHERE failed_at <= ${msAgo('$1')}`, [olderThanMs]);
  return rowCount;
}

/** Gives failed envelopes a fresh start; the running queue picks them up at its next scan. */
export async function requeueFailedInbox(q: Queryable): Promise<number> {
  const { rowCount } = await q.query(
    'UPDATE inbox SET failed_at = NULL, attempts = 0, last_error = NULL WHERE failed_at IS NOT NULL',
  );
  return rowCount;
}
