import type { Queryable } from './db.ts';

/** What was done to a transcript. */
export type AuditAction =
  | 'transcript.read'
  | 'transcript.export'
  | 'transcript.search'
  | 'session.inspect'
  /** `GET /api/admin/sessions/{id}/debug`: the session's DEBUG SHOW snapshots. */
  | 'session.debug';

export interface AuditEntry {
  /** An agent (agentId set) or the operator's ADMIN_TOKEN. */
  actor: 'agent' | 'operator';
  agentId: string | null;
  action: AuditAction;
  sessionId: string | null;
  /** Where it came from: the agent API, the console, the admin API. */
  via: string;
  ip: string | null;
  userAgent: string | null;
  /** Never message content: an export's format, a search's filters (not its words). */
  detail?: Record<string, unknown>;
}

/** Written before the transcript leaves: a read that is not in the audit log did not happen. */
export async function recordAudit(q: Queryable, entry: AuditEntry): Promise<void> {
  await q.query(
    `INSERT INTO transcript_reads (actor, agent_id, action, session_id, via, ip, user_agent, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)`,
    [
      entry.actor,
      entry.agentId,
      entry.action,
      entry.sessionId,
      entry.via,
      entry.ip,
      entry.userAgent,
      JSON.stringify(entry.detail ?? {}),
    ],
  );
}

export interface AuditFilter {
  agentId?: string;
  /** 'operator' for the ADMIN_TOKEN's rows. */
  actor?: 'agent' | 'operator';
  sessionId?: string;
  from?: Date;
  to?: Date;
  /** Rows with an id below this one (paging, newest first). */
  before?: number;
  /**
   * A viewer of some bots only: rows about sessions of these bots, and the viewer's own rows
   * (`self`, its searches and exports included). Undefined: every row.
   */
  within?: { bots: readonly string[]; self: string };
  limit: number;
}

export interface AuditRecord {
  id: number;
  at: string;
  actor: 'agent' | 'operator';
  agentId: string | null;
  agentName: string | null;
  action: string;
  sessionId: string | null;
  via: string | null;
  ip: string | null;
  userAgent: string | null;
  detail: Record<string, unknown>;
  erased: boolean;
}

export async function listAudit(q: Queryable, f: AuditFilter): Promise<AuditRecord[]> {
  const { rows } = await q.query<Record<string, unknown>>(
    `SELECT r.id, r.at, r.actor, r.agent_id, a.name AS agent_name, r.action, r.session_id, r.via, r.ip,
       r.user_agent, r.detail, r.erased
     FROM transcript_reads r LEFT JOIN agents a ON a.id = r.agent_id
     WHERE ($1::uuid IS NULL OR r.agent_id = $1) AND ($2::text IS NULL OR r.actor = $2)
       AND ($3::uuid IS NULL OR r.session_id = $3)
       AND ($4::timestamptz IS NULL OR r.at >= $4) AND ($5::timestamptz IS NULL OR r.at < $5)
       AND ($6::bigint IS NULL OR r.id < $6)
       AND ($8::text[] IS NULL OR r.agent_id = $9::uuid
         OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.session_id AND s.bot = ANY($8::text[])))
     ORDER BY r.id DESC LIMIT $7`,
    [
      f.agentId ?? null,
      f.actor ?? null,
      f.sessionId ?? null,
      f.from ?? null,
      f.to ?? null,
      f.before ?? null,
      f.limit,
      f.within ? [...f.within.bots] : null,
      f.within?.self ?? null,
    ],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    at: new Date(r.at as string).toISOString(),
    actor: r.actor as 'agent' | 'operator',
    agentId: (r.agent_id as string | null) ?? null,
    agentName: (r.agent_name as string | null) ?? null,
    action: r.action as string,
    sessionId: (r.session_id as string | null) ?? null,
    via: (r.via as string | null) ?? null,
    ip: (r.ip as string | null) ?? null,
    userAgent: (r.user_agent as string | null) ?? null,
    detail: (r.detail as Record<string, unknown>) ?? {},
    erased: Boolean(r.erased),
  }));
}

/** Erasing a person: their sessions' audit rows stay (who read, when, from where) without the session id. */
export async function forgetAuditedSessions(q: Queryable, sessionIds: string[]): Promise<void> {
  if (sessionIds.length === 0) return;
  await q.query(
    'UPDATE transcript_reads SET session_id = NULL, erased = true WHERE session_id = ANY($1::uuid[])',
    [sessionIds],
  );
}
