import { describe, expect, it } from 'vitest';
import type { Db } from '../../src/store/db.ts';
import {
  ERASED_CONTACT_KEEP_MS,
  erasedSinceAccepted,
  pruneErasedContacts,
  recordErasedContacts,
} from '../../src/store/erased-contacts.ts';
import { useTestDb } from '../helpers/database.ts';

const PHONE = '+4915199990009';

/**
 * The erased contacts (migration 0136) on both databases: an envelope accepted before its
 * sender's erasure is told apart from one accepted after it, by channel and native id, and the
 * table keeps no phone number in clear.
 */
describe.each(['postgres', 'pglite'] as const)('erased contacts (%s)', (backend) => {
  let db: Db;
  useTestDb(backend, (opened) => {
    db = opened;
  });

  const from = (channel: string, id: string, receivedAt: Date) => ({
    channel,
    from: { id },
    receivedAt: receivedAt.toISOString(),
  });

  it('an envelope accepted before the erasure is erased; after it, another channel or person, not', async () => {
    const before = new Date(Date.now() - 1_000);
    await db.transaction((tx) =>
      recordErasedContacts(tx, [
        { channel: 'whatsapp', nativeId: PHONE },
        // The same contact twice (an identity and a session's key) is one row.
        { channel: 'whatsapp', nativeId: PHONE },
        { channel: 'email', nativeId: 'ana@example.com' },
      ]),
    );
    const after = new Date(Date.now() + 1_000);
    expect(await erasedSinceAccepted(db, from('whatsapp', PHONE, before))).toBe(true);
    expect(await erasedSinceAccepted(db, from('email', 'ana@example.com', before))).toBe(true);
    expect(await erasedSinceAccepted(db, from('whatsapp', PHONE, after))).toBe(false);
    expect(await erasedSinceAccepted(db, from('telegram', PHONE, before))).toBe(false);
    expect(await erasedSinceAccepted(db, from('whatsapp', '+4915199990008', before))).toBe(false);
    const { rows } = await db.query<{ row: string }>('SELECT t::text AS row FROM erased_contacts t');
    expect(rows).toHaveLength(2);
    for (const { row } of rows) expect(row).not.toMatch(/4915199990009|ana@example/);
  });

  it('erased again, the later erasure holds; the prune forgets contacts erased longer ago than the bound', async () => {
    await db.query(`UPDATE erased_contacts SET erased_at = now() - interval '1 hour'`);
    const between = new Date(Date.now() - 60_000);
    expect(await erasedSinceAccepted(db, from('whatsapp', PHONE, between))).toBe(false);
    await db.transaction((tx) => recordErasedContacts(tx, [{ channel: 'whatsapp', nativeId: PHONE }]));
    expect(await erasedSinceAccepted(db, from('whatsapp', PHONE, between))).toBe(true);

    await db.query(
      `UPDATE erased_contacts SET erased_at = now() - ($1::double precision + 60000) * interval '1 millisecond'
        WHERE erased_at < now() - interval '1 minute'`,
      [ERASED_CONTACT_KEEP_MS],
    );
    expect(await pruneErasedContacts(db, ERASED_CONTACT_KEEP_MS)).toBe(1);
    expect(await erasedSinceAccepted(db, from('email', 'ana@example.com', between))).toBe(false);
    expect(await erasedSinceAccepted(db, from('whatsapp', PHONE, between))).toBe(true);
  });
});
