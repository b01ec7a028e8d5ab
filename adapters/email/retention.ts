import type { ChannelQueryable, PruneBounds } from '../../src/channels/declaration.ts';

/**
 * Failures of mail are kept for an operator while they matter: a mail set aside (the channel's
 * dead letter) for `deadLetterKeepMs` after it was, and a mail's count of failures as long after
 * its last failure (the mail was handled since, or set aside).
 */
export async function pruneEmailFailures(q: ChannelQueryable, bounds: PruneBounds): Promise<void> {
  await q.query(`DELETE FROM email_failures WHERE updated_at < now() - $1 * interval '1 millisecond'`, [
    bounds.deadLetterKeepMs,
  ]);
}
