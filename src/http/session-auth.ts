import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { SessionRecord } from '../store/records.ts';
import { ApiError } from './errors.ts';

const unauthorized = (message: string) =>
  new ApiError(401, 'unauthorized', message, { 'WWW-Authenticate': 'Bearer realm="switchboard"' });

/** What `requireSession` puts on the context: `c.var.session`, `c.var.sessionToken`. */
export interface SessionVariables {
  /** The session the request's bearer token opens (open, not expired). */
  session: SessionRecord;
  /** The bearer token itself (a message after an idle-out moves it to a new session). */
  sessionToken: string;
}

/** The Hono environment of routes behind `requireSession`. */
export interface SessionEnv {
  Variables: SessionVariables;
}

/** The bearer token a request carries, or 401. */
export function bearerToken(c: Context): string {
  const header = c.req.header('authorization') ?? '';
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthorized('send the session token as "Authorization: Bearer <token>"');
  return match[1]!;
}

/**
 * Middleware: the request's bearer token must open a session (else 401), which it sets on the
 * context as `session` (and the token as `sessionToken`). It runs before the body is read.
 */
export function requireSession(tokens: { forToken(token: string): Promise<SessionRecord | undefined> }) {
  return createMiddleware<SessionEnv>(async (c, next) => {
    const token = bearerToken(c);
    const session = await tokens.forToken(token);
    if (!session) throw unauthorized('the session token is not valid, or its session has ended or expired');
    c.set('session', session);
    c.set('sessionToken', token);
    await next();
  });
}
