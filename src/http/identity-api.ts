import { type Context, Hono } from 'hono';
import { z } from 'zod';
import { InvalidIdentityError, normalizeNativeId } from '../auth/identity.ts';
import type { SessionCache } from '../cache/cache.ts';
import { type Channel, ChannelSchema } from '../envelope.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../store/db.ts';
import { assignIdentitySessions } from '../store/sessions.ts';
import {
  assignIdentity,
  findUser,
  type IdentityRecord,
  listIdentities,
  unlinkIdentity,
} from '../store/users.ts';
import { type AdminGuardOptions, requireAdmin } from './admin-auth.ts';
import { ApiError, readJson } from './errors.ts';

export interface IdentityApiDeps {
  db: Db;
  cache: SessionCache;
  logger: Logger;
  admin: AdminGuardOptions;
}

const channel = ChannelSchema;
export const LinkBody = z
  .object({
    channel,
    native_id: z.string({ error: 'native_id is required and must be a string' }).min(1).max(320),
  })
  .strict();
const UserId = z.uuid();

const userNotFound = (id: string) => new ApiError(404, 'not_found', `there is no user ${id}`);

/** The stored form of an identity, or 400 saying what is wrong with it. */
function normalized(ch: Channel, nativeId: string): string {
  try {
    return normalizeNativeId(ch, nativeId);
  } catch (err) {
    if (err instanceof InvalidIdentityError) throw new ApiError(400, 'invalid_request', err.message);
    throw err;
  }
}

/** The `:id` of the route as a user id; anything that is no uuid is a user that does not exist. */
function userIdParam(c: Context): string {
  const id = c.req.param('id') ?? '';
  if (!UserId.safeParse(id).success) throw userNotFound(id);
  return id;
}

const toApiIdentity = (i: IdentityRecord) => ({
  channel: i.channel,
  native_id: i.nativeId,
  display_name: i.displayName,
  created_at: i.createdAt,
});

/**
 * Operator routes that link channel identities to users, so that memory follows a person from
 * one channel to another: `/api/admin/users/:id` and its identities.
 */
export function identityRoutes(deps: IdentityApiDeps): Hono {
  const app = new Hono();
  const { db, cache, logger } = deps;
  const admin = requireAdmin(deps.admin);

  app.get('/api/admin/users/:id', admin, async (c) => {
    const id = userIdParam(c);
    const user = await findUser(db, id);
    if (!user) throw userNotFound(id);
    const identities = await listIdentities(db, id);
    return c.json({
      id: user.id,
      display_name: user.displayName,
      email: user.email,
      external_id: user.externalId,
      created_at: user.createdAt,
      identities: identities.map(toApiIdentity),
    });
  });

  app.post('/api/admin/users/:id/identities', admin, async (c) => {
    const userId = userIdParam(c);
    const body = await readJson(c, LinkBody);
    const nativeId = normalized(body.channel, body.native_id);
    const identity = { userId, channel: body.channel, nativeId };
    const { previousUserId, sessionIds } = await db.transaction(async (tx) => {
      if (!(await findUser(tx, userId))) throw userNotFound(userId);
      const { previousUserId } = await assignIdentity(tx, identity);
      // The identity's open sessions follow it, and any turn in flight for them recomputes.
      const sessionIds = await assignIdentitySessions(tx, identity);
      return { previousUserId, sessionIds };
    });
    for (const sessionId of sessionIds)
      await cache
        .delete(sessionId)
        .catch((err: Error) => logger.warn({ event: 'cache.delete_failed', sessionId, err: err.message }));
    logger.info({
      event: previousUserId ? 'identity.moved' : 'identity.linked',
      userId,
      channel: body.channel,
      ...(previousUserId ? { movedFrom: previousUserId } : {}),
      sessions: sessionIds.length,
    });
    return c.json({
      user_id: userId,
      channel: body.channel,
      native_id: nativeId,
      ...(previousUserId ? { moved_from: previousUserId } : {}),
      sessions_moved: sessionIds.length,
    });
  });

  app.delete('/api/admin/users/:id/identities/:channel/:nativeId', admin, async (c) => {
    const userId = userIdParam(c);
    const parsedChannel = channel.safeParse(c.req.param('channel'));
    if (!parsedChannel.success)
      throw new ApiError(400, 'invalid_request', parsedChannel.error.issues[0]?.message ?? 'unknown channel');
    const nativeId = normalized(parsedChannel.data, c.req.param('nativeId') ?? '');
    const removed = await unlinkIdentity(db, { userId, channel: parsedChannel.data, nativeId });
    if (!removed)
      throw new ApiError(
        404,
        'not_found',
        `user ${userId} has no ${parsedChannel.data} identity "${nativeId}"`,
      );
    logger.info({ event: 'identity.unlinked', userId, channel: parsedChannel.data });
    return c.json({ user_id: userId, channel: parsedChannel.data, native_id: nativeId, unlinked: true });
  });
  return app;
}
