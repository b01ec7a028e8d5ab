import { randomUUID } from 'node:crypto';
import type { Channel } from '../envelope.ts';
import { msAgo } from './clock.ts';
import { type Db, prepared, type Queryable } from './db.ts';
import {
  type AuthLevel,
  json,
  type SessionRecord,
  type SessionSnapshot,
  toSessionRecord,
  toSessionState,
} from './records.ts';

const SNAPSHOT_COLUMNS = `s.*, st.variables, st.context, st.kbs, st.tools, st.suggestions, st.dialog, st.summary, st.handoff, st.version`;

function toSnapshot(row: Record<string, unknown>): SessionSnapshot {
  return { session: toSessionRecord(row), state: toSessionState(row) };
}

const LOAD_SNAPSHOT = prepared(
  'load_snapshot',
  `SELECT ${SNAPSHOT_COLUMNS} FROM sessions s JOIN session_state st ON st.session_id = s.id WHERE s.id = $1`,
);

const FIND_OPEN_SNAPSHOT = prepared(
  'find_open_snapshot',
  `SELECT ${SNAPSHOT_COLUMNS} FROM sessions s JOIN session_state st ON st.session_id = s.id
   WHERE s.bot = $1 AND s.channel = $2 AND s.native_key = $3 AND s.ended_at IS NULL`,
);

export async function loadSnapshot(q: Queryable, sessionId: string): Promise<SessionSnapshot | undefined> {
  const { rows } = await q.query(LOAD_SNAPSHOT, [sessionId]);
  return rows[0] ? toSnapshot(rows[0]) : undefined;
}

export async function findOpenSnapshotByKey(
  q: Queryable,
  key: { bot: string; channel: Channel; nativeKey: string },
): Promise<SessionSnapshot | undefined> {
  const { rows } = await q.query(FIND_OPEN_SNAPSHOT, [key.bot, key.channel, key.nativeKey]);
  return rows[0] ? toSnapshot(rows[0]) : undefined;
}

/**
 * The ended session whose rating ask (`rating_asks`) is still open at `at` on this key, latest
 * first: a rating sent now answers it.
 */
export async function findRatingAsk(
  q: Queryable,
  key: { bot: string; channel: Channel; nativeKey: string },
  at: Date,
): Promise<SessionSnapshot | undefined> {
  const { rows } = await q.query(
    `SELECT ${SNAPSHOT_COLUMNS} FROM rating_asks r
       JOIN sessions s ON s.id = r.session_id JOIN session_state st ON st.session_id = s.id
     WHERE r.bot = $1 AND r.channel = $2 AND r.native_key = $3 AND r.answered_at IS NULL AND r.open_until > $4
     ORDER BY r.open_until DESC LIMIT 1`,
    [key.bot, key.channel, key.nativeKey, at],
  );
  return rows[0] ? toSnapshot(rows[0]) : undefined;
}

/** Whether the session's rating ask (`rating_asks`) is still unanswered and open at `at`. */
export async function hasOpenRatingAsk(q: Queryable, sessionId: string, at: Date): Promise<boolean> {
  const { rows } = await q.query(
    'SELECT 1 FROM rating_asks WHERE session_id = $1 AND answered_at IS NULL AND open_until > $2',
    [sessionId, at],
  );
  return rows.length > 0;
}

export async function findSessionByTokenHash(
  q: Queryable,
  tokenHash: Buffer,
): Promise<(SessionRecord & { tokenHash: Buffer; endReason: string | null }) | undefined> {
  const { rows } = await q.query('SELECT * FROM sessions WHERE token_hash = $1', [tokenHash]);
  const row = rows[0];
  if (!row) return undefined;
  return {
    ...toSessionRecord(row),
    tokenHash: Buffer.from(row.token_hash as Uint8Array),
    endReason: (row.end_reason as string | null) ?? null,
  };
}

export interface NewSession {
  id?: string;
  bot: string;
  channel: Channel;
  /** Defaults to the session id: a session made through the API is its own key. */
  nativeKey?: string;
  userId?: string | null;
  tokenHash?: Buffer | null;
  authLevel?: AuthLevel;
  replyTo?: unknown;
  meta?: Record<string, unknown>;
  expiresAt?: Date | null;
}

/**
 * Inserts a session and its empty state. When an open session with the same key already exists
 * (another process won the race), inserts nothing and returns that one instead.
 */
export async function createSession(
  db: Db,
  input: NewSession,
): Promise<{ snapshot: SessionSnapshot; created: boolean }> {
  const id = input.id ?? randomUUID();
  const nativeKey = input.nativeKey ?? id;
  return db.transaction(async (tx) => {
    const inserted = await tx.query(
      `INSERT INTO sessions (id, bot, channel, native_key, user_id, token_hash, auth_level, reply_to, meta, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10)
       ON CONFLICT (bot, channel, native_key) WHERE ended_at IS NULL DO NOTHING
       RETURNING id`,
      [
        id,
        input.bot,
        input.channel,
        nativeKey,
        input.userId ?? null,
        input.tokenHash ?? null,
        input.authLevel ?? 'anonymous',
        json(input.replyTo ?? null),
        json(input.meta ?? {}),
        input.expiresAt ?? null,
      ],
    );
    if (inserted.rowCount === 0) {
      const existing = await findOpenSnapshotByKey(tx, { bot: input.bot, channel: input.channel, nativeKey });
      if (!existing)
        throw new Error(`session key ${input.bot}/${input.channel}/${nativeKey} conflicted but is not open`);
      return { snapshot: existing, created: false };
    }
    await tx.query('INSERT INTO session_state (session_id) VALUES ($1)', [id]);
    const snapshot = await loadSnapshot(tx, id);
    if (!snapshot) throw new Error(`session ${id} vanished inside its own transaction`);
    return { snapshot, created: true };
  });
}

export interface ContactSession {
  bot: string;
  channel: Channel;
  nativeKey: string;
  /** The person's identity on the channel: found, or made with a new user, in the same step. */
  identity: { nativeId: string; name?: string | undefined; email?: string | undefined } | null;
  replyTo?: unknown;
  meta: Record<string, unknown>;
}

/** A timestamptz as JavaScript's `toISOString()` writes it. */
const ISO_UTC = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;

/**
 * The latest activity of a bot's sessions with key ($1 bot, $2 channel, $3 native key) or with
 * the user `userId` (an SQL expression): two lookups, one per index, where an OR matches none.
 * The user's are read through `sessions_user` alone, the bot picked among them: with `bot = $1`
 * in the condition the planner ANDed that index with a bot-leading one, whose scan reads every
 * session of the bot (4,000 entries, 0.23 ms, for each person's first message on a table of
 * 4,000 sessions; growing with the table).
 */
const latestActivity = (userId: string) => `greatest(
     (SELECT max(last_activity_at) FROM sessions WHERE bot = $1::text AND channel = $2::text AND native_key = $3::text),
     (SELECT max(last_activity_at) FILTER (WHERE bot = $1::text) FROM sessions WHERE user_id = ${userId}))`;

const CREATE_CONTACT_SESSION = prepared(
  'create_contact_session',
  `WITH known AS (
     SELECT user_id FROM user_identities WHERE $4::text IS NOT NULL AND channel = $2 AND native_id = $4
   ), new_user AS (
     INSERT INTO users (id, display_name, email)
     SELECT $5::uuid, $6::text, $7::text WHERE $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM known)
     RETURNING id
   ), new_identity AS (
     INSERT INTO user_identities (channel, native_id, user_id, display_name)
     SELECT $2::text, $4::text, id, $6::text FROM new_user
     RETURNING user_id
   ), person AS (
     SELECT (SELECT user_id FROM known UNION ALL SELECT user_id FROM new_identity LIMIT 1) AS user_id
   ), earlier AS (
     SELECT ${latestActivity('(SELECT user_id FROM person)')} AS at
   ), s AS (
     INSERT INTO sessions (id, bot, channel, native_key, user_id, auth_level, reply_to, meta)
     SELECT $8::uuid, $1::text, $2::text, $3::text, person.user_id, 'anonymous', $9::jsonb,
            $10::jsonb || CASE WHEN earlier.at IS NULL THEN '{}'::jsonb
              ELSE jsonb_build_object('lastInteractionAt', to_char(earlier.at AT TIME ZONE 'UTC', ${ISO_UTC})) END
     FROM person, earlier
     RETURNING *
   ), st AS (
     INSERT INTO session_state (session_id) SELECT id FROM s RETURNING *
   ), started AS (
     INSERT INTO session_events (session_id, bot, channel, type) SELECT id, bot, channel, 'session.start' FROM s
   )
   SELECT ${SNAPSHOT_COLUMNS} FROM s JOIN st ON st.session_id = s.id`,
);

/**
 * A person's first message on a channel, in one statement (one round trip, one commit): finds
 * or makes their user, notes when they last talked with the bot (`meta.lastInteractionAt`),
 * inserts the session, its state and its `session.start` event. Two processes racing for the
 * same identity or session key make this fail with a unique violation and change nothing; the
 * caller then takes the step by step way, which sorts races out.
 */
export async function createContactSession(q: Queryable, input: ContactSession): Promise<SessionSnapshot> {
  const { identity } = input;
  const { rows } = await q.query(CREATE_CONTACT_SESSION, [
    input.bot,
    input.channel,
    input.nativeKey,
    identity?.nativeId ?? null,
    randomUUID(),
    identity?.name ?? null,
    identity?.email ?? null,
    randomUUID(),
    json(input.replyTo ?? null),
    json(input.meta),
  ]);
  if (!rows[0]) throw new Error(`session ${input.bot}/${input.channel}/${input.nativeKey} was not created`);
  return toSnapshot(rows[0]);
}

/**
 * When this person last talked with the bot before now: the latest activity of the bot's
 * sessions that are theirs (same user, or same session key). Null the first time.
 */
export async function lastInteraction(
  q: Queryable,
  who: { bot: string; channel: Channel; nativeKey: string; userId: string | null },
): Promise<string | null> {
  const { rows } = await q.query<{ at: Date | string | null }>(`SELECT ${latestActivity('$4::uuid')} AS at`, [
    who.bot,
    who.channel,
    who.nativeKey,
    who.userId,
  ]);
  const at = rows[0]?.at;
  return at ? new Date(at).toISOString() : null;
}

/**
 * Moves a token session's token to a new session of the same person (user, auth level, channel,
 * bot), in one transaction. Returns the new session, or undefined when the old one no longer
 * holds a token (another process renewed or ended it first).
 */
export async function renewTokenSession(
  db: Db,
  old: SessionRecord,
  options: { expiresAt: Date | null; meta: Record<string, unknown> },
): Promise<SessionRecord | undefined> {
  return db.transaction(async (tx) => {
    const taken = await tx.query<{ token_hash: Uint8Array }>(
      `UPDATE sessions s SET token_hash = NULL FROM (SELECT id, token_hash FROM sessions WHERE id = $1 FOR UPDATE) o
       WHERE s.id = o.id AND (s.ended_at IS NULL OR s.end_reason = 'idle') AND o.token_hash IS NOT NULL
       RETURNING o.token_hash`,
      [old.id],
    );
    const tokenHash = taken.rows[0]?.token_hash;
    if (!tokenHash) return undefined;
    const id = randomUUID();
    await tx.query(
      `INSERT INTO sessions (id, bot, channel, native_key, user_id, token_hash, auth_level, meta, expires_at)
       VALUES ($1::uuid, $2, $3, $1::text, $4, $5, $6, $7::jsonb, $8)`,
      [
        id,
        old.bot,
        old.channel,
        old.userId,
        Buffer.from(tokenHash),
        old.authLevel,
        json(options.meta),
        options.expiresAt,
      ],
    );
    await tx.query('INSERT INTO session_state (session_id) VALUES ($1)', [id]);
    const snapshot = await loadSnapshot(tx, id);
    if (!snapshot) throw new Error(`session ${id} vanished inside its own transaction`);
    return snapshot.session;
  });
}

/** Ends an open session; returns false when it was already ended or does not exist. */
export async function endSession(q: Queryable, sessionId: string, reason: string): Promise<boolean> {
  const { rowCount } = await q.query(
    'UPDATE sessions SET ended_at = now(), end_reason = $2 WHERE id = $1 AND ended_at IS NULL',
    [sessionId, reason],
  );
  return rowCount > 0;
}

/** Open sessions active within the last `windowMs` (the database's clock): the gauge of active sessions. */
export async function countActiveSessions(
  q: Queryable,
  windowMs: number,
): Promise<{ bot: string; channel: string; count: number }[]> {
  const { rows } = await q.query<{ bot: string; channel: string; count: number }>(
    `SELECT bot, channel, count(*)::int AS count FROM sessions
     WHERE ended_at IS NULL AND last_activity_at >= ${msAgo('$1')} GROUP BY bot, channel`,
    [windowMs],
  );
  return rows;
}

/** Makes a session's token useless at once (sign-out, session end, token rotation). */
export async function revokeToken(q: Queryable, sessionId: string): Promise<void> {
  await q.query('UPDATE sessions SET token_hash = NULL WHERE id = $1', [sessionId]);
}

/** Whether `revokeToken` ran for the session (or it is gone); a sign-in replaces the hash instead. */
export async function isTokenRevoked(q: Queryable, sessionId: string): Promise<boolean> {
  const { rows } = await q.query<{ revoked: boolean }>(
    'SELECT token_hash IS NULL AS revoked FROM sessions WHERE id = $1',
    [sessionId],
  );
  return rows[0]?.revoked ?? true;
}

/**
 * Moves the state version of the open, unexpired session a token hash opens, and so locks its
 * state row until the transaction ends; returns the session's id, or undefined. Whoever changes
 * a session outside the engine takes this lock first, as a turn does, so that the two never
 * deadlock; a turn computed from the session as it was then conflicts and is recomputed.
 */
export async function lockTokenSessionState(tx: Queryable, tokenHash: Buffer): Promise<string | undefined> {
  const { rows } = await tx.query<{ session_id: string }>(
    `UPDATE session_state st SET version = st.version + 1, updated_at = now()
     FROM sessions s
     WHERE st.session_id = s.id AND s.token_hash = $1 AND s.ended_at IS NULL
       AND (s.expires_at IS NULL OR s.expires_at > now())
     RETURNING st.session_id`,
    [tokenHash],
  );
  return rows[0]?.session_id;
}

/**
 * Signs a token session in: gives it its user and auth level, ends its expiry (signed-in
 * sessions never expire on their own) and replaces its token. Compare-and-set on the old token
 * hash: false when another request replaced it first.
 */
export async function upgradeTokenSession(
  tx: Queryable,
  change: {
    sessionId: string;
    oldTokenHash: Buffer;
    newTokenHash: Buffer;
    userId: string;
    authLevel: Exclude<AuthLevel, 'anonymous'>;
  },
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE sessions SET user_id = $3, auth_level = $4, expires_at = NULL, token_hash = $5
     WHERE id = $1 AND token_hash = $2 AND ended_at IS NULL`,
    [change.sessionId, change.oldTokenHash, change.userId, change.authLevel, change.newTokenHash],
  );
  return rowCount > 0;
}

/**
 * Gives the open sessions of a channel identity (its key is the native id, or the native id and
 * `#thread`) to a user, moving their state versions so that turns in flight recompute.
 * Signed-in sessions keep the user who signed in. Returns their ids.
 */
export async function assignIdentitySessions(
  tx: Queryable,
  identity: { channel: Channel; nativeId: string; userId: string },
): Promise<string[]> {
  // State rows first, in id order, then the sessions: the order a turn takes its locks in.
  // starts_with, not LIKE: an email address may hold '_', which LIKE reads as a wildcard.
  const { rows } = await tx.query<{ session_id: string }>(
    `UPDATE session_state SET version = version + 1, updated_at = now()
     WHERE session_id IN (
       SELECT s.id FROM sessions s JOIN session_state st ON st.session_id = s.id
       WHERE s.channel = $1 AND (s.native_key = $2 OR starts_with(s.native_key, $2 || '#'))
         AND s.ended_at IS NULL AND s.auth_level = 'anonymous' AND s.user_id IS DISTINCT FROM $3
       ORDER BY s.id FOR UPDATE OF st)
     RETURNING session_id`,
    [identity.channel, identity.nativeId, identity.userId],
  );
  const ids = rows.map((r) => r.session_id);
  if (ids.length === 0) return [];
  // The ids travel as JSON: both drivers pass text alike, while array parameters differ.
  await tx.query(
    'UPDATE sessions SET user_id = $2 WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)',
    [json(ids), identity.userId],
  );
  return ids;
}
