import { randomUUID } from 'node:crypto';
import type { Channel } from '../envelope.ts';
import type { Db, Queryable } from './db.ts';

/**
 * Finds the user who owns a channel identity, creating both on first contact. Two processes
 * meeting a new identity at once end with one user: the loser's user row is rolled back.
 */
export async function userForIdentity(
  db: Db,
  identity: { channel: Channel; nativeId: string; name?: string | undefined; email?: string | undefined },
): Promise<string> {
  const found = await db.query<{ user_id: string }>(
    'SELECT user_id FROM user_identities WHERE channel = $1 AND native_id = $2',
    [identity.channel, identity.nativeId],
  );
  if (found.rows[0]) return found.rows[0].user_id;
  return db.transaction(async (tx) => {
    const userId = randomUUID();
    await tx.query('INSERT INTO users (id, display_name, email) VALUES ($1, $2, $3)', [
      userId,
      identity.name ?? null,
      identity.email ?? null,
    ]);
    const linked = await tx.query(
      `INSERT INTO user_identities (channel, native_id, user_id, display_name) VALUES ($1, $2, $3, $4)
       ON CONFLICT (channel, native_id) DO NOTHING`,
      [identity.channel, identity.nativeId, userId, identity.name ?? null],
    );
    if (linked.rowCount > 0) return userId;
    await tx.query('DELETE FROM users WHERE id = $1', [userId]);
    const winner = await tx.query<{ user_id: string }>(
      'SELECT user_id FROM user_identities WHERE channel = $1 AND native_id = $2',
      [identity.channel, identity.nativeId],
    );
    if (!winner.rows[0])
      throw new Error(`identity ${identity.channel}:${identity.nativeId} conflicted but is absent`);
    return winner.rows[0].user_id;
  });
}

export interface UserRecord {
  id: string;
  displayName: string | null;
  email: string | null;
  externalId: string | null;
  createdAt: string;
}

export interface IdentityRecord {
  channel: Channel;
  nativeId: string;
  displayName: string | null;
  createdAt: string;
}

const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));

export async function findUser(q: Queryable, userId: string): Promise<UserRecord | undefined> {
  const { rows } = await q.query('SELECT * FROM users WHERE id = $1', [userId]);
  const row = rows[0];
  if (!row) return undefined;
  return {
    id: row.id as string,
    displayName: (row.display_name as string | null) ?? null,
    email: (row.email as string | null) ?? null,
    externalId: (row.external_id as string | null) ?? null,
    createdAt: iso(row.created_at),
  };
}

export async function listIdentities(q: Queryable, userId: string): Promise<IdentityRecord[]> {
  const { rows } = await q.query(
    'SELECT channel, native_id, display_name, created_at FROM user_identities WHERE user_id = $1 ORDER BY created_at, channel, native_id',
    [userId],
  );
  return rows.map((row) => ({
    channel: row.channel as Channel,
    nativeId: row.native_id as string,
    displayName: (row.display_name as string | null) ?? null,
    createdAt: iso(row.created_at),
  }));
}

/**
 * The user the host site knows by `externalId` (a sign-in JWT's `sub`), created on first sign-in.
 * Name and email are refreshed from what the host site says now; absent ones keep their value.
 */
export async function upsertExternalUser(
  q: Queryable,
  user: { externalId: string; name?: string | undefined; email?: string | undefined },
): Promise<string> {
  const { rows } = await q.query<{ id: string }>(
    `INSERT INTO users (id, display_name, email, external_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (external_id) DO UPDATE SET
       display_name = COALESCE(EXCLUDED.display_name, users.display_name),
       email = COALESCE(EXCLUDED.email, users.email),
       updated_at = now()
     RETURNING id`,
    [randomUUID(), user.name ?? null, user.email ?? null, user.externalId],
  );
  return rows[0]!.id;
}

export type FreeLinkResult = 'linked' | 'already_linked' | 'taken';

/**
 * Links an identity to a user only if nobody owns it yet: an identity that is someone else's
 * stays theirs ('taken'); moving it is an operator's decision (`assignIdentity`).
 */
export async function linkFreeIdentity(
  q: Queryable,
  identity: { userId: string; channel: Channel; nativeId: string; displayName?: string | undefined },
): Promise<FreeLinkResult> {
  const inserted = await q.query(
    `INSERT INTO user_identities (channel, native_id, user_id, display_name) VALUES ($1, $2, $3, $4)
     ON CONFLICT (channel, native_id) DO NOTHING`,
    [identity.channel, identity.nativeId, identity.userId, identity.displayName ?? null],
  );
  if (inserted.rowCount > 0) return 'linked';
  const { rows } = await q.query<{ user_id: string }>(
    'SELECT user_id FROM user_identities WHERE channel = $1 AND native_id = $2',
    [identity.channel, identity.nativeId],
  );
  return rows[0]?.user_id === identity.userId ? 'already_linked' : 'taken';
}

/**
 * Makes an identity this user's, taking it from whoever had it. Returns the previous owner
 * (null when the identity was new, or already this user's).
 */
export async function assignIdentity(
  q: Queryable,
  identity: { userId: string; channel: Channel; nativeId: string },
): Promise<{ previousUserId: string | null }> {
  const before = await q.query<{ user_id: string }>(
    'SELECT user_id FROM user_identities WHERE channel = $1 AND native_id = $2 FOR UPDATE',
    [identity.channel, identity.nativeId],
  );
  await q.query(
    `INSERT INTO user_identities (channel, native_id, user_id) VALUES ($1, $2, $3)
     ON CONFLICT (channel, native_id) DO UPDATE SET user_id = EXCLUDED.user_id`,
    [identity.channel, identity.nativeId, identity.userId],
  );
  const previous = before.rows[0]?.user_id;
  return { previousUserId: previous && previous !== identity.userId ? previous : null };
}

/** Removes an identity from a user; false when the user does not own it. */
export async function unlinkIdentity(
  q: Queryable,
  identity: { userId: string; channel: Channel; nativeId: string },
): Promise<boolean> {
  const { rowCount } = await q.query(
    'DELETE FROM user_identities WHERE channel = $1 AND native_id = $2 AND user_id = $3',
    [identity.channel, identity.nativeId, identity.userId],
  );
  return rowCount > 0;
}

/**
 * Hands an anonymous user's memory and sessions to `intoUserId` (memory the target already has
 * wins), then removes the anonymous user if nothing else refers to it: an anonymous web session
 * that remembered things about its person and then signed in.
 */
export async function absorbAnonymousUser(
  q: Queryable,
  fromUserId: string,
  intoUserId: string,
): Promise<void> {
  await q.query(
    `INSERT INTO user_memory (user_id, key, value, updated_at)
     SELECT $2, key, value, updated_at FROM user_memory WHERE user_id = $1
     ON CONFLICT (user_id, key) DO NOTHING`,
    [fromUserId, intoUserId],
  );
  await q.query(`UPDATE sessions SET user_id = $2 WHERE user_id = $1 AND auth_level = 'anonymous'`, [
    fromUserId,
    intoUserId,
  ]);
  await q.query(
    `DELETE FROM users u WHERE u.id = $1 AND u.external_id IS NULL
       AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id)
       AND NOT EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id)`,
    [fromUserId],
  );
}
