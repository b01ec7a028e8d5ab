import type { Db, Queryable } from '../store/db.ts';

export interface SearchFilter {
  /** Words, as a person types them (websearch syntax: "quoted phrase", -not, or). */
  text: string;
  bot?: string;
  channel?: string;
  from?: Date;
  to?: Date;
  /** Sessions this agent held (a handoff assigned to them). */
  agentId?: string;
  /** Sessions of this person: their own, and every session of their linked channel identities. */
  userId?: string;
  /** Only sessions of these bots (the searcher's); undefined: every bot. */
  bots?: readonly string[];
  limit: number;
}

export interface SearchHit {
  sessionId: string;
  seq: number;
  role: string;
  bot: string;
  channel: string;
  userId: string | null;
  createdAt: string;
  /** The message with the matching words between « and ». */
  snippet: string;
}

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());

/** The sessions of a person: theirs, and those of every channel identity linked to them (any bot). */
export const SESSIONS_OF_PERSON = `(s.user_id = $USER OR EXISTS (SELECT 1 FROM user_identities i
  WHERE i.user_id = $USER AND i.channel = s.channel
    AND (s.native_key = i.native_id OR starts_with(s.native_key, i.native_id || '#'))))`;

/**
 * Matches fetched through the full-text index before the newest are picked. A word rarer than
 * this is found through the index (a few rows); a commoner one by walking the newest messages
 * back until enough match (they are common, so that is soon). The planner cannot tell the two
 * apart (an expression index has no per-word statistics), so the search tries the first and
 * falls back to the second.
 */
export const INDEX_MATCH_CAP = 2_000;

const FILTERS = `
  m.role IN ('user', 'assistant', 'agent', 'note')
  AND ($2::text IS NULL OR s.bot = $2) AND ($3::text IS NULL OR s.channel = $3)
  AND ($4::timestamptz IS NULL OR m.created_at >= $4) AND ($5::timestamptz IS NULL OR m.created_at < $5)
  AND ($6::uuid IS NULL OR EXISTS (SELECT 1 FROM handoffs h WHERE h.session_id = s.id AND h.agent_id = $6))
  AND ($7::uuid IS NULL OR ${SESSIONS_OF_PERSON.replaceAll('$USER', '$7')})
  AND ($9::text[] IS NULL OR s.bot = ANY($9::text[]))`;
const HIT_COLUMNS = `m.session_id, m.seq, m.role, s.bot, s.channel, s.user_id, m.created_at,
  ts_headline('simple', m.content, websearch_to_tsquery('simple', $1),
    'StartSel=«, StopSel=», MaxWords=30, MinWords=10, MaxFragments=2') AS snippet`;

/** Full-text search over what people, bots and agents said (PostgreSQL, the 'simple' configuration), newest first. */
export async function searchMessages(db: Db, f: SearchFilter): Promise<SearchHit[]> {
  const params = [
    f.text,
    f.bot ?? null,
    f.channel ?? null,
    f.from ?? null,
    f.to ?? null,
    f.agentId ?? null,
    f.userId ?? null,
    f.limit,
    f.bots ?? null,
  ];
  // Through the index only (bitmap scans): every match, up to the cap.
  const viaIndex = await db.transaction(async (tx) => {
    await tx.query('SET LOCAL enable_seqscan = off');
    await tx.query('SET LOCAL enable_indexscan = off');
    return tx.query<Record<string, unknown>>(
      `WITH hit AS MATERIALIZED (
         SELECT m.session_id, m.seq FROM messages m
         WHERE to_tsvector('simple', m.content) @@ websearch_to_tsquery('simple', $1) LIMIT ${INDEX_MATCH_CAP}
       )
       -- One row at least, so that the count arrives when the filters leave nothing.
       SELECT (SELECT count(*) FROM hit)::int AS matched, r.* FROM (SELECT 1) AS one LEFT JOIN LATERAL (
         SELECT ${HIT_COLUMNS}
         FROM hit JOIN messages m ON m.session_id = hit.session_id AND m.seq = hit.seq
           JOIN sessions s ON s.id = m.session_id
         WHERE ${FILTERS}
         ORDER BY m.created_at DESC, m.session_id, m.seq LIMIT $8
       ) r ON true`,
      params,
    );
  });
  let rows = viaIndex.rows.filter((r) => r.session_id !== null);
  if (Number(viaIndex.rows[0]?.matched ?? 0) >= INDEX_MATCH_CAP) {
    ({ rows } = await db.query<Record<string, unknown>>(
      `SELECT ${HIT_COLUMNS} FROM messages m JOIN sessions s ON s.id = m.session_id
       WHERE to_tsvector('simple', m.content) @@ websearch_to_tsquery('simple', $1) AND ${FILTERS}
       ORDER BY m.created_at DESC, m.session_id, m.seq LIMIT $8`,
      params,
    ));
  }
  return rows.map((r) => ({
    sessionId: r.session_id as string,
    seq: Number(r.seq),
    role: r.role as string,
    bot: r.bot as string,
    channel: r.channel as string,
    userId: (r.user_id as string | null) ?? null,
    createdAt: iso(r.created_at),
    snippet: r.snippet as string,
  }));
}

export interface PersonSession {
  sessionId: string;
  bot: string;
  channel: string;
  createdAt: string;
  endedAt: string | null;
  messageCount: number;
}

/** Every session of a person across channels, of these bots (undefined: every bot), oldest first. */
export async function sessionsOfPerson(
  q: Queryable,
  userId: string,
  bots?: readonly string[],
): Promise<PersonSession[]> {
  const { rows } = await q.query<Record<string, unknown>>(
    `SELECT s.id, s.bot, s.channel, s.created_at, s.ended_at, s.message_count FROM sessions s
     WHERE ${SESSIONS_OF_PERSON.replaceAll('$USER', '$1')} AND ($2::text[] IS NULL OR s.bot = ANY($2::text[]))
     ORDER BY s.created_at LIMIT 500`,
    [userId, bots ?? null],
  );
  return rows.map((r) => ({
    sessionId: r.id as string,
    bot: r.bot as string,
    channel: r.channel as string,
    createdAt: iso(r.created_at),
    endedAt: r.ended_at ? iso(r.ended_at) : null,
    messageCount: Number(r.message_count),
  }));
}

/** The person a session belongs to: its user, or the user its channel identity is linked to. */
export async function personOfSession(q: Queryable, sessionId: string): Promise<string | null> {
  const { rows } = await q.query<{ user_id: string | null }>(
    `SELECT COALESCE(s.user_id, (SELECT i.user_id FROM user_identities i WHERE i.channel = s.channel
       AND (s.native_key = i.native_id OR starts_with(s.native_key, i.native_id || '#')) LIMIT 1)) AS user_id
     FROM sessions s WHERE s.id = $1`,
    [sessionId],
  );
  return rows[0]?.user_id ?? null;
}
