import { type Context, Hono } from 'hono';
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
import { managesBots } from '../agents/admin-scope.ts';
import type { Logger } from '../logger.ts';
import { type AgentRecord, deleteAgent, getAgent, listAgents } from '../store/agents.ts';
import type { Db } from '../store/db.ts';
import type { AdminGuardOptions } from './admin-auth.ts';
import { type AgentVariables, requireAgentAdmin } from './agent-auth.ts';
import type { ProxySettings } from './client-address.ts';
import { ApiError, readJson } from './errors.ts';

const Params = z.object({ id: z.uuid() });
const NOT_FOUND = 'there is no agent with that id';

function agentId(raw: string): string {
  const parsed = Params.safeParse({ id: raw });
  if (!parsed.success) throw new ApiError(404, 'not_found', NOT_FOUND);
  return parsed.data.id;
}

type AdminContext = Context<{ Variables: Partial<AgentVariables> }>;

/** Refuses a grant of bots beyond the admin's own (see `managesBots`). */
function checkGrant(c: AdminContext, bots: readonly string[] | undefined): void {
  const admin = c.get('agent');
  if (bots === undefined || managesBots(admin, bots)) return;
  throw new ApiError(
    403,
    'forbidden',
    `an admin of ${admin?.bots.join(', ') || 'no bot'} may grant only those bots`,
  );
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
  /** ADMIN_TOKEN and its guess throttle. */
  admin: AdminGuardOptions;
  /** TRUST_PROXY and PUBLIC_URL: the console's own origin. */
  proxy: ProxySettings;
  /** An agent was removed or went offline: its conversations go back to the bot. */
  onAgentGone?: (agentId: string) => Promise<void>;
  /** An agent's access changed (removed, changed, a new token): its open event streams check it. */
  onAccessChanged?: (agentId: string) => Promise<void>;
}): Hono<{ Variables: Partial<AgentVariables> }> {
  const { db, logger } = deps;
  const app = new Hono<{ Variables: Partial<AgentVariables> }>();
  app.use(requireAgentAdmin(db, deps.admin, deps.proxy));

  /** The agent with that id, if this admin manages it: others are not there, as far as it can tell. */
  async function managed(c: AdminContext): Promise<AgentRecord> {
    const agent = await getAgent(db, agentId(c.req.param('id') ?? ''));
    if (!agent || !managesBots(c.get('agent'), agent.bots)) throw new ApiError(404, 'not_found', NOT_FOUND);
    return agent;
  }

  app.post('/', async (c) => {
    const body = await readJson(c, NewAgentSchema);
    checkGrant(c, body.bots);
    const { agent, token } = await duplicateAs409(() => createAgent(db, body));
    logger.info({ event: 'agent.created', agentId: agent.id, role: agent.role });
    return c.json({ agent_id: agent.id, token }, 201);
  });

  app.get('/', async (c) => {
    const agents = (await listAgents(db)).filter((a) => managesBots(c.get('agent'), a.bots));
    return c.json({ agents: agents.map(toApiAgent) });
  });

  app.get('/:id', async (c) => c.json(toApiAgent(await managed(c))));

  app.patch('/:id', async (c) => {
    const { id } = await managed(c);
    const patch = await readJson(c, AgentPatchSchema);
    checkGrant(c, patch.bots);
    // One transaction: a new password and the end of the sign-ins made with the old one, or neither.
    const agent = await duplicateAs409(() => db.transaction((tx) => changeAgent(tx, id, patch)));
    if (!agent) throw new ApiError(404, 'not_found', NOT_FOUND);
    logger.info({ event: 'agent.changed', agentId: id, fields: Object.keys(patch) });
    await deps.onAccessChanged?.(id);
    if (agent.status === 'offline') await deps.onAgentGone?.(id);
    return c.json(toApiAgent(agent));
  });

  app.delete('/:id', async (c) => {
    const { id } = await managed(c);
    await deps.onAgentGone?.(id);
    await deleteAgent(db, id);
    logger.info({ event: 'agent.removed', agentId: id });
    await deps.onAccessChanged?.(id);
    return c.json({ agent_id: id, deleted: true });
  });

  app.post('/:id/token', async (c) => {
    const { id } = await managed(c);
    const token = await renewAgentToken(db, id);
    if (!token) throw new ApiError(404, 'not_found', NOT_FOUND);
    logger.info({ event: 'agent.token_renewed', agentId: id });
    await deps.onAccessChanged?.(id);
    return c.json({ agent_id: id, token });
  });
  return app;
}
