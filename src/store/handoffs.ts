import type { AgentRecord } from './agents.ts';
import { msAgo } from './clock.ts';
import type { Db, Queryable } from './db.ts';
import { json } from './records.ts';

export type HandoffState = 'waiting' | 'assigned' | 'ended';
/** Why a handoff ended (`GET SESSION "transfer_end_reason"`). */
export const TRANSFER_END_REASONS = ['released', 'timeout', 'agent_offline'] as const;
export type TransferEndReason = (typeof TRANSFER_END_REASONS)[number];

export interface HandoffRecord {
  id: string;
  sessionId: string;
  bot: string;
  channel: string;
  queue: string | null;
  state: HandoffState;
  agentId: string | null;
  requestedAt: string;
  /** When the current holder took it (a transfer moves it). */
  assignedAt: string | null;
  /** When an agent first took it (a transfer leaves it): where the dashboard's wait ends. */
  firstAssignedAt: string | null;
  endedAt: string | null;
  endReason: string | null;
}

const iso = (v: unknown) =>
  v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : String(v);

export function toHandoffRecord(row: Record<string, unknown>): HandoffRecord {
  return {
    id: row.id as string,
    sessionId: row.session_id as string,
    bot: row.bot as string,
    channel: row.channel as string,
    queue: (row.queue as string | null) ?? null,
    state: row.state as HandoffState,
    agentId: (row.agent_id as string | null) ?? null,
    requestedAt: iso(row.requested_at)!,
    assignedAt: iso(row.assigned_at),
    firstAssignedAt: iso(row.first_assigned_at),
    endedAt: iso(row.ended_at),
    endReason: (row.end_reason as string | null) ?? null,
  };
}

/**
 * Whether a conversation's queue is one of an agent's: it has no queue, the agent has none (it
 * takes every queue), or the queue is among the agent's. The same rule as `IN_QUEUES` in SQL; the
 * agent API's list, its event stream, the claim and opening a conversation all apply it.
 */
export const inQueuesOf = (agent: Pick<AgentRecord, 'queues'>, queue: string | null): boolean =>
  queue === null || agent.queues.length === 0 || agent.queues.includes(queue);

/** `inQueuesOf` in SQL: `queue` a text expression, `queues` the agent's queues as jsonb. */
const IN_QUEUES = (queue: string, queues: string) =>
  `(${queue} IS NULL OR ${queues} = '[]'::jsonb OR ${queues} @> jsonb_build_array(${queue}))`;

/** In SQL: handoff `h` is held by the agent `agentId`. */
const HELD_BY = (agentId: string) => `(h.state = 'assigned' AND h.agent_id = ${agentId})`;

/**
 * The agent who held a conversation last may open it this long after its handoff ended: the
 * console shows the conversation it has just released (and the agent may add a closing note),
 * while what the person says to the bot later is not the agent's to read.
 */
export const OPEN_AFTER_END_MS = 60 * 60_000;

export interface NewHandoff {
  id: string;
  sessionId: string;
  bot: string;
  channel: string;
  queue: string | null;
  /** Assigned at once to this agent; null: waiting in the queue. */
  agentId: string | null;
  at: Date;
}

/**
 * Opens a handoff (a TRANSFER SESSION's turn commits it). Idempotent on its id; a session has at
 * most one open handoff, so a second transfer of a session already handed over changes nothing.
 */
export async function openHandoff(q: Queryable, h: NewHandoff): Promise<HandoffRecord | undefined> {
  const { rows } = await q.query(
    `INSERT INTO handoffs (id, session_id, bot, channel, queue, state, agent_id, requested_at, assigned_at,
       first_assigned_at)
     VALUES ($1, $2, $3, $4, $5, CASE WHEN $6::uuid IS NULL THEN 'waiting' ELSE 'assigned' END, $6, $7,
       CASE WHEN $6::uuid IS NULL THEN NULL ELSE $7::timestamptz END,
       CASE WHEN $6::uuid IS NULL THEN NULL ELSE $7::timestamptz END)
     ON CONFLICT DO NOTHING RETURNING *`,
    [h.id, h.sessionId, h.bot, h.channel, h.queue, h.agentId, h.at],
  );
  return rows[0] ? toHandoffRecord(rows[0]) : undefined;
}

export async function getHandoff(q: Queryable, id: string): Promise<HandoffRecord | undefined> {
  const { rows } = await q.query('SELECT * FROM handoffs WHERE id = $1', [id]);
  return rows[0] ? toHandoffRecord(rows[0]) : undefined;
}

export async function openHandoffOf(q: Queryable, sessionId: string): Promise<HandoffRecord | undefined> {
  const { rows } = await q.query(`SELECT * FROM handoffs WHERE session_id = $1 AND state <> 'ended'`, [
    sessionId,
  ]);
  return rows[0] ? toHandoffRecord(rows[0]) : undefined;
}

export type ClaimResult =
  | { outcome: 'claimed' | 'already'; handoff: HandoffRecord }
  | { outcome: 'held_by_other' | 'at_capacity' | 'not_waiting' | 'not_in_queues' };

/**
 * An agent takes a waiting conversation: a compare-and-set on the handoff's state, so of two
 * agents claiming at once exactly one wins. The agent's row is locked while its open
 * conversations are counted, so one agent claiming twice at once cannot pass its capacity. An
 * agent (not a supervisor or admin) takes only what waits in one of its queues, checked in the
 * same statement that takes it.
 */
export async function claimHandoff(db: Db, sessionId: string, agent: AgentRecord): Promise<ClaimResult> {
  const anyQueue = agent.role !== 'agent';
  return db.transaction(async (tx) => {
    const current = await openHandoffOf(tx, sessionId);
    if (!current) return { outcome: 'not_waiting' as const };
    if (current.state === 'waiting' && !anyQueue && !inQueuesOf(agent, current.queue))
      return { outcome: 'not_in_queues' as const };
    if (current.state === 'assigned')
      return current.agentId === agent.id
        ? { outcome: 'already' as const, handoff: current }
        : { outcome: 'held_by_other' as const };
    const { rows: lock } = await tx.query<{ capacity: number; open: string }>(
      `SELECT a.capacity, (SELECT count(*) FROM handoffs h WHERE h.agent_id = a.id AND h.state = 'assigned') AS open
       FROM agents a WHERE a.id = $1 FOR UPDATE`,
      [agent.id],
    );
    const mine = lock[0];
    if (!mine || Number(mine.open) >= Number(mine.capacity)) return { outcome: 'at_capacity' as const };
    const { rows } = await tx.query(
      `UPDATE handoffs h SET state = 'assigned', agent_id = $2, assigned_at = now(),
         first_assigned_at = COALESCE(h.first_assigned_at, now())
       WHERE h.id = $1 AND h.state = 'waiting' AND ($3::boolean OR ${IN_QUEUES('h.queue', '$4::jsonb')})
       RETURNING *`,
      [current.id, agent.id, anyQueue, json(agent.queues)],
    );
    if (!rows[0]) {
      // Taken (or ended) meanwhile; still waiting means the queue was not the agent's.
      const after = await getHandoff(tx, current.id);
      return {
        outcome: after?.state === 'waiting' ? ('not_in_queues' as const) : ('held_by_other' as const),
      };
    }
    return { outcome: 'claimed' as const, handoff: toHandoffRecord(rows[0]) };
  });
}

/**
 * May an agent open a conversation (read it, add a note)? `yes` for what its list shows (waiting
 * in one of its queues, or held by it) and for the one it held last, for `OPEN_AFTER_END_MS`
 * after that handoff ended and until the session is handed over again; `held_by_other` when
 * another agent holds one of its queues' conversations (it saw it waiting, and its events told it
 * who took it); `no` otherwise. Supervisors and admins open every conversation of their bots (the
 * bot is checked apart).
 */
export async function agentMayOpen(
  q: Queryable,
  sessionId: string,
  agent: AgentRecord,
): Promise<'yes' | 'held_by_other' | 'no'> {
  if (agent.role !== 'agent') return 'yes';
  const { rows } = await q.query<{ may: boolean; other: boolean }>(
    `SELECT (h.state = 'waiting' AND ${IN_QUEUES('h.queue', '$3::jsonb')}) OR ${HELD_BY('$2')}
         OR (h.state = 'ended' AND h.agent_id = $2 AND h.ended_at > ${msAgo('$4')}) AS may,
       h.state = 'assigned' AND ${IN_QUEUES('h.queue', '$3::jsonb')} AS other
     FROM handoffs h WHERE h.session_id = $1 ORDER BY h.requested_at DESC, h.id DESC LIMIT 1`,
    [sessionId, agent.id, json(agent.queues), OPEN_AFTER_END_MS],
  );
  const latest = rows[0];
  return latest?.may ? 'yes' : latest?.other ? 'held_by_other' : 'no';
}

/**
 * Hands an open conversation to another agent; `from` null: whoever holds it (a supervisor's move).
 * `assigned_at` becomes the new holder's (the absent-agent sweep counts from it); `first_assigned_at`
 * is left, so the dashboard's wait stays the first claim's and is not counted a second time. A
 * waiting one handed to an agent is taken here for the first time.
 */
export async function transferHandoff(
  q: Queryable,
  sessionId: string,
  from: string | null,
  to: string,
): Promise<HandoffRecord | undefined> {
  const { rows } = await q.query(
    `UPDATE handoffs SET state = 'assigned', agent_id = $3, assigned_at = now(),
       first_assigned_at = COALESCE(first_assigned_at, now())
     WHERE session_id = $1 AND state <> 'ended' AND ($2::uuid IS NULL OR agent_id = $2) RETURNING *`,
    [sessionId, from, to],
  );
  return rows[0] ? toHandoffRecord(rows[0]) : undefined;
}

/**
 * Ends an open handoff, once: `expect` narrows which (this handoff id, this holder, this state),
 * so a late timeout cannot end a conversation an agent took in the meantime.
 */
export async function endHandoff(
  q: Queryable,
  where: { sessionId?: string; id?: string; agentId?: string | null; state?: HandoffState },
  reason: TransferEndReason,
): Promise<HandoffRecord | undefined> {
  const { rows } = await q.query(
    `UPDATE handoffs SET state = 'ended', ended_at = now(), end_reason = $5
     WHERE state <> 'ended' AND ($1::uuid IS NULL OR session_id = $1) AND ($2::uuid IS NULL OR id = $2)
       AND ($3::uuid IS NULL OR agent_id = $3) AND ($4::text IS NULL OR state = $4)
     RETURNING *`,
    [where.sessionId ?? null, where.id ?? null, where.agentId ?? null, where.state ?? null, reason],
  );
  return rows[0] ? toHandoffRecord(rows[0]) : undefined;
}

/**
 * Assigned handoffs (for `absentMs` or longer) of agents who are offline, or whose console has not
 * been seen for `absentMs`, on the database's clock.
 */
export async function handoffsOfAbsentAgents(q: Queryable, absentMs: number): Promise<HandoffRecord[]> {
  const { rows } = await q.query(
    `SELECT h.* FROM handoffs h JOIN agents a ON a.id = h.agent_id
     WHERE h.state = 'assigned'
       AND (a.status = 'offline' OR a.last_seen_at IS NULL OR a.last_seen_at <= ${msAgo('$1')})
       AND h.assigned_at <= ${msAgo('$1')}`,
    [absentMs],
  );
  return rows.map(toHandoffRecord);
}

export async function openHandoffsOfAgent(q: Queryable, agentId: string): Promise<HandoffRecord[]> {
  const { rows } = await q.query(`SELECT * FROM handoffs WHERE agent_id = $1 AND state = 'assigned'`, [
    agentId,
  ]);
  return rows.map(toHandoffRecord);
}

/**
 * An available agent with free capacity who serves the bot (and the queue, when one is named and
 * the agent has queues), least loaded first; undefined when none.
 */
export async function availableAgent(
  q: Queryable,
  bot: string,
  queue: string | null,
): Promise<string | undefined> {
  const { rows } = await q.query<{ id: string }>(
    `SELECT a.id FROM agents a
     LEFT JOIN LATERAL (SELECT count(*) AS open FROM handoffs h WHERE h.agent_id = a.id AND h.state = 'assigned') l ON true
     WHERE a.status = 'available' AND (a.bots @> '["*"]'::jsonb OR a.bots @> jsonb_build_array($1::text))
       AND ${IN_QUEUES('$2::text', 'a.queues')}
       AND l.open < a.capacity
     ORDER BY l.open::float / GREATEST(a.capacity, 1), l.open, a.last_seen_at DESC NULLS LAST, a.id
     LIMIT 1`,
    [bot, queue],
  );
  return rows[0]?.id;
}

/** A colleague a conversation can be handed to, as the transfer picker shows it: no more than that. */
export interface TransferTarget {
  id: string;
  name: string;
  status: AgentRecord['status'];
  /** Conversations the agent holds now (the count a claim checks against its capacity). */
  open: number;
  capacity: number;
}

/** Every agent who serves `bot` (or every bot), with its load, by name. */
export async function agentsServingBot(q: Queryable, bot: string): Promise<TransferTarget[]> {
  const { rows } = await q.query(
    `SELECT a.id, a.name, a.status, a.capacity,
       (SELECT count(*) FROM handoffs h WHERE h.agent_id = a.id AND h.state = 'assigned') AS open
     FROM agents a
     WHERE a.bots @> '["*"]'::jsonb OR a.bots @> jsonb_build_array($1::text)
     ORDER BY a.name, a.id`,
    [bot],
  );
  return rows.map((r) => ({
    id: r.id as string,
    name: r.name as string,
    status: r.status as AgentRecord['status'],
    open: Number(r.open),
    capacity: Number(r.capacity),
  }));
}

export interface ConversationRow extends HandoffRecord {
  nativeKey: string;
  personName: string | null;
  lastMessage: { role: string; text: string; createdAt: string } | null;
  /** The page cursor: requested_at in microseconds. */
  requestedAtUs: string;
}

export type ConversationFilter = 'waiting' | 'mine' | 'all';

/** Open handoffs an agent may see, newest first; `before` is a cursor from a previous page. */
export async function listConversations(
  q: Queryable,
  agent: AgentRecord,
  filter: ConversationFilter,
  page: { limit: number; before?: { us: string; id: string } },
): Promise<ConversationRow[]> {
  const { rows } = await q.query(
    `SELECT h.*, s.native_key, COALESCE(s.meta->>'name', u.display_name) AS person_name,
       (extract(epoch FROM h.requested_at) * 1000000)::bigint::text AS requested_us,
       m.role AS lm_role, m.content AS lm_text, m.created_at AS lm_at
     FROM handoffs h JOIN sessions s ON s.id = h.session_id
     LEFT JOIN users u ON u.id = s.user_id
     LEFT JOIN LATERAL (SELECT role, content, created_at FROM messages
       WHERE session_id = h.session_id AND role <> 'note' ORDER BY seq DESC LIMIT 1) m ON true
     WHERE h.state <> 'ended'
       AND ($1::jsonb @> '["*"]'::jsonb OR $1::jsonb @> jsonb_build_array(h.bot))
       AND CASE $2::text
         WHEN 'mine' THEN ${HELD_BY('$3')}
         WHEN 'waiting' THEN h.state = 'waiting' AND ($4::boolean OR ${IN_QUEUES('h.queue', '$5::jsonb')})
         ELSE true END
       AND ($6::bigint IS NULL OR (extract(epoch FROM h.requested_at) * 1000000)::bigint < $6
         OR ((extract(epoch FROM h.requested_at) * 1000000)::bigint = $6 AND h.id < $7))
     ORDER BY h.requested_at DESC, h.id DESC LIMIT $8`,
    [
      json(agent.bots),
      filter,
      agent.id,
      agent.role !== 'agent',
      json(agent.queues),
      page.before?.us ?? null,
      page.before?.id ?? null,
      page.limit,
    ],
  );
  return rows.map((r) => ({
    ...toHandoffRecord(r),
    nativeKey: r.native_key as string,
    personName: (r.person_name as string | null) ?? null,
    requestedAtUs: r.requested_us as string,
    lastMessage: r.lm_role
      ? { role: r.lm_role as string, text: r.lm_text as string, createdAt: iso(r.lm_at)! }
      : null,
  }));
}

export async function recordTranscriptRead(
  q: Queryable,
  read: { agentId: string; sessionId: string; ip: string | null; userAgent: string | null; via?: string },
): Promise<void> {
  await q.query(
    `INSERT INTO transcript_reads (actor, agent_id, action, session_id, via, ip, user_agent)
     VALUES ('agent', $1, 'transcript.read', $2, $5, $3, $4)`,
    [read.agentId, read.sessionId, read.ip, read.userAgent, read.via ?? 'agent-api'],
  );
}

export interface AgentEventRecord {
  id: number;
  type: string;
  sessionId: string;
  bot: string;
  agentId: string | null;
  queue: string | null;
  data: Record<string, unknown>;
  createdAt: string;
}

const toAgentEvent = (r: Record<string, unknown>): AgentEventRecord => ({
  id: Number(r.id),
  type: r.type as string,
  sessionId: r.session_id as string,
  bot: r.bot as string,
  agentId: (r.agent_id as string | null) ?? null,
  queue: (r.queue as string | null) ?? null,
  data: (r.data as Record<string, unknown>) ?? {},
  createdAt: iso(r.created_at)!,
});

export async function insertAgentEvent(
  q: Queryable,
  e: Omit<AgentEventRecord, 'id' | 'createdAt'>,
): Promise<AgentEventRecord> {
  const { rows } = await q.query(
    `INSERT INTO agent_events (type, session_id, bot, agent_id, queue, data) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
     RETURNING *`,
    [e.type, e.sessionId, e.bot, e.agentId, e.queue, json(e.data)],
  );
  return toAgentEvent(rows[0]!);
}

/** The id of the newest kept agent event (0: none yet): where a stream that starts afresh stands. */
export async function latestAgentEventId(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ id: number | null }>('SELECT max(id) AS id FROM agent_events');
  return rows[0]?.id ?? 0;
}

export async function agentEventsAfter(
  q: Queryable,
  afterId: number,
  limit: number,
): Promise<AgentEventRecord[]> {
  const { rows } = await q.query('SELECT * FROM agent_events WHERE id > $1 ORDER BY id LIMIT $2', [
    afterId,
    limit,
  ]);
  return rows.map(toAgentEvent);
}
