import type { Context, MiddlewareHandler } from 'hono';
import { EVERY_BOT, servesBot } from '../store/agents.ts';
import type { AuditEntry } from '../store/audit.ts';
import type { Db } from '../store/db.ts';
import { type AdminGuardOptions, AdminTokenCheck } from './admin-auth.ts';
import { authenticateOperatorOrAgent, type OperatorOrAgent } from './agent-auth.ts';
import { contextAddress, type ProxySettings } from './client-address.ts';
import { ApiError } from './errors.ts';

/** Who is asking: the operator (ADMIN_TOKEN), or a supervisor or admin agent and how they signed in. */
export type Viewer = OperatorOrAgent;
export type DashboardEnv = { Variables: { viewer: Viewer } };

/**
 * The dashboard's routes: the operator's ADMIN_TOKEN, or an agent whose role is `supervisor` or
 * `admin` (by token or cookie). A plain agent is 403.
 */
export function requireSupervisor(
  db: Db,
  admin: AdminGuardOptions,
  proxy: ProxySettings,
): MiddlewareHandler<DashboardEnv> {
  const adminToken = new AdminTokenCheck(admin);
  return async (c, next) => {
    const viewer = await authenticateOperatorOrAgent(c, db, adminToken, proxy);
    if (viewer.kind === 'agent' && viewer.agent.role !== 'supervisor' && viewer.agent.role !== 'admin')
      throw new ApiError(403, 'forbidden', 'the dashboard is for supervisors and admins');
    c.set('viewer', viewer);
    await next();
  };
}

/**
 * The bots a viewer may see on the dashboard: undefined for every bot (ADMIN_TOKEN, or an agent
 * that serves "*"). A supervisor or admin agent sees its own bots only, as in the agent API.
 */
export function viewerBots(viewer: Viewer): readonly string[] | undefined {
  return viewer.kind === 'operator' || viewer.agent.bots.includes(EVERY_BOT) ? undefined : viewer.agent.bots;
}

/** Whether a viewer may see a bot's sessions and numbers. */
export const viewerServes = (viewer: Viewer, bot: string): boolean =>
  viewer.kind === 'operator' || servesBot(viewer.agent, bot);

/** 403 for a `bot=` filter naming a bot the viewer does not serve. */
export function checkViewerBot(viewer: Viewer, bot: string | undefined): void {
  if (bot !== undefined && !viewerServes(viewer, bot))
    throw new ApiError(403, 'forbidden', `you do not serve the bot "${bot}"`);
}

/** The audit row's who and from where for this request (the client's address as TRUST_PROXY reads it). */
export function auditActor(
  c: Context,
  viewer: Viewer,
  trustProxy: number,
): Omit<AuditEntry, 'action' | 'sessionId'> {
  return {
    actor: viewer.kind,
    agentId: viewer.kind === 'agent' ? viewer.agent.id : null,
    via: viewer.kind === 'agent' && viewer.via === 'cookie' ? 'console' : 'admin-api',
    ip: contextAddress(c, trustProxy) ?? null,
    userAgent: c.req.header('user-agent') ?? null,
  };
}
