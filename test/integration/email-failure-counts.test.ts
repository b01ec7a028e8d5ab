import { describe, expect, it } from 'vitest';
import { mailFailure, recordMailFailure } from '../../adapters/email/store.ts';
import type { Db } from '../../src/store/db.ts';
import { useTestDb } from '../helpers/database.ts';

/**
 * A mail's failed fetches and its failed handling are counted apart (`email_failures`, email
 * migration 0150): before, two failed fetches and one failed handling made three handling
 * failures (EMAIL_MAX_FAILURES), and the mail was set aside after one.
 */
describe('email: failed fetches and failed handling are counted apart', () => {
  let db: Db;
  useTestDb('postgres', (opened) => {
    db = opened;
  });

  it('each kind counts its own, and the latest reason is kept', async () => {
    const at = { mailbox: 'support@imap.test:993/INBOX', uidValidity: 7, uid: 42 };
    expect(await mailFailure(db, at)).toBeUndefined();
    expect(await recordMailFailure(db, at, { kind: 'fetch', reason: 'fetch failed: connection reset' })).toBe(
      1,
    );
    expect(await recordMailFailure(db, at, { kind: 'fetch', reason: 'fetch failed: timeout' })).toBe(2);
    expect(await recordMailFailure(db, at, { kind: 'handle', reason: 'parser threw' })).toBe(1);
    expect(await mailFailure(db, at)).toEqual({ failures: 1, fetchFailures: 2, reason: 'parser threw' });
    expect(await recordMailFailure(db, at, { kind: 'fetch', reason: 'fetch failed: again' })).toBe(3);
    expect(await mailFailure(db, at)).toEqual({
      failures: 1,
      fetchFailures: 3,
      reason: 'fetch failed: again',
    });
  });
});
