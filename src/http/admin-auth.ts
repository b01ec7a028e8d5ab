import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { MINUTE_MS, type RateLimiter } from '../limits/rate-limiter.ts';
import { contextAddress } from './client-address.ts';
import { ApiError } from './errors.ts';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Wrong operator tokens one client address may present in any minute. Past it, every operator
 * request from that address is refused (429) until the oldest failure is a minute old, so a
 * guess cannot be tried there, right or wrong.
 */
export const ADMIN_FAILURES_PER_MINUTE = 10;

export const adminFailuresKey = (address: string) => `admin-auth:${address}:failures`;

export interface AdminGuardOptions {
  adminToken: string | undefined;
  /** Counts failures across the hub's gateways (Redis) or in this process. */
  rateLimiter: RateLimiter;
  /** TRUST_PROXY: how the client's address is read. */
  trustProxy: number;
}

/**
 * Guards operator routes with `Authorization: Bearer <ADMIN_TOKEN>`. With no ADMIN_TOKEN
 * configured the routes are closed (403), never open. Wrong tokens are counted per client
 * address and throttled (ADMIN_FAILURES_PER_MINUTE).
 */
export function requireAdmin(options: AdminGuardOptions): MiddlewareHandler {
  const { adminToken, rateLimiter, trustProxy } = options;
  const expected = adminToken ? digest(adminToken) : undefined;
  return async (c, next) => {
    if (!expected)
      throw new ApiError(
        403,
        'admin_disabled',
        'operator routes are disabled: set ADMIN_TOKEN to enable them',
      );
    const key = adminFailuresKey(contextAddress(c, trustProxy) ?? 'unknown');
    const state = await rateLimiter.peek(key, ADMIN_FAILURES_PER_MINUTE, MINUTE_MS);
    if (!state.allowed) throw tooManyFailures(state.retryAfterMs);
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    if (!match || !timingSafeEqual(digest(match[1]!), expected)) {
      // A request without a token is not a guess; a wrong token is.
      if (match) {
        const counted = await rateLimiter.hit(key, ADMIN_FAILURES_PER_MINUTE, MINUTE_MS);
        if (!counted.allowed) throw tooManyFailures(counted.retryAfterMs);
      }
      throw new ApiError(
        401,
        'unauthorized',
        'send the operator token as "Authorization: Bearer <ADMIN_TOKEN>"',
        {
          'WWW-Authenticate': 'Bearer realm="switchboard-admin"',
        },
      );
    }
    await next();
  };
}

const tooManyFailures = (retryAfterMs: number) =>
  new ApiError(
    429,
    'too_many_failures',
    'too many wrong operator tokens from this address; wait before trying again',
    { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
  );
