import type { ChannelQueryable, ErasedSessions } from '../../src/channels/declaration.ts';

/**
 * Erasing a person: the mail their sessions sent or received (addresses, subjects), found by the
 * session that sent it or the envelope an inbound mail became — and, for a mail whose envelope
 * has not become a message yet (still queued: on Redis its envelope id is nowhere in PostgreSQL),
 * by its thread and the address a reply would go to, the two halves of an email session's key
 * (`<address>#<thread>`). The attachments are in the file store, whose files go with their sessions.
 */
export async function eraseEmailOf(q: ChannelQueryable, erased: ErasedSessions): Promise<void> {
  const mails = `SELECT message_id FROM email_messages
    WHERE session_id = ANY($1::uuid[]) OR envelope_id = ANY($2::text[])`;
  const params = [erased.sessionIds, erased.envelopeIds];
  await q.query(`DELETE FROM email_messages WHERE message_id IN (${mails})`, params);
  const keys = erased.sessions.flatMap((s) => {
    if (s.channel !== 'email') return [];
    const hash = s.nativeKey.indexOf('#');
    if (hash < 0) return [];
    const address = s.nativeKey.slice(0, hash).replace(/^unverified:/, '');
    return [{ address: address.toLowerCase(), thread: s.nativeKey.slice(hash + 1) }];
  });
  if (keys.length === 0) return;
  await q.query(
    `DELETE FROM email_messages m USING jsonb_to_recordset($1::jsonb) AS k(address text, thread text)
     WHERE m.direction = 'in' AND m.thread = k.thread
       AND lower(m.reply_to -> 'to' ->> 'address') = k.address`,
    [JSON.stringify(keys)],
  );
}
