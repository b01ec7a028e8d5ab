import { z } from 'zod';

/** Where the hub's own page opens a session held in its cookie. */
export const COOKIE_SESSION_PATH = '/api/web/session';
/** `POST /api/web/session`'s body (also the OpenAPI document's, src/http/openapi/operations.ts). */
export const CookieSessionBody = z.object({ bot: z.string().max(100).optional() }).strict();
