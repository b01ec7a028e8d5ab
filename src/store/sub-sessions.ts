import type { Channel } from '../envelope.ts';
import type { Queryable } from './db.ts';
import { json, type SessionStateData, toSessionState } from './records.ts';

/** What a turn writes about one sub-session of its session: made, changed (state) and/or ended (merged). */
export interface ChildWrite {
  id: string;
  /** Made by this turn: inserted with the parent's bot, channel, person and auth level. */
  created: boolean;
  state: SessionStateData;
  /** The state version read (ignored for a created one): the write fails as a conflict if it moved. */
  expectedVersion: number;
  /** Merged into the parent by this turn: the child ends. */
  ended: boolean;
}

/** The reason a merged sub-session ends with. */
export const MERGED_END_REASON = 'merged';

/** The reason a sub-session ends with when its parent ends first. */
export const PARENT_ENDED_REASON = 'parent ended';

/** A session that ends takes its open sub-sessions with it (inside the ending turn's transaction). */
export async function endChildrenOf(tx: Queryable, parentId: string, at: Date): Promise<void> {
  await tx.query(
    'UPDATE sessions SET ended_at = $2, end_reason = $3 WHERE parent_id = $1 AND ended_at IS NULL',
    [parentId, at, PARENT_ENDED_REASON],
  );
}

/** A sub-session's key: its parent's, marked, so that it never takes the parent's (or anyone's) lane. */
export const childNativeKey = (parentNativeKey: string, childId: string) =>
  `${parentNativeKey}#sub:${childId}`;

/**
 * Writes a turn's sub-sessions inside its transaction (src/store/turns.ts). False when a child's
 * state moved since the turn read it: the turn is then a conflict, computed again.
 */
export async function writeChildren(
  tx: Queryable,
  parentId: string,
  children: readonly ChildWrite[],
  at: Date,
): Promise<boolean> {
  for (const child of children) {
    const s = child.state;
    const values = [
      json(s.variables),
      json(s.context),
      json(s.kbs),
      json(s.tools),
      json(s.suggestions),
      json(s.dialog),
    ];
    if (child.created) {
      await tx.query(
        `INSERT INTO sessions (id, bot, channel, native_key, user_id, auth_level, parent_id, meta, expires_at,
           created_at, last_activity_at)
         SELECT $1::uuid, p.bot, p.channel, p.native_key || '#sub:' || $1::text, p.user_id, p.auth_level, p.id,
           jsonb_build_object('parentId', p.id), p.expires_at, $3, $3
         FROM sessions p WHERE p.id = $2`,
        [child.id, parentId, at],
      );
      await tx.query(
        `INSERT INTO session_state (session_id, variables, context, kbs, tools, suggestions, dialog)
         VALUES ($1, $2::jsonb, $3::jsonb, $4::jsonb, $5::jsonb, $6::jsonb, $7::jsonb)`,
        [child.id, ...values],
      );
    } else {
      const { rowCount } = await tx.query(
        `UPDATE session_state SET variables = $2::jsonb, context = $3::jsonb, kbs = $4::jsonb, tools = $5::jsonb,
           suggestions = $6::jsonb, dialog = $7::jsonb, version = version + 1, updated_at = now()
         WHERE session_id = $1 AND version = $8`,
        [child.id, ...values, child.expectedVersion],
      );
      if (rowCount === 0) return false;
    }
    if (child.ended) {
      await tx.query(
        `UPDATE sessions SET ended_at = COALESCE(ended_at, $2), end_reason = COALESCE(end_reason, $3),
           last_activity_at = $2 WHERE id = $1`,
        [child.id, at, MERGED_END_REASON],
      );
    }
  }
  return true;
}

/** A sub-session of `parentId` as a turn reads it: open ones only. */
export async function loadChild(
  q: Queryable,
  parentId: string,
  childId: string,
): Promise<{ state: SessionStateData; version: number } | undefined> {
  const { rows } = await q.query(
    `SELECT st.* FROM sessions s JOIN session_state st ON st.session_id = s.id
     WHERE s.id = $1::uuid AND s.parent_id = $2 AND s.ended_at IS NULL`,
    [childId, parentId],
  );
  if (!rows[0]) return undefined;
  const { version, ...state } = toSessionState(rows[0]);
  return { state, version };
}

/** What SEND TO SESSION needs to know of a session, by id (undefined for an unknown one). */
export async function sessionForSend(
  q: Queryable,
  id: string,
): Promise<
  | {
      id: string;
      bot: string;
      channel: Channel;
      nativeKey: string;
      ended: boolean;
      isChild: boolean;
    }
  | undefined
> {
  const { rows } = await q.query<{
    id: string;
    bot: string;
    channel: string;
    native_key: string;
    ended: boolean;
    is_child: boolean;
  }>(
    `SELECT id, bot, channel, native_key,
       (ended_at IS NOT NULL OR (expires_at IS NOT NULL AND expires_at <= now())) AS ended,
       parent_id IS NOT NULL AS is_child
     FROM sessions WHERE id = $1::uuid`,
    [id],
  );
  const r = rows[0];
  return r
    ? {
        id: r.id,
        bot: r.bot,
        channel: r.channel as Channel,
        nativeKey: r.native_key,
        ended: r.ended,
        isChild: r.is_child,
      }
    : undefined;
}
