import type { Context } from 'hono';
import { hashToken, TOKEN_PATTERN, tokenMatches } from '../auth/token.ts';
import type { Db } from '../store/db.ts';
import type { SessionRecord } from '../store/records.ts';
import { findSessionByTokenHash } from '../store/sessions.ts';
import { ApiError } from './errors.ts';

const unauthorized = (message: string) =>
  new ApiError(401, 'unauthorized', message, { 'WWW-Authenticate': 'Bearer realm="switchboard"' });

/**
 * The session a request's bearer token opens. Unknown, malformed, expired and ended all answer
 * the same 401, so that a caller learns nothing about tokens it does not hold.
 */
export async function authenticateSession(c: Context, db: Db): Promise<SessionRecord> {
  const header = c.req.header('authorization') ?? '';
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthorized('send the session token as "Authorization: Bearer <token>"');
  const token = match[1]!;
  const invalid = unauthorized('the session token is not valid, or its session has ended or expired');
  if (!TOKEN_PATTERN.test(token)) throw invalid;
  const session = await findSessionByTokenHash(db, hashToken(token));
  if (!session || !tokenMatches(token, session.tokenHash)) throw invalid;
  if (session.endedAt) throw invalid;
  if (session.expiresAt && Date.parse(session.expiresAt) <= Date.now()) throw invalid;
  const { tokenHash: _hash, ...record } = session;
  return record;
}
