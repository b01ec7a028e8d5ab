import { Hono } from 'hono';
import { z } from 'zod';
import { type SignIn, type SignInRefusal, SignInRefused } from '../auth/sign-in-service.ts';
import type { HubConfig } from '../config/env.ts';
import { MINUTE_MS, type RateLimiter, retryAfterSeconds, signInAttemptKey } from '../limits/rate-limiter.ts';
import { contextAddress } from './client-address.ts';
import { ApiError, readJson } from './errors.ts';
import { bearerToken } from './session-auth.ts';

/** A compact JWS is three base64url parts; 8 KiB is far more than any sign-in token needs. */
export const AuthenticateBody = z
  .object({
    jwt: z
      .string({ error: 'jwt is required and must be a string' })
      .min(1, 'jwt must not be empty')
      .max(8192, 'jwt is too long'),
  })
  .strict();

const STATUS: Record<SignInRefusal, 401 | 403 | 409 | 501> = {
  sign_in_disabled: 501,
  unauthorized: 401,
  invalid_credentials: 401,
  session_owned: 409,
  not_upgradable: 403,
};

const CHALLENGE: Partial<Record<SignInRefusal, string>> = {
  unauthorized: 'Bearer realm="switchboard"',
  invalid_credentials: 'Bearer realm="switchboard", error="invalid_token"',
};

/** `POST /api/session/authenticate`: the host site's JWT upgrades an anonymous session to its user. */
export function authRoutes(deps: {
  signIn: SignIn;
  rateLimiter: RateLimiter;
  config: Pick<HubConfig, 'trustProxy' | 'sessionCreatePerMinute'>;
}): Hono {
  const { config } = deps;
  const app = new Hono();
  app.post('/api/session/authenticate', async (c) => {
    const token = bearerToken(c);
    const body = await readJson(c, AuthenticateBody);
    // A sign-in issues a new token, as opening a session does: the same limit per address.
    const address = contextAddress(c, config.trustProxy) ?? 'unknown';
    const allowed = await deps.rateLimiter.hit(
      signInAttemptKey(address),
      config.sessionCreatePerMinute,
      MINUTE_MS,
    );
    if (!allowed.allowed)
      throw new ApiError(
        429,
        'rate_limited',
        `this address tried ${config.sessionCreatePerMinute} sign-ins in the last minute; retry later`,
        { 'Retry-After': retryAfterSeconds(allowed.retryAfterMs) },
      );
    try {
      const result = await deps.signIn(token, body.jwt);
      return c.json({
        session_id: result.sessionId,
        token: result.token,
        auth_level: result.authLevel,
        user_id: result.userId,
      });
    } catch (err) {
      if (!(err instanceof SignInRefused)) throw err;
      const challenge = CHALLENGE[err.code];
      throw new ApiError(
        STATUS[err.code],
        err.code,
        err.message,
        challenge ? { 'WWW-Authenticate': challenge } : {},
      );
    }
  });
  return app;
}
