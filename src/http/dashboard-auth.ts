import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import type { AgentRecord } from '../store/agents.ts';
import type { AuditEntry } from '../store/audit.ts';
import type { Db } from '../store/db.ts';
import { authenticateAgent } from './agent-auth.ts';
import { contextAddress, type ProxySettings } from './client-address.ts';
import { ApiError } from './errors.ts';

/** Who is asking: the operator (ADMIN_TOKEN), or a supervisor or admin agent and how they signed in. */
export type Viewer = { kind: 'operator' } | { kind: 'agent'; agent: AgentRecord; via: 'token' | 'cookie' };
export type DashboardEnv = { Variables: { viewer: Viewer } };

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * The dashboard's routes: the operator's ADMIN_TOKEN, or an agent whose role is `supervisor` or
 * `admin` (by token or cookie). A plain agent is 403.
 */
export function requireSupervisor(
  db: Db,
  adminToken: string | undefined,
  proxy: ProxySettings,
): MiddlewareHandler<DashboardEnv> {
  const expected = adminToken ? digest(adminToken) : undefined;
  return async (c, next) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    if (match && expected && timingSafeEqual(digest(match[1]!), expected)) {
      c.set('viewer', { kind: 'operator' });
      await next();
      return;
    }
    const { agent, via } = await authenticateAgent(c, db, proxy);
    if (agent.role !== 'supervisor' && agent.role !== 'admin')
      throw new ApiError(403, 'forbidden', 'the dashboard is for supervisors and admins');
    c.set('viewer', { kind: 'agent', agent, via });
    await next();
  };
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
