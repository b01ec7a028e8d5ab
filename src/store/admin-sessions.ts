import type { Queryable } from './db.ts';
import { type SessionRecord, toSessionRecord } from './records.ts';

/** What an operator sees of a session: open and active, open and idle, or ended. */
export const SESSION_STATES = ['active', 'idle', 'ended'] as const;
export type SessionLifeState = (typeof SESSION_STATES)[number];

/** How long a session may be quiet before it counts as idle; per bot and channel. */
export type IdleTimeout = (bot: string, channel: string) => number;

/** A position in the newest-first listing: the last row's creation time (microseconds) and id. */
export interface SessionCursor {
  createdAtUs: string;
  id: string;
}

export interface SessionListQuery {
  bot?: string | undefined;
  channel?: string | undefined;
  userId?: string | undefined;
  state?: SessionLifeState | undefined;
  before?: SessionCursor | undefined;
  limit: number;
}

export interface ListedSession extends SessionRecord {
  endReason: string | null;
  state: SessionLifeState;
}

export function lifeState(
  session: Pick<SessionRecord, 'bot' | 'channel' | 'endedAt' | 'lastActivityAt'>,
  idleTimeoutMs: IdleTimeout,
  now: number,
): SessionLifeState {
  if (session.endedAt) return 'ended';
  const quietMs = now - Date.parse(session.lastActivityAt);
  return quietMs > idleTimeoutMs(session.bot, session.channel) ? 'idle' : 'active';
}

/**
 * The idle cut-off of every (bot, channel) that has open sessions, as of `now`. The timeout is a
 * function of bot and channel that only the application knows, so the pairs are read first
 * and the cut-offs travel into the listing query as a small table.
 */
async function idleCutoffs(q: Queryable, idleTimeoutMs: IdleTimeout, now: number) {
  const { rows } = await q.query<{ bot: string; channel: string }>(
    'SELECT DISTINCT bot, channel FROM sessions WHERE ended_at IS NULL',
  );
  return rows.map((r) => ({
    bot: r.bot,
    channel: r.channel,
    cutoff: new Date(now - idleTimeoutMs(r.bot, r.channel)).toISOString(),
  }));
}

/**
 * Sessions newest first, filtered, one page at a time (keyset on created_at, id: pages stay
 * stable while new sessions arrive). Each row carries its state and the cursor of the next page.
 */
export async function listSessions(
  q: Queryable,
  query: SessionListQuery,
  idleTimeoutMs: IdleTimeout,
  now = Date.now(),
): Promise<{ sessions: ListedSession[]; next: SessionCursor | null }> {
  const where: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  if (query.bot) where.push(`s.bot = ${param(query.bot)}`);
  if (query.channel) where.push(`s.channel = ${param(query.channel)}`);
  if (query.userId) where.push(`s.user_id = ${param(query.userId)}::uuid`);
  if (query.before) {
    where.push(
      `(s.created_at, s.id) < (timestamptz 'epoch' + ${param(query.before.createdAtUs)}::bigint * interval '1 microsecond', ${param(query.before.id)}::uuid)`,
    );
  }
  let cutoffs = '';
  if (query.state === 'ended') where.push('s.ended_at IS NOT NULL');
  if (query.state === 'idle' || query.state === 'active') {
    const table = await idleCutoffs(q, idleTimeoutMs, now);
    // A pair that appeared after the cut-offs were read has a session just created: active.
    cutoffs = `LEFT JOIN jsonb_to_recordset(${param(JSON.stringify(table))}::jsonb) AS t(bot text, channel text, cutoff timestamptz)
      ON t.bot = s.bot AND t.channel = s.channel`;
    const cutoff = `COALESCE(t.cutoff, '-infinity'::timestamptz)`;
    where.push('s.ended_at IS NULL');
    where.push(query.state === 'idle' ? `s.last_activity_at < ${cutoff}` : `s.last_activity_at >= ${cutoff}`);
  }
  const { rows } = await q.query(
    `SELECT s.*, (extract(epoch FROM s.created_at) * 1000000)::bigint::text AS created_at_us
     FROM sessions s ${cutoffs}
     ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY s.created_at DESC, s.id DESC
     LIMIT ${param(query.limit + 1)}`,
    params,
  );
  const page = rows.slice(0, query.limit);
  const sessions = page.map((row) => {
    const record = toSessionRecord(row);
    return {
      ...record,
      endReason: (row.end_reason as string | null) ?? null,
      state: lifeState(record, idleTimeoutMs, now),
    };
  });
  const last = page.at(-1);
  const next =
    rows.length > query.limit && last
      ? { createdAtUs: last.created_at_us as string, id: last.id as string }
      : null;
  return { sessions, next };
}

/** One session with its end reason, or undefined. */
export async function findSession(
  q: Queryable,
  sessionId: string,
): Promise<(SessionRecord & { endReason: string | null }) | undefined> {
  const { rows } = await q.query('SELECT * FROM sessions WHERE id = $1', [sessionId]);
  const row = rows[0];
  return row ? { ...toSessionRecord(row), endReason: (row.end_reason as string | null) ?? null } : undefined;
}
