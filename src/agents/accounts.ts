import { z } from 'zod';
import { hashToken, newToken, TOKEN_PATTERN, tokenMatches } from '../auth/token.ts';
import { BotNameSchema } from '../envelope.ts';
import {
  AGENT_ROLES,
  AGENT_STATUSES,
  type AgentChanges,
  type AgentRecord,
  DEFAULT_CAPACITY,
  deleteLoginsOf,
  EVERY_BOT,
  findAgentByTokenHash,
  insertAgent,
  updateAgent,
} from '../store/agents.ts';
import type { Queryable } from '../store/db.ts';
import { isUniqueViolation } from '../store/turns.ts';
import { hashPassword, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from './passwords.ts';

const BotsSchema = z.array(z.union([BotNameSchema, z.literal(EVERY_BOT)])).max(200);
const QueueSchema = z.string().min(1).max(100);

/** `POST /api/admin/agents` and `switchboard agent add`. */
export const NewAgentSchema = z
  .object({
    name: z.string().trim().min(1).max(200),
    email: z.email().max(320),
    password: z.string().min(MIN_PASSWORD_LENGTH).max(MAX_PASSWORD_LENGTH),
    role: z.enum(AGENT_ROLES).default('agent'),
    bots: BotsSchema.default([]),
    queues: z.array(QueueSchema).max(100).default([]),
    capacity: z.number().int().min(0).max(1000).default(DEFAULT_CAPACITY),
  })
  .strict();
export type NewAgentInput = z.input<typeof NewAgentSchema>;

/** `PATCH /api/admin/agents/{id}`: any of the fields, and the status. */
export const AgentPatchSchema = NewAgentSchema.partial()
  .extend({ status: z.enum(AGENT_STATUSES).optional() })
  .strict();

export class DuplicateEmailError extends Error {
  override name = 'DuplicateEmailError';
  constructor(email: string) {
    super(`an agent with the e-mail address ${email} exists already`);
  }
}

/** Creates an agent; its token is returned once and only its hash is kept. */
export async function createAgent(
  q: Queryable,
  input: z.output<typeof NewAgentSchema>,
): Promise<{ agent: AgentRecord; token: string }> {
  const token = newToken();
  try {
    const agent = await insertAgent(q, {
      name: input.name,
      email: input.email,
      passwordHash: await hashPassword(input.password),
      role: input.role,
      bots: input.bots,
      queues: input.queues,
      capacity: input.capacity,
      tokenHash: hashToken(token),
    });
    return { agent, token };
  } catch (err) {
    if (isUniqueViolation(err)) throw new DuplicateEmailError(input.email);
    throw err;
  }
}

export async function changeAgent(
  q: Queryable,
  id: string,
  patch: z.output<typeof AgentPatchSchema>,
): Promise<AgentRecord | undefined> {
  const { password, ...rest } = patch;
  const changes: AgentChanges = { ...rest };
  if (password !== undefined) changes.passwordHash = await hashPassword(password);
  try {
    const agent = await updateAgent(q, id, changes);
    // A new password ends the sign-ins made with the old one (whoever knew it is signed out).
    if (agent && password !== undefined) await deleteLoginsOf(q, id);
    return agent;
  } catch (err) {
    if (isUniqueViolation(err)) throw new DuplicateEmailError(patch.email ?? '');
    throw err;
  }
}

/** A new API token for an agent; the old one stops working at once. */
export async function renewAgentToken(q: Queryable, id: string): Promise<string | undefined> {
  const token = newToken();
  const agent = await updateAgent(q, id, { tokenHash: hashToken(token) });
  return agent ? token : undefined;
}

/** The agent an API token belongs to, or undefined (unknown and malformed look the same). */
export async function agentForToken(q: Queryable, token: string): Promise<AgentRecord | undefined> {
  if (!TOKEN_PATTERN.test(token)) return undefined;
  const found = await findAgentByTokenHash(q, hashToken(token));
  if (!found || !tokenMatches(token, found.tokenHash)) return undefined;
  const { tokenHash: _hash, ...agent } = found;
  return agent;
}

/** An agent as the API shows it (never a hash). */
export function toApiAgent(a: AgentRecord) {
  return {
    agent_id: a.id,
    name: a.name,
    email: a.email,
    role: a.role,
    bots: a.bots,
    queues: a.queues,
    capacity: a.capacity,
    status: a.status,
    last_seen_at: a.lastSeenAt,
    created_at: a.createdAt,
    updated_at: a.updatedAt,
  };
}
