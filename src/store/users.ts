import { randomUUID } from 'node:crypto';
import type { Channel } from '../envelope.ts';
import type { Db } from './db.ts';

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
