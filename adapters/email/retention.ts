import type { ChannelQueryable, ExpiredSessions, PruneBounds } from '../../src/channels/declaration.ts';

/**
 * Expiring anonymous sessions: the mail they sent or received (addresses, subjects), found by the
 * session that sent it or the envelope an inbound mail became, and the failures recorded for
 * that mail. Unlike an erasure, nothing is found by the sessions' keys (address and thread): the
 * person may have another session on the same thread, whose mail stays.
 */
export async function expireEmailOf(q: ChannelQueryable, expired: ExpiredSessions): Promise<void> {
  if (expired.sessionIds.length === 0) return;
  const { rows } = await q.query<{ message_id: string }>(
    `DELETE FROM email_messages
     WHERE (direction = 'out' AND session_id = ANY($1::uuid[]))
        OR (direction = 'in' AND envelope_id = ANY($2::text[]))
     RETURNING message_id`,
    [expired.sessionIds, expired.envelopeIds],
  );
  if (rows.length === 0) return;
  await q.query('DELETE FROM email_failures WHERE message_id = ANY($1::text[])', [
    rows.map((r) => r.message_id),
  ]);
}

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
