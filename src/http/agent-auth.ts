import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { agentForToken } from '../agents/accounts.ts';
import { hashToken, TOKEN_PATTERN } from '../auth/token.ts';
import { type AgentRecord, findAgentByLogin } from '../store/agents.ts';
import type { Db } from '../store/db.ts';
import { type AdminGuardOptions, AdminTokenCheck } from './admin-auth.ts';
import { contextOverTls, isOwnOrigin, type ProxySettings } from './client-address.ts';
import { ApiError } from './errors.ts';

/** The sign-in cookie: HttpOnly, SameSite=Strict, a 256-bit token stored only hashed. */
export const AGENT_COOKIE = 'sb_agent';
/** How long a sign-in lasts. */
export const LOGIN_TTL_MS = 12 * 3_600_000;
/**
 * Requests signed in by cookie that change something must carry this header (any value). A page
 * on another site cannot send a custom header without a CORS preflight, which the hub never grants.
 */
export const CSRF_HEADER = 'X-Requested-With';

export type AgentVariables = { agent: AgentRecord; agentVia: 'token' | 'cookie' };

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const unauthorized = (message: string) =>
  new ApiError(401, 'unauthorized', message, { 'WWW-Authenticate': 'Bearer realm="switchboard-agent"' });

/** The bearer token of a request, undefined without an Authorization header; 401 when malformed. */
function bearer(c: Context): string | undefined {
  const header = c.req.header('authorization');
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthorized('send the agent token as "Authorization: Bearer <token>"');
  return match[1]!;
}

/**
 * The request's `Origin` when it is a page of the hub itself (`isOwnOrigin`: behind a proxy, as
 * TRUST_PROXY and PUBLIC_URL say), undefined without one; 403 `cross_origin` for another site's.
 */
export function ownPageOrigin(c: Context, proxy: ProxySettings, refusal: string): string | undefined {
  const origin = c.req.header('origin');
  if (origin !== undefined && !isOwnOrigin(c, origin, proxy))
    throw new ApiError(403, 'cross_origin', refusal);
  return origin;
}

/**
 * Refuses a cross-site request: a state-changing request must name its own origin (or none) in
 * `Origin` and carry the CSRF header. Browsers always send Origin on cross-site POSTs.
 */
export function checkSameOrigin(c: Context, proxy: ProxySettings): void {
  const origin = c.req.header('origin');
  ownPageOrigin(c, proxy, `requests from ${origin} are not accepted here`);
  if (!c.req.header(CSRF_HEADER)) {
    throw new ApiError(
      403,
      'csrf',
      `a request signed in by cookie that changes something must carry the ${CSRF_HEADER} header`,
    );
  }
}

/** The agent behind a request (bearer token, or the sign-in cookie), or 401. */
export async function authenticateAgent(
  c: Context,
  db: Db,
  proxy: ProxySettings,
): Promise<{ agent: AgentRecord; via: 'token' | 'cookie' }> {
  const token = bearer(c);
  if (token !== undefined) {
    const agent = await agentForToken(db, token);
    if (!agent) throw unauthorized('the agent token is not valid');
    return { agent, via: 'token' };
  }
  const cookie = getCookie(c, AGENT_COOKIE);
  if (cookie && TOKEN_PATTERN.test(cookie)) {
    const agent = await findAgentByLogin(db, hashToken(cookie));
    if (agent) {
      if (!SAFE_METHODS.has(c.req.method)) checkSameOrigin(c, proxy);
      return { agent, via: 'cookie' };
    }
  }
  throw unauthorized('sign in (POST /api/agent/login) or send "Authorization: Bearer <agent token>"');
}

export function requireAgent(db: Db, proxy: ProxySettings): MiddlewareHandler<{ Variables: AgentVariables }> {
  return async (c, next) => {
    const { agent, via } = await authenticateAgent(c, db, proxy);
    c.set('agent', agent);
    c.set('agentVia', via);
    await next();
  };
}

/** Who is behind a request on a route that takes the operator or an agent. */
export type OperatorOrAgent =
  | { kind: 'operator' }
  | { kind: 'agent'; agent: AgentRecord; via: 'token' | 'cookie' };

/**
 * The operator (ADMIN_TOKEN, under its guess throttle: `AdminTokenCheck`) or the agent behind a
 * request (bearer token or sign-in cookie), or 401 (429 for a locked-out address's bearer). An
 * agent's own token is never counted as a guess at ADMIN_TOKEN, nor refused with its address.
 */
export async function authenticateOperatorOrAgent(
  c: Context,
  db: Db,
  admin: AdminTokenCheck,
  proxy: ProxySettings,
): Promise<OperatorOrAgent> {
  const token = bearer(c);
  if (token === undefined) return { kind: 'agent', ...(await authenticateAgent(c, db, proxy)) };
  // Looked up whatever the token is, so that ADMIN_TOKEN and a wrong guess take the same steps.
  const agent = await agentForToken(db, token);
  if (await admin.isAdminToken(c, token, agent !== undefined)) return { kind: 'operator' };
  if (!agent) throw unauthorized('the agent token is not valid');
  return { kind: 'agent', agent, via: 'token' };
}

/**
 * Agent management: the operator's ADMIN_TOKEN, or an agent whose role is `admin` (by token or
 * cookie). A supervisor or agent is 403.
 */
export function requireAgentAdmin(
  db: Db,
  admin: AdminGuardOptions,
  proxy: ProxySettings,
): MiddlewareHandler<{ Variables: Partial<AgentVariables> }> {
  const adminToken = new AdminTokenCheck(admin);
  return async (c, next) => {
    const who = await authenticateOperatorOrAgent(c, db, adminToken, proxy);
    if (who.kind === 'operator') {
      await next();
      return;
    }
    const { agent, via } = who;
    if (agent.role !== 'admin') throw new ApiError(403, 'forbidden', 'managing agents takes an admin');
    c.set('agent', agent);
    c.set('agentVia', via);
    await next();
  };
}

/**
 * Whether a sign-in reached the hub over TLS, so that its cookie is `Secure`: the socket, or
 * `X-Forwarded-Proto` under TRUST_PROXY, or the hub's own page it came from (`pageOrigin`, already
 * checked by `ownPageOrigin`) being https, as behind a proxy that does not say but PUBLIC_URL does.
 */
export function signInOverTls(c: Context, proxy: ProxySettings, pageOrigin: string | undefined): boolean {
  return contextOverTls(c, proxy.trustProxy) || pageOrigin?.startsWith('https://') === true;
}

export function setLoginCookie(c: Context, token: string, secure: boolean): void {
  setCookie(c, AGENT_COOKIE, token, {
    httpOnly: true,
    sameSite: 'Strict',
    path: '/',
    secure,
    maxAge: Math.floor(LOGIN_TTL_MS / 1000),
  });
}

export function clearLoginCookie(c: Context): void {
  deleteCookie(c, AGENT_COOKIE, { path: '/' });
}
