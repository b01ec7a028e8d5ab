import { SESSIONS_OF_PERSON } from '../analytics/transcripts.ts';
import { identityOfNativeKey } from '../envelope.ts';
import { type ErasureDeps, eraseUser } from '../erasure.ts';
import { msAgo } from '../store/clock.ts';
import type { Queryable } from '../store/db.ts';
import { ANY, type ErasureHooks } from '../store/erasure.ts';
import { recordEvent } from '../store/events.ts';
import { json } from '../store/records.ts';

/**
 * Identified-user retention (IDENTIFIED_USER_RETENTION_DAYS): a person known on a channel
 * (WhatsApp, Teams, email, Slack, Telegram) or signed in keeps a user, identities and USER MEMORY
 * after every session of theirs has expired; with the setting, the expiry job erases those who
 * have been away longer than it. "Away" is measured on what they did, never on when a row was
 * cleaned up: their sessions' last activity, and `users.last_seen_at` for sessions already gone.
 */

/** Users examined per statement: each is then erased in a transaction of its own. */
export const RETENTION_BATCH_USERS = 500;
/**
 * Users examined per run at most (an erasure each), so that a first run over a large backlog,
 * such as the day the setting is turned on, ends in minutes and releases the expiry job's lock;
 * the rest go in the next runs.
 */
export const RETENTION_USERS_PER_RUN = 5_000;
/** The session event recorded, with erasure's own `user.erased`, when retention erased a user. */
export const USER_EXPIRED_EVENT = 'user.expired';
export const RETENTION_REASON = 'retention';

const DAY_MS = 86_400_000;
/** Smaller than every uuid: where a run's walk through the users starts. */
const FIRST_USER = '00000000-0000-0000-0000-000000000000';

/** A session the expiry job is about to remove: whose activity it carries, and until when. */
export interface SeenSession {
  userId: string | null;
  channel: string;
  nativeKey: string;
  lastActivityAt: Date | string;
}

/**
 * Before sessions are removed (in the transaction that removes them): each user they name, and
 * each owner of the channel identity they were on, keeps their latest activity in
 * `users.last_seen_at`, so that retention still knows when the person was last here.
 */
export async function rememberLastSeen(tx: Queryable, sessions: readonly SeenSession[]): Promise<void> {
  if (sessions.length === 0) return;
  const seen = sessions.map((s) => ({
    user_id: s.userId,
    channel: s.channel,
    native_id: identityOfNativeKey(s.nativeKey).from.id,
    at: new Date(s.lastActivityAt).toISOString(),
  }));
  await tx.query(
    `WITH seen AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS e(user_id uuid, channel text, native_id text, at timestamptz)
     ), who AS (
       SELECT user_id, at FROM seen WHERE user_id IS NOT NULL
       UNION ALL
       SELECT i.user_id, seen.at FROM seen JOIN user_identities i ON i.channel = seen.channel AND i.native_id = seen.native_id
     )
     UPDATE users u SET last_seen_at = latest.at
     FROM (SELECT user_id, max(at) AS at FROM who GROUP BY user_id) latest
     WHERE u.id = latest.user_id AND u.last_seen_at < latest.at`,
    [json(seen)],
  );
}

/**
 * `u` has been away since before `bound` (an SQL timestamptz): last seen before it (sessions
 * already removed), no identity linked since, and no session naming them open or active since.
 * What indexes answer cheaply; `STILL_AWAY` adds the sessions found through their identities.
 */
const AWAY = (bound: string) => `u.last_seen_at < ${bound}
  AND NOT EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id AND i.created_at >= ${bound})
  AND NOT EXISTS (SELECT 1 FROM sessions s
                  WHERE s.user_id = u.id AND (s.ended_at IS NULL OR s.last_activity_at >= ${bound}))`;

/**
 * Identified users (an identity, or signed in) away for longer than $1 ms, after the user $2 in
 * id order, $3 at most. A user with neither is an anonymous session's memory owner: it goes with
 * its sessions (the bot's anonymous retention), not here.
 */
const AWAY_USERS = `SELECT u.id FROM users u
  WHERE u.id > $2::uuid
    AND (u.external_id IS NOT NULL OR EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id))
    AND ${AWAY(msAgo('$1'))}
  ORDER BY u.id LIMIT $3`;

/**
 * In the erasure's transaction, with the user locked (`ErasureHooks.proceed`): still away,
 * counting every session erasure would remove (those of their identities that name nobody, or
 * someone else, too). A message handled since the batch was chosen keeps them, and so does one
 * whose session is being inserted as this locks (its insert holds the user's key lock until it
 * commits). One that comes after the lock waits for the erasure, then, accepted before it, is
 * dropped as erasure drops what was queued for an erased contact (src/store/erased-contacts.ts).
 */
async function stillAway(tx: Queryable, userId: string, retentionMs: number): Promise<boolean> {
  const bound = msAgo('$2');
  const { rows } = await tx.query(
    `SELECT 1 FROM users u WHERE u.id = $1 AND ${AWAY(bound)}
       AND NOT EXISTS (SELECT 1 FROM sessions s WHERE ${SESSIONS_OF_PERSON.replaceAll('$USER', 'u.id')}
                         AND (s.ended_at IS NULL OR s.last_activity_at >= ${bound}))`,
    [userId, retentionMs],
  );
  return rows.length > 0;
}

/**
 * What retention adds to a person's erasure (src/store/erasure.ts `ErasureHooks`): the check that
 * they are still away, and why they went (`user.expired`), in the same commit. Erasure stays the
 * one way a person is removed, called as it is, not repeated here.
 */
const retentionHooks = (userId: string, retentionMs: number): ErasureHooks => ({
  proceed: (tx) => stillAway(tx, userId, retentionMs),
  record: (tx) =>
    recordEvent(tx, {
      sessionId: null,
      bot: ANY,
      channel: ANY,
      type: USER_EXPIRED_EVENT,
      data: { userId, reason: RETENTION_REASON, retentionDays: retentionMs / DAY_MS },
    }),
});

export interface IdentifiedRetentionDeps extends ErasureDeps {
  /** IDENTIFIED_USER_RETENTION_DAYS, in ms. */
  retentionMs: number;
}

/**
 * Erases, through erasure, the identified users away for longer than `retentionMs` and with no
 * open session: their sessions, identities, memory and user row, and all erasure reaches. Users
 * are chosen RETENTION_BATCH_USERS at a time, RETENTION_USERS_PER_RUN at most per run; each is
 * checked again in its erasure's transaction. Returns how many were erased.
 */
export async function expireIdentifiedUsers(deps: IdentifiedRetentionDeps): Promise<number> {
  const { db, logger, retentionMs } = deps;
  let after = FIRST_USER;
  let examined = 0;
  let erased = 0;
  for (;;) {
    const { rows } = await db.query<{ id: string }>(AWAY_USERS, [retentionMs, after, RETENTION_BATCH_USERS]);
    for (const { id } of rows) {
      try {
        // Undefined: gone meanwhile, or back (not away any more under the lock): nothing erased.
        const result = await eraseUser(deps, id, retentionHooks(id, retentionMs));
        if (!result) continue;
        erased += 1;
        logger.info({
          event: 'user.expired',
          userId: id,
          reason: RETENTION_REASON,
          sessions: result.sessions.length,
        });
      } catch (err) {
        // One user's failure (a lock timeout, a lost connection) leaves them for the next run.
        logger.warn({ event: 'user.expire_failed', userId: id, err: (err as Error).message });
      }
    }
    examined += rows.length;
    if (rows.length < RETENTION_BATCH_USERS || examined >= RETENTION_USERS_PER_RUN) return erased;
    after = rows.at(-1)!.id;
  }
}
