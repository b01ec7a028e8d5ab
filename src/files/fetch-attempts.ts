import type { Queryable } from '../store/db.ts';

/**
 * How long a message whose attachment the platform failed to hand over (a 5xx, a timeout) waits
 * before each retry, in milliseconds: the first retry after 1 s, the second after 5 s, the third
 * and any later one after 30 s (ATTACHMENT_RETRY_DELAYS_MS). A platform's hiccup lasts seconds;
 * the queue's own backoff (a few hundred milliseconds) would spend the retries within it.
 */
export const ATTACHMENT_RETRY_DELAYS_MS: readonly number[] = [1_000, 5_000, 30_000];

/** The wait before retry number `retry` (1 for the first), in milliseconds; the last delay repeats. */
export function attachmentRetryDelay(retry: number, delaysMs: readonly number[]): number {
  if (delaysMs.length === 0) return 0;
  return delaysMs[Math.min(Math.max(retry, 1), delaysMs.length) - 1]!;
}

/** A row older than this belongs to a message that went no further (dead-lettered): pruned. */
const STALE_AFTER = '1 day';

/**
 * How often the platform failed to hand a queued message's attachments over (see migration
 * 0100): counted in PostgreSQL, so a lane retried by another worker, or after a restart, goes on
 * counting.
 */
export const fetchFailures = {
  /** Failures recorded so far for this envelope. */
  async count(q: Queryable, envelopeId: string): Promise<number> {
    const { rows } = await q.query<{ failures: number }>(
      'SELECT failures FROM attachment_fetch_failures WHERE envelope_id = $1',
      [envelopeId],
    );
    return rows[0]?.failures ?? 0;
  },

  /** Records one more failure; resolves with the count including it. */
  async record(q: Queryable, envelopeId: string, error: string): Promise<number> {
    const { rows } = await q.query<{ failures: number }>(
      `INSERT INTO attachment_fetch_failures (envelope_id, failures, last_error) VALUES ($1, 1, $2)
       ON CONFLICT (envelope_id) DO UPDATE
         SET failures = attachment_fetch_failures.failures + 1, last_error = $2, updated_at = now()
       RETURNING failures`,
      [envelopeId, error.slice(0, 1000)],
    );
    const failures = rows[0]!.failures;
    // A first failure is rare enough to pay for the clean-up of rows no message came back for.
    if (failures === 1)
      await q.query(
        `DELETE FROM attachment_fetch_failures WHERE updated_at < now() - interval '${STALE_AFTER}'`,
      );
    return failures;
  },

  /** The message went through (with its files, or told without them). */
  async clear(q: Queryable, envelopeId: string): Promise<void> {
    await q.query('DELETE FROM attachment_fetch_failures WHERE envelope_id = $1', [envelopeId]);
  },
};
