import { Hono, type MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { type OutboundService, requestHash, SendRequestSchema } from '../outbound/service.ts';
import { type AgentRecord, servesBot } from '../store/agents.ts';
import type { Db } from '../store/db.ts';
import { type AdminGuardOptions, AdminTokenCheck } from './admin-auth.ts';
import { authenticateOperatorOrAgent } from './agent-auth.ts';
import type { ProxySettings } from './client-address.ts';
import { ApiError, readJson } from './errors.ts';

const Params = z.object({ id: z.uuid() });

/** Who sends: the operator (ADMIN_TOKEN, every bot), or a supervisor or admin agent for the bots they serve. */
export type Sender = { agent?: AgentRecord };
export type SenderEnv = { Variables: { sender: Sender } };
type Env = SenderEnv;

export function requireSender(
  db: Db,
  admin: AdminGuardOptions,
  proxy: ProxySettings,
): MiddlewareHandler<Env> {
  const adminToken = new AdminTokenCheck(admin);
  return async (c, next) => {
    const who = await authenticateOperatorOrAgent(c, db, adminToken, proxy);
    if (who.kind === 'operator') {
      c.set('sender', {});
      await next();
      return;
    }
    const { agent } = who;
    if (agent.role !== 'supervisor' && agent.role !== 'admin')
      throw new ApiError(403, 'forbidden', 'sending messages first takes a supervisor or an admin');
    c.set('sender', { agent });
    await next();
  };
}

export function checkBot(sender: Sender, bot: string): void {
  if (sender.agent && !servesBot(sender.agent, bot))
    throw new ApiError(403, 'forbidden', `you do not serve bot "${bot}"`);
}

function messageId(raw: string): string {
  const parsed = Params.safeParse({ id: raw });
  if (!parsed.success) throw new ApiError(404, 'not_found', 'there is no message with that id');
  return parsed.data.id;
}

/** `/api/admin/messages`: messages the business sends first (mounted with `app.route`). */
export function outboundMessageRoutes(deps: {
  db: Db;
  /** ADMIN_TOKEN and its guess throttle. */
  admin: AdminGuardOptions;
  /** TRUST_PROXY and PUBLIC_URL: the console's own origin. */
  proxy: ProxySettings;
  service: OutboundService;
}) {
  const { db, service } = deps;
  const app = new Hono<Env>();
  app.use(requireSender(db, deps.admin, deps.proxy));

  app.post('/', async (c) => {
    const request = await readJson(c, SendRequestSchema);
    checkBot(c.get('sender'), request.bot);
    const { answer, replayed } = await service.send(request, requestHash(request));
    return c.json(answer, replayed ? 200 : 202);
  });

  app.get('/:id', async (c) => {
    const id = messageId(c.req.param('id'));
    const found = await service.find(id);
    if (!found) throw new ApiError(404, 'not_found', 'there is no message with that id');
    checkBot(c.get('sender'), found.bot);
    return c.json(await service.status(id));
  });

  app.delete('/:id', async (c) => {
    const id = messageId(c.req.param('id'));
    const found = await service.find(id);
    if (!found) throw new ApiError(404, 'not_found', 'there is no message with that id');
    checkBot(c.get('sender'), found.bot);
    const outcome = await service.cancel(id);
    if (outcome === 'sent') throw new ApiError(409, 'already_sent', 'the message has already been sent');
    return c.body(null, 204);
  });
  return app;
}
