import type { Hono } from 'hono';
import { announceAccessChange } from '../agents/access.ts';
import { agentForToken } from '../agents/accounts.ts';
import { erasureServices } from '../hub/erasure-services.ts';
import type { HubServices } from '../hub/services.ts';
import { inboxQueueStatus } from '../queue/lane-status.ts';
import { inboxCounts } from '../store/inbox.ts';
import { countActiveSessions } from '../store/sessions.ts';
import { adminRoutes } from './admin-api.ts';
import type { AdminGuardOptions } from './admin-auth.ts';
import { agentAdminRoutes } from './agent-admin-api.ts';
import { agentRoutes } from './agent-api.ts';
import { createApp } from './app.ts';
import { authRoutes } from './auth-api.ts';
import { BROADCASTS_PATH, broadcastRoutes } from './broadcast-api.ts';
import type { ProxySettings } from './client-address.ts';
import { consoleRoutes } from './console.ts';
import { dashboardRoutes } from './dashboard-api.ts';
import { fileRoutes, UPLOAD_PATH } from './files-api.ts';
import { identityRoutes } from './identity-api.ts';
import { openApiRoutes } from './openapi/routes.ts';
import { type Check, type HubState, opsRoutes } from './ops-api.ts';
import { outboundMessageRoutes } from './outbound-api.ts';

/** Sessions with activity this recent count as active in `/metrics`. */
const ACTIVE_WINDOW_MS = 30 * 60_000;

/**
 * The hub's HTTP application: the shell (`app.ts`: JSON errors, body limit, 405), then every
 * route group as a Hono sub-app mounted with `app.route`, then the adapters' own routes.
 *
 * A new route group is one file in `src/http/` exporting `xRoutes(deps): Hono` and one mount
 * line below. Order matters where paths overlap: a group mounted earlier answers first (the agent
 * and outbound groups under `/api/admin/...` come before the operator guard on `/api/admin/*`;
 * the adapters come last, the web widget's `/:bot` being the most general path).
 *
 * Every role serves the ops routes (`/healthz`, `/readyz`, `/metrics`); only gateways serve the rest.
 */
export function assembleHttp(services: HubServices, life: { state: () => HubState }): Hono {
  const {
    config,
    logger,
    metrics,
    db,
    bots,
    ingress,
    backend,
    adapters,
    handoff,
    outbound,
    broadcasts,
    signIn,
  } = services;
  const { redis, queue, cache, bus, rateLimiter } = backend;
  const app = createApp({
    logger,
    maxBodyBytes: config.maxBodyBytes,
    streamingPaths: [UPLOAD_PATH],
    // A broadcast's `to` list (up to 100,000 numbers) is larger than any other request.
    pathLimits: { [BROADCASTS_PATH]: config.broadcastMaxBodyBytes },
    stopping: services.stopping.signal,
  });

  // What this process needs to take requests gates readiness; a channel's own connection to a
  // third party (IMAP, WhatsApp Web) is only reported: see `opsRoutes`.
  const checks: Check[] = [
    { name: 'database', check: () => db.ping() },
    { name: 'queue', check: () => queue.ping() },
    ...(redis ? [{ name: 'redis', check: async () => void (await redis.ping()) }] : []),
  ];
  const channels: Check[] = adapters
    .filter((a) => a.ping)
    .map((a) => ({ name: a.channel, check: () => a.ping!() }));
  app.route(
    '/',
    opsRoutes({
      state: life.state,
      checks,
      channels,
      metrics,
      logger,
      ...(config.metricsToken ? { metricsToken: config.metricsToken } : {}),
      async refresh() {
        metrics.queueDepth.set(await queue.depth());
        const active = await countActiveSessions(db, ACTIVE_WINDOW_MS);
        metrics.activeSessions.reset();
        for (const row of active)
          metrics.activeSessions.set({ bot: row.bot, channel: row.channel }, row.count);
        metrics.schedulerFailedJobs.set(await backend.scheduler.countFailed());
      },
    }),
  );
  if (services.role === 'worker') return app;

  const { adminToken, trustProxy } = config;
  const proxy: ProxySettings = { trustProxy, publicUrl: config.publicUrl };
  // One guess throttle for ADMIN_TOKEN on every route that takes it (counted per address in `rateLimiter`).
  const admin: AdminGuardOptions = {
    adminToken,
    rateLimiter,
    trustProxy,
    isAgentToken: async (token) => (await agentForToken(db, token)) !== undefined,
  };
  if (signIn) app.route('/', authRoutes({ signIn, rateLimiter, config }));
  app.route('/', identityRoutes({ db, cache, logger, admin }));
  // Before the operator routes: supervisors and admins see the dashboard, where only ADMIN_TOKEN opens the rest of /api/admin.
  app.route(
    '/api/admin',
    dashboardRoutes({
      db,
      admin,
      proxy,
      configDir: config.configDir,
      botNames: () => bots.names(),
      // The shared queues' lanes and wake jobs with Redis; embedded, the inbox's counts.
      queueStatus: async () =>
        queue.status
          ? [await queue.status(), ...(services.outbox.status ? [await services.outbox.status()] : [])]
          : [inboxQueueStatus(await inboxCounts(db))],
      schedulerStatus: async () => ({
        driver: backend.scheduler.driver,
        failed: await backend.scheduler.countFailed(),
      }),
    }),
  );
  // Before the operator routes: an admin agent may manage agents, where only ADMIN_TOKEN opens the rest of /api/admin.
  app.route(
    '/api/admin/agents',
    agentAdminRoutes({
      db,
      logger,
      admin,
      proxy,
      onAgentGone: async (id) => void (await handoff.agentGone(id)),
      onAccessChanged: (id) => announceAccessChange(bus, logger, id),
    }),
  );
  app.route('/api/admin/messages', outboundMessageRoutes({ db, admin, proxy, service: outbound }));
  app.route(BROADCASTS_PATH, broadcastRoutes({ db, admin, proxy, service: broadcasts }));
  app.route(
    '/',
    adminRoutes({
      idleTimeoutMs: (bot, channel) => bots.rules(bot, channel).idleTimeoutMs,
      config,
      admin,
      db,
      cache,
      ingress,
      logger,
      ...erasureServices(backend, config.redisPrefix),
    }),
  );
  app.route(
    '/api/agent',
    agentRoutes({
      config,
      db,
      bus,
      handoff,
      logger,
      files: services.files,
      stopping: services.stopping.signal,
    }),
  );
  app.route('/', consoleRoutes());
  app.route(
    '/',
    fileRoutes({
      db,
      files: services.files,
      bots,
      logger,
      rateLimiter,
      config,
      requestTokens: adapters.flatMap((a) => (a.requestToken ? [(c) => a.requestToken!(c)] : [])),
    }),
  );
  app.route('/', openApiRoutes());
  for (const adapter of adapters) {
    const routes = adapter.routes?.();
    if (routes) app.route('/', routes);
  }
  return app;
}
