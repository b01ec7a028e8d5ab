import type { Hono } from 'hono';
import { z } from 'zod';
import { InvalidCredentialsError } from '../auth/jwt.ts';
import { NotUpgradableError, SessionOwnedError, StaleTokenError, signInSession } from '../auth/sign-in.ts';
import type { SignInVerifiers } from '../auth/sign-in-config.ts';
import { hashToken } from '../auth/token.ts';
import type { SessionCache } from '../cache/cache.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../store/db.ts';
import { ApiError, readJson } from './errors.ts';
import { authenticateSession, bearerToken } from './session-auth.ts';

export interface AuthApiDeps {
  db: Db;
  cache: SessionCache;
  verifiers: SignInVerifiers;
  logger: Logger;
}

/** A compact JWS is three base64url parts; 8 KiB is far more than any sign-in token needs. */
const AuthenticateBody = z
  .object({
    jwt: z
      .string({ error: 'jwt is required and must be a string' })
      .min(1, 'jwt must not be empty')
      .max(8192, 'jwt is too long'),
  })
  .strict();

const signInDisabled = () =>
  new ApiError(501, 'sign_in_disabled', 'sign-in is not configured for this bot (see AUTH_JWT_* settings)');

const invalidCredentials = () =>
  new ApiError(401, 'invalid_credentials', 'the JWT is not valid for this hub', {
    'WWW-Authenticate': 'Bearer realm="switchboard", error="invalid_token"',
  });

/** `POST /api/session/authenticate`: the host site's JWT upgrades an anonymous session to its user. */
export function mountAuthApi(app: Hono, deps: AuthApiDeps): void {
  const { db, cache, verifiers, logger } = deps;

  app.post('/api/session/authenticate', async (c) => {
    if (!verifiers.enabled) throw signInDisabled();
    const session = await authenticateSession(c, db);
    const verifier = verifiers.forBot(session.bot);
    if (!verifier) throw signInDisabled();
    const body = await readJson(c, AuthenticateBody);
    let user: Awaited<ReturnType<typeof verifier.verify>>;
    try {
      user = await verifier.verify(body.jwt);
    } catch (err) {
      if (!(err instanceof InvalidCredentialsError)) throw err;
      logger.info({ event: 'session.sign_in_refused', sessionId: session.id, reason: err.reason });
      throw invalidCredentials();
    }
    let result: Awaited<ReturnType<typeof signInSession>>;
    try {
      result = await signInSession(db, hashToken(bearerToken(c)), user);
    } catch (err) {
      if (err instanceof StaleTokenError)
        throw new ApiError(401, 'unauthorized', 'the session token is not valid, or its session has ended', {
          'WWW-Authenticate': 'Bearer realm="switchboard"',
        });
      if (err instanceof SessionOwnedError) throw new ApiError(409, 'session_owned', err.message);
      if (err instanceof NotUpgradableError) throw new ApiError(403, 'not_upgradable', err.message);
      throw err;
    }
    // The engine reloads the session, with its user and level, on its next turn.
    await cache
      .delete(result.sessionId)
      .catch((err: Error) =>
        logger.warn({ event: 'cache.delete_failed', sessionId: result.sessionId, err: err.message }),
      );
    for (const identity of result.identities) {
      if (identity.result === 'taken')
        logger.info({
          event: 'identity.link_skipped',
          sessionId: result.sessionId,
          userId: result.userId,
          channel: identity.channel,
          reason: 'owned by another user',
        });
    }
    logger.info({
      event: 'session.authenticated',
      sessionId: result.sessionId,
      bot: result.bot,
      userId: result.userId,
      authLevel: result.authLevel,
    });
    return c.json({
      session_id: result.sessionId,
      token: result.token,
      auth_level: result.authLevel,
      user_id: result.userId,
    });
  });
}
