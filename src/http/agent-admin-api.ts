import { Hono } from 'hono';
import { z } from 'zod';
import {
  AgentPatchSchema,
  changeAgent,
  createAgent,
  DuplicateEmailError,
  NewAgentSchema,
  renewAgentToken,
  toApiAgent,
} from '../agents/accounts.ts';
import type { Logger } from '../logger.ts';
import { deleteAgent, getAgent, listAgents } from '../store/agents.ts';
import type { Db } from '../store/db.ts';
import { type AgentVariables, requireAgentAdmin } from './agent-auth.ts';
import { ApiError, readJson } from './errors.ts';

const Params = z.object({ id: z.uuid() });

function agentId(raw: string): string {
  const parsed = Params.safeParse({ id: raw });
  if (!parsed.success) throw new ApiError(404, 'not_found', 'there is no agent with that id');
  return parsed.data.id;
}

async function duplicateAs409<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof DuplicateEmailError) throw new ApiError(409, 'email_taken', err.message);
    throw err;
  }
}

/**
 * `/api/admin/agents`: agent accounts, for the operator (ADMIN_TOKEN) or an admin agent. A sub-app:
 * the hub mounts it with `app.route('/api/admin/agents', ...)`.
 */
export function agentAdminRoutes(deps: {
  db: Db;
  logger: Logger;
  adminToken: string | undefined;
  /** An agent was removed or went offline: its conversations go back to the bot. */
  onAgentGone?: (agentId: string) => Promise<void>;
  /** An agent's access changed (removed, changed, a new token): its open event streams check it. */
  onAccessChanged?: (agentId: string) => Promise<void>;
}): Hono<{ Variables: Partial<AgentVariables> }> {
  const { db, logger } = deps;
  const app = new Hono<{ Variables: Partial<AgentVariables> }>();
  app.use(requireAgentAdmin(db, deps.adminToken));

  app.post('/', async (c) => {
    const body = await readJson(c, NewAgentSchema);
    const { agent, token } = await duplicateAs409(() => createAgent(db, body));
    logger.info({ event: 'agent.created', agentId: agent.id, role: agent.role });
    return c.json({ agent_id: agent.id, token }, 201);
  });

  app.get('/', async (c) => c.json({ agents: (await listAgents(db)).map(toApiAgent) }));

  app.get('/:id', async (c) => {
    const agent = await getAgent(db, agentId(c.req.param('id')));
    if (!agent) throw new ApiError(404, 'not_found', 'there is no agent with that id');
    return c.json(toApiAgent(agent));
  });

  app.patch('/:id', async (c) => {
    const id = agentId(c.req.param('id'));
    const patch = await readJson(c, AgentPatchSchema);
    // One transaction: a new password and the end of the sign-ins made with the old one, or neither.
    const agent = await duplicateAs409(() => db.transaction((tx) => changeAgent(tx, id, patch)));
    if (!agent) throw new ApiError(404, 'not_found', 'there is no agent with that id');
    logger.info({ event: 'agent.changed', agentId: id, fields: Object.keys(patch) });
    await deps.onAccessChanged?.(id);
    if (agent.status === 'offline') await deps.onAgentGone?.(id);
    return c.json(toApiAgent(agent));
  });

  app.delete('/:id', async (c) => {
    const id = agentId(c.req.param('id'));
    if (!(await getAgent(db, id))) throw new ApiError(404, 'not_found', 'there is no agent with that id');
    await deps.onAgentGone?.(id);
    await deleteAgent(db, id);
    logger.info({ event: 'agent.removed', agentId: id });
    await deps.onAccessChanged?.(id);
    return c.json({ agent_id: id, deleted: true });
  });

  app.post('/:id/token', async (c) => {
    const id = agentId(c.req.param('id'));
    const token = await renewAgentToken(db, id);
    if (!token) throw new ApiError(404, 'not_found', 'there is no agent with that id');
    logger.info({ event: 'agent.token_renewed', agentId: id });
    await deps.onAccessChanged?.(id);
    return c.json({ agent_id: id, token });
  });
  return app;
}
