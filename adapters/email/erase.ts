import type { ChannelQueryable } from '../../src/channels/declaration.ts';

/**
 * Erasing a person: the mail their sessions sent or received (addresses, subjects), found by the
 * session that sent it or the envelope an inbound mail became. The attachments are in the file
 * store, whose files go with their sessions.
 */
export async function eraseEmailOf(
  q: ChannelQueryable,
  erased: { sessionIds: string[]; envelopeIds: string[] },
): Promise<void> {
  const mails = `SELECT message_id FROM email_messages
    WHERE session_id = ANY($1::uuid[]) OR envelope_id = ANY($2::text[])`;
  const params = [erased.sessionIds, erased.envelopeIds];
  await q.query(`DELETE FROM email_messages WHERE message_id IN (${mails})`, params);
}
