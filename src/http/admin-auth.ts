import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors.ts';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Guards operator routes with `Authorization: Bearer <ADMIN_TOKEN>`. With no ADMIN_TOKEN
 * configured the routes are closed (403), never open.
 */
export function requireAdmin(adminToken: string | undefined): MiddlewareHandler {
  const expected = adminToken ? digest(adminToken) : undefined;
  return async (c, next) => {
    if (!expected)
      throw new ApiError(
        403,
        'admin_disabled',
        'operator routes are disabled: set ADMIN_TOKEN to enable them',
      );
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    if (!match || !timingSafeEqual(digest(match[1]!), expected)) {
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
