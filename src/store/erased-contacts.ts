import { createHash } from 'node:crypto';
import type { Envelope } from '../envelope.ts';
import { msAgo } from './clock.ts';
import type { Queryable } from './db.ts';

/**
 * How long an erased contact is remembered (migration 0136): a week. An envelope accepted before
 * the erasure waits in its lane for the inbound dedupe window (a day) at the very most in practice
 * (its retries span minutes; a queue without workers for days is an outage); past this bound such
 * an envelope would make a new contact.
 */
export const ERASED_CONTACT_KEEP_MS = 7 * 24 * 3_600_000;

/** A person on one channel: the channel and its native id (phone number, address, platform id). */
export interface Contact {
  channel: string;
  nativeId: string;
}

/**
 * What the table keeps of a contact: its SHA-256 (in hex here, `decode(…, 'hex')` in SQL, which
 * both drivers pass the same way), never the phone number or address itself.
 */
function contactDigest({ channel, nativeId }: Contact): string {
  return createHash('sha256').update(`${channel}\n${nativeId}`).digest('hex');
}

/**
 * Remembers that these contacts were erased now: in the erasure's transaction, as its last
 * statement (`clock_timestamp()`, so an envelope accepted while the transaction ran counts as
 * accepted before it). Erased again later, the later time holds.
 */
export async function recordErasedContacts(tx: Queryable, contacts: readonly Contact[]): Promise<void> {
  const digests = [...new Set(contacts.map(contactDigest))];
  if (digests.length === 0) return;
  await tx.query(
    `INSERT INTO erased_contacts (contact_digest, erased_at)
     SELECT decode(d, 'hex'), clock_timestamp() FROM unnest($1::text[]) AS t(d)
     ON CONFLICT (contact_digest) DO UPDATE SET erased_at = EXCLUDED.erased_at`,
    [digests],
  );
}

/**
 * Whether the envelope's sender was erased after the envelope was accepted (`receivedAt`, stamped
 * at the accept): it was queued before the erasure and must not bring them back. One lookup by
 * primary key.
 */
export async function erasedSinceAccepted(
  q: Queryable,
  envelope: Pick<Envelope, 'channel' | 'from' | 'receivedAt'>,
): Promise<boolean> {
  const { rows } = await q.query(
    "SELECT 1 FROM erased_contacts WHERE contact_digest = decode($1, 'hex') AND erased_at > $2::timestamptz",
    [contactDigest({ channel: envelope.channel, nativeId: envelope.from.id }), envelope.receivedAt],
  );
  return rows.length > 0;
}

/** Forgets contacts erased more than `olderThanMs` ago, on the database's clock (the expiry job). */
export async function pruneErasedContacts(q: Queryable, olderThanMs: number): Promise<number> {
  const { rowCount } = await q.query(`DELETE FROM erased_contacts WHERE erased_at < ${msAgo('$1')}`, [
    olderThanMs,
  ]);
  return rowCount;
}
