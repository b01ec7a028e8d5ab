import { Hono } from 'hono';
import { z } from 'zod';
import { BroadcastRequestSchema, type BroadcastService } from '../outbound/broadcasts.ts';
import { requestHash } from '../outbound/service.ts';
import { EVERY_BOT } from '../store/agents.ts';
import type { Db } from '../store/db.ts';
import type { AdminGuardOptions } from './admin-auth.ts';
import type { ProxySettings } from './client-address.ts';
import { ApiError, readJson } from './errors.ts';
import { checkBot, requireSender, type SenderEnv } from './outbound-api.ts';

const Params = z.object({ id: z.uuid() });

/** Where the routes are mounted; its body limit is BROADCAST_MAX_BODY_BYTES, not MAX_BODY_BYTES. */
export const BROADCASTS_PATH = '/api/admin/broadcasts';

/**
 * `/api/admin/broadcasts`: one message to many (mounted with `app.route`). The same senders as
 * `/api/admin/messages`: ADMIN_TOKEN, or a supervisor or admin agent for the bots they serve.
 */
export function broadcastRoutes(deps: {
  db: Db;
  /** ADMIN_TOKEN and its guess throttle. */
  admin: AdminGuardOptions;
  /** TRUST_PROXY and PUBLIC_URL: the console's own origin. */
  proxy: ProxySettings;
  service: BroadcastService;
}) {
  const { service } = deps;
  const app = new Hono<SenderEnv>();
  app.use(requireSender(deps.db, deps.admin, deps.proxy));

  app.post('/', async (c) => {
    const request = await readJson(c, BroadcastRequestSchema);
    checkBot(c.get('sender'), request.bot);
    const { answer, replayed } = await service.start(request, requestHash(request));
    return c.json(answer, replayed ? 200 : 202);
  });

  app.get('/', async (c) => {
    const agent = c.get('sender').agent;
    const bots = agent && !agent.bots.includes(EVERY_BOT) ? agent.bots : undefined;
    return c.json({ broadcasts: await service.list(bots) });
  });

  app.get('/:id', async (c) => {
    const parsed = Params.safeParse({ id: c.req.param('id') });
    const found = parsed.success ? await service.find(parsed.data.id) : undefined;
    if (!found) throw new ApiError(404, 'not_found', 'there is no broadcast with that id');
    checkBot(c.get('sender'), found.bot);
    return c.json(await service.progress(found.id));
  });
  return app;
}
