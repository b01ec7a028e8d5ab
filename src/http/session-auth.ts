import type { Context } from 'hono';
import { sessionForToken } from '../sessions.ts';
import type { Db } from '../store/db.ts';
import type { SessionRecord } from '../store/records.ts';
import { ApiError } from './errors.ts';

const unauthorized = (message: string) =>
  new ApiError(401, 'unauthorized', message, { 'WWW-Authenticate': 'Bearer realm="switchboard"' });

/** The bearer token a request carries, or 401. */
export function bearerToken(c: Context): string {
  const header = c.req.header('authorization') ?? '';
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthorized('send the session token as "Authorization: Bearer <token>"');
  return match[1]!;
}

/** The session a request's bearer token opens, or 401. */
export async function authenticateSession(c: Context, db: Db): Promise<SessionRecord> {
  return (await authenticateToken(c, db)).session;
}

/** The request's bearer token and the session it opens, or 401. */
export async function authenticateToken(
  c: Context,
  db: Db,
): Promise<{ session: SessionRecord; token: string }> {
  const token = bearerToken(c);
  const session = await sessionForToken(db, token);
  if (!session) throw unauthorized('the session token is not valid, or its session has ended or expired');
  return { session, token };
}
