import { type Bus, sessionTopic, type TokenReplaced } from '../bus/bus.ts';
import type { SessionCache } from '../cache/cache.ts';
import type { Logger } from '../logger.ts';
import { sessionForToken } from '../sessions.ts';
import type { Db } from '../store/db.ts';
import { InvalidCredentialsError } from './jwt.ts';
import {
  NotUpgradableError,
  SessionOwnedError,
  type SignInResult,
  StaleTokenError,
  signInSession,
} from './sign-in.ts';
import type { SignInVerifiers } from './sign-in-config.ts';
import { hashToken } from './token.ts';

/** Why a sign-in was refused; each maps to one HTTP status and one web socket error code. */
export type SignInRefusal =
  | 'sign_in_disabled'
  | 'unauthorized'
  | 'invalid_credentials'
  | 'session_owned'
  | 'not_upgradable';

export class SignInRefused extends Error {
  override name = 'SignInRefused';
  constructor(
    readonly code: SignInRefusal,
    message: string,
  ) {
    super(message);
  }
}

export type SignIn = (token: string, jwt: string) => Promise<SignInResult>;

/**
 * The sign-in upgrade as one call, for every door it comes through (`POST
 * /api/session/authenticate`, the widget's `authenticate` frame): the session the token opens,
 * the JWT checked against that bot's keys, the upgrade committed, the session dropped from the
 * cache so the engine reloads it with its user, and every gateway told (on the bus) to disconnect
 * the session's clients that hold the old token. Throws SignInRefused.
 */
export function createSignIn(deps: {
  db: Db;
  cache: SessionCache;
  bus: Bus;
  verifiers: SignInVerifiers;
  logger: Logger;
}): SignIn {
  const { db, cache, bus, verifiers, logger } = deps;
  return async (token, jwt) => {
    if (!verifiers.enabled)
      throw new SignInRefused('sign_in_disabled', 'sign-in is not configured (see AUTH_JWT_* settings)');
    const session = await sessionForToken(db, token);
    if (!session)
      throw new SignInRefused(
        'unauthorized',
        'the session token is not valid, or its session has ended or expired',
      );
    const verifier = verifiers.forBot(session.bot);
    if (!verifier) throw new SignInRefused('sign_in_disabled', 'sign-in is not configured for this bot');
    let user: Awaited<ReturnType<typeof verifier.verify>>;
    try {
      user = await verifier.verify(jwt);
    } catch (err) {
      if (!(err instanceof InvalidCredentialsError)) throw err;
      logger.info({ event: 'session.sign_in_refused', sessionId: session.id, reason: err.reason });
      throw new SignInRefused('invalid_credentials', 'the JWT is not valid for this hub');
    }
    let result: SignInResult;
    try {
      result = await signInSession(db, hashToken(token), user);
    } catch (err) {
      const refusal = refusalOf(err);
      if (refusal) throw refusal;
      throw err;
    }
    const replaced: TokenReplaced = {
      type: 'token.replaced',
      sessionId: result.sessionId,
      tokenHash: hashToken(result.token).toString('base64url'),
    };
    // Best-effort like every bus message; a socket also re-checks its token when it binds.
    await bus
      .publish(sessionTopic(result.sessionId), replaced)
      .catch((err: Error) =>
        logger.warn({ event: 'bus.publish_failed', sessionId: result.sessionId, err: err.message }),
      );
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
    return result;
  };
}

function refusalOf(err: unknown): SignInRefused | undefined {
  if (err instanceof StaleTokenError)
    return new SignInRefused('unauthorized', 'the session token is not valid, or its session has ended');
  if (err instanceof SessionOwnedError) return new SignInRefused('session_owned', err.message);
  if (err instanceof NotUpgradableError) return new SignInRefused('not_upgradable', err.message);
  return undefined;
}
