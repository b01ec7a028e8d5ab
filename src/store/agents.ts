import { randomUUID } from 'node:crypto';
import type { Queryable } from './db.ts';
import { json } from './records.ts';

export const AGENT_ROLES = ['agent', 'supervisor', 'admin'] as const;
export type AgentRole = (typeof AGENT_ROLES)[number];
export const AGENT_STATUSES = ['available', 'away', 'offline'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];
/** In an agent's bots: serves every bot. */
export const EVERY_BOT = '*';
export const DEFAULT_CAPACITY = 5;

export interface AgentRecord {
  id: string;
  name: string;
  email: string;
  role: AgentRole;
  bots: string[];
  queues: string[];
  capacity: number;
  status: AgentStatus;
  lastSeenAt: string | null;
  createdAt: string;
  updatedAt: string;
}

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : v === null ? null : String(v));

export function toAgentRecord(row: Record<string, unknown>): AgentRecord {
  return {
    id: row.id as string,
    name: row.name as string,
    email: row.email as string,
    role: row.role as AgentRole,
    bots: (row.bots as string[]) ?? [],
    queues: (row.queues as string[]) ?? [],
    capacity: Number(row.capacity),
    status: row.status as AgentStatus,
    lastSeenAt: iso(row.last_seen_at ?? null),
    createdAt: iso(row.created_at) as string,
    updatedAt: iso(row.updated_at) as string,
  };
}

/** Whether an agent serves a bot (supervisors and admins see only their bots' conversations too). */
export const servesBot = (agent: Pick<AgentRecord, 'bots'>, bot: string): boolean =>
  agent.bots.includes(EVERY_BOT) || agent.bots.includes(bot);

export interface NewAgent {
  name: string;
  email: string;
  passwordHash: string;
  role: AgentRole;
  bots: string[];
  queues: string[];
  capacity: number;
  tokenHash: Buffer;
}

export async function insertAgent(q: Queryable, agent: NewAgent): Promise<AgentRecord> {
  const { rows } = await q.query(
    `INSERT INTO agents (id, name, email, password_hash, role, bots, queues, capacity, token_hash)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9) RETURNING *`,
    [
      randomUUID(),
      agent.name,
      agent.email,
      agent.passwordHash,
      agent.role,
      json(agent.bots),
      json(agent.queues),
      agent.capacity,
      agent.tokenHash,
    ],
  );
  return toAgentRecord(rows[0]!);
}

export async function getAgent(q: Queryable, id: string): Promise<AgentRecord | undefined> {
  const { rows } = await q.query('SELECT * FROM agents WHERE id = $1', [id]);
  return rows[0] ? toAgentRecord(rows[0]) : undefined;
}

/** The names of the agents of `ids` that still exist, by id. */
export async function agentNames(q: Queryable, ids: readonly string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const { rows } = await q.query('SELECT id, name FROM agents WHERE id = ANY($1::uuid[])', [[...ids]]);
  return new Map(rows.map((r) => [r.id as string, r.name as string]));
}

export async function listAgents(q: Queryable): Promise<AgentRecord[]> {
  const { rows } = await q.query('SELECT * FROM agents ORDER BY created_at, id');
  return rows.map(toAgentRecord);
}

/** The agent and its password hash, by e-mail address (any case). */
export async function findAgentByEmail(
  q: Queryable,
  email: string,
): Promise<(AgentRecord & { passwordHash: string }) | undefined> {
  const { rows } = await q.query('SELECT * FROM agents WHERE lower(email) = lower($1)', [email]);
  const row = rows[0];
  return row ? { ...toAgentRecord(row), passwordHash: row.password_hash as string } : undefined;
}

export async function findAgentByTokenHash(
  q: Queryable,
  tokenHash: Buffer,
): Promise<(AgentRecord & { tokenHash: Buffer }) | undefined> {
  const { rows } = await q.query('SELECT * FROM agents WHERE token_hash = $1', [tokenHash]);
  const row = rows[0];
  return row ? { ...toAgentRecord(row), tokenHash: row.token_hash as Buffer } : undefined;
}

export interface AgentChanges {
  name?: string;
  email?: string;
  passwordHash?: string;
  role?: AgentRole;
  bots?: string[];
  queues?: string[];
  capacity?: number;
  status?: AgentStatus;
  tokenHash?: Buffer;
}

const COLUMNS: Record<keyof AgentChanges, string> = {
  name: 'name',
  email: 'email',
  passwordHash: 'password_hash',
  role: 'role',
  bots: 'bots',
  queues: 'queues',
  capacity: 'capacity',
  status: 'status',
  tokenHash: 'token_hash',
};

export async function updateAgent(
  q: Queryable,
  id: string,
  changes: AgentChanges,
): Promise<AgentRecord | undefined> {
  const sets: string[] = [];
  const params: unknown[] = [id];
  for (const [key, column] of Object.entries(COLUMNS) as [keyof AgentChanges, string][]) {
    const value = changes[key];
    if (value === undefined) continue;
    const jsonb = key === 'bots' || key === 'queues';
    params.push(jsonb ? json(value) : value);
    sets.push(`${column} = $${params.length}${jsonb ? '::jsonb' : ''}`);
  }
  const { rows } = await q.query(
    `UPDATE agents SET ${[...sets, 'updated_at = now()'].join(', ')} WHERE id = $1 RETURNING *`,
    params,
  );
  return rows[0] ? toAgentRecord(rows[0]) : undefined;
}

export async function deleteAgent(q: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await q.query('DELETE FROM agents WHERE id = $1', [id]);
  return rowCount > 0;
}

/** A console or event stream is connected: the agent is there (the offline check reads this). */
export async function touchAgent(q: Queryable, id: string): Promise<void> {
  await q.query('UPDATE agents SET last_seen_at = now() WHERE id = $1', [id]);
}

// Sign-ins (cookies).

export async function insertLogin(q: Queryable, agentId: string, tokenHash: Buffer, expiresAt: Date) {
  await q.query('INSERT INTO agent_logins (token_hash, agent_id, expires_at) VALUES ($1, $2, $3)', [
    tokenHash,
    agentId,
    expiresAt,
  ]);
}

export async function findAgentByLogin(q: Queryable, tokenHash: Buffer): Promise<AgentRecord | undefined> {
  const { rows } = await q.query(
    `SELECT a.* FROM agent_logins l JOIN agents a ON a.id = l.agent_id
     WHERE l.token_hash = $1 AND l.expires_at > now()`,
    [tokenHash],
  );
  return rows[0] ? toAgentRecord(rows[0]) : undefined;
}

/** Ends a sign-in (and sweeps expired ones); the agent whose sign-in it was, if it was one. */
export async function deleteLogin(q: Queryable, tokenHash: Buffer): Promise<string | undefined> {
  const { rows } = await q.query<{ agent_id: string; token_hash: Buffer }>(
    'DELETE FROM agent_logins WHERE token_hash = $1 OR expires_at < now() RETURNING agent_id, token_hash',
    [tokenHash],
  );
  return rows.find((r) => r.token_hash.equals(tokenHash))?.agent_id;
}

/** Ends every sign-in of an agent (a new password). */
export async function deleteLoginsOf(q: Queryable, agentId: string): Promise<void> {
  await q.query('DELETE FROM agent_logins WHERE agent_id = $1', [agentId]);
}

// The sign-in throttle.

/** Failed sign-ins under each of `keys` since `since`, and when the oldest of them was. */
export async function countLoginFailures(
  q: Queryable,
  keys: string[],
  since: Date,
): Promise<Map<string, { count: number; oldest: Date }>> {
  const { rows } = await q.query<{ key: string; count: string; oldest: Date | string }>(
    `SELECT key, count(*) AS count, min(at) AS oldest FROM agent_login_failures
     WHERE key IN (SELECT jsonb_array_elements_text($1::jsonb)) AND at > $2 GROUP BY key`,
    [json(keys), since],
  );
  return new Map(rows.map((r) => [r.key, { count: Number(r.count), oldest: new Date(r.oldest) }]));
}

/**
 * Counts a sign-in attempt as a failure under each of `keys` before its password is checked, and
 * forgets failures older than `forgetBefore`. Returns the new rows' `ctid`s, which
 * `forgetLoginAttempt` takes: the rows are never updated, so their ctids do not change.
 */
export async function recordLoginFailure(
  q: Queryable,
  keys: string[],
  forgetBefore: Date,
): Promise<string[]> {
  const { rows } = await q.query<{ row: string }>(
    'INSERT INTO agent_login_failures (key) SELECT jsonb_array_elements_text($1::jsonb) RETURNING ctid::text AS row',
    [json(keys)],
  );
  await q.query('DELETE FROM agent_login_failures WHERE at < $1', [forgetBefore]);
  return rows.map((r) => r.row);
}

/** Takes back the rows of one attempt (`recordLoginFailure`) that turned out not to be a failure. */
export async function forgetLoginAttempt(q: Queryable, rows: readonly string[]): Promise<void> {
  if (rows.length === 0) return;
  await q.query('DELETE FROM agent_login_failures WHERE ctid = ANY($1::tid[])', [[...rows]]);
}

export async function clearLoginFailures(q: Queryable, key: string): Promise<void> {
  await q.query('DELETE FROM agent_login_failures WHERE key = $1', [key]);
}
