import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import { loadSignInVerifiers, type SignInVerifiers } from './auth/sign-in-config.ts';
import { createSignIn } from './auth/sign-in-service.ts';
import { createBackend } from './backend.ts';
import type { Bus } from './bus/bus.ts';
import {
  createDeliveredThrough,
  createHistoryReader,
  createTokenSessions,
} from './channels/host-services.ts';
import { BOTS_DIR, type BotRegistry, loadBots } from './config/bots.ts';
import { adminTokenProblem, ConfigError, type HubConfig, type Role } from './config/env.ts';
import { Delivery } from './delivery/delivery.ts';
import type { ChannelSender } from './delivery/sender.ts';
import { SessionEngine } from './engine/engine.ts';
import type { Channel } from './envelope.ts';
import { engineHandoff } from './handoff/engine-side.ts';
import { AgentEventLog } from './handoff/events.ts';
import { HandoffService } from './handoff/service.ts';
import { mountAdminApi } from './http/admin-api.ts';
import { agentAdminRoutes } from './http/agent-admin-api.ts';
import { agentRoutes } from './http/agent-api.ts';
import { createApp } from './http/app.ts';
import { mountAuthApi } from './http/auth-api.ts';
import { mountConsole } from './http/console.ts';
import { mountIdentityApi } from './http/identity-api.ts';
import { type Check, mountOpsApi } from './http/ops-api.ts';
import { outboundMessageRoutes } from './http/outbound-api.ts';
import { createIngress } from './ingress.ts';
import { KnowledgeIndexer } from './kb/indexer.ts';
import { type ExpiryReport, runExpiry } from './lifecycle/expiry.ts';
import { IDLE_SWEEP_JOB, sweepIdleSessions } from './lifecycle/idle-sweep.ts';
import { LlmService, llmDialogServices } from './llm/service.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { OutboundService } from './outbound/service.ts';
import type { AdapterHost, ChannelAdapter, Ingress } from './ports.ts';
import { eraseQueueTraces } from './queue/erased-traces.ts';
import type { InboundQueue } from './queue/queue.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import type { Db } from './store/db.ts';
import { pruneInbox } from './store/inbox.ts';
import { applyPlatformStatus } from './store/messages.ts';
import { migrate } from './store/migrate.ts';
import { openPglite } from './store/pglite.ts';
import { openPostgres } from './store/postgres.ts';
import { countActiveSessions } from './store/sessions.ts';
import { createEventWebhooks } from './webhooks/webhooks.ts';

/** Envelope ids are remembered this long for deduplication after they were processed. */
export const DEDUPE_WINDOW_MS = 24 * 3_600_000;
const PRUNE_EVERY_MS = 15 * 60_000;
const ACTIVE_WINDOW_MS = 30 * 60_000;
/** The expiry job's first run waits at most this long after start, so a restart storm does not begin with cleanup. */
const EXPIRY_FIRST_RUN_MS = 30_000;

export interface HubOptions {
  config: HubConfig;
  role?: Role;
  adapters?: ChannelAdapter[];
  logger?: Logger;
}

export interface Hub {
  readonly config: HubConfig;
  readonly role: Role;
  readonly app: Hono;
  readonly db: Db;
  readonly bots: BotRegistry;
  readonly queue: InboundQueue;
  readonly ingress: Ingress;
  readonly engine: SessionEngine;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly bus: Bus;
  /**
   * Work that runs later (fires once across every worker, survives restarts). Register handlers
   * with `scheduler.handle` before `start()`; workers run them, every role may schedule.
   */
  readonly scheduler: Scheduler;
  /** Runs the expiry job now (it also runs on its own every EXPIRY_INTERVAL_SECONDS in workers). */
  expire(): Promise<ExpiryReport>;
  /** Starts serving and working; resolves with the port it listens on. */
  start(): Promise<{ port: number }>;
  /** Stops taking work, finishes what is in flight, closes every connection. */
  stop(): Promise<void>;
}

export async function openDatabase(config: HubConfig, logger: Logger): Promise<Db> {
  return config.databaseUrl
    ? openPostgres({ url: config.databaseUrl, poolSize: config.databasePoolSize, logger })
    : openPglite(config.dataDir);
}

export async function createHub(options: HubOptions): Promise<Hub> {
  const { config } = options;
  const role = options.role ?? 'all';
  const logger = options.logger ?? createLogger(config.logLevel, { role });
  const adapters = options.adapters ?? [];
  const adminProblem = config.adminToken === undefined ? undefined : adminTokenProblem(config.adminToken);
  if (adminProblem) throw new ConfigError(`ADMIN_TOKEN ${adminProblem}`);
  if (role !== 'all' && !config.redisUrl) {
    throw new ConfigError(
      `--role ${role} shares work through Redis: set REDIS_URL (and DATABASE_URL), or use --role all`,
    );
  }
  if (role !== 'all' && !config.databaseUrl) {
    throw new ConfigError(`--role ${role} needs a shared PostgreSQL: set DATABASE_URL`);
  }

  const metrics = createMetrics();
  // Scripts reach the LLM through this; it is made once the database and the bus are there.
  let llm: LlmService | undefined;
  const bots = await loadBots(config.configDir, {
    dialogServices: (_bot, settings) => llmDialogServices(settings, () => llm),
    ruleDefaults: {
      anonymousSessionDays: config.anonymousSessionDays,
      rateLimitPerMinute: config.rateLimitPerMinute,
    },
  });
  if (!existsSync(path.join(config.configDir, BOTS_DIR))) {
    // Only the built-in default bot: almost always CONFIG_DIR pointing at the wrong place.
    logger.warn({ event: 'config.no_bots', dir: path.join(config.configDir, BOTS_DIR) });
  }
  const serves = role === 'all' || role === 'gateway';
  // Sign-in keys are read once, here, so that a bad one stops the start with a ConfigError.
  const verifiers: SignInVerifiers | undefined = serves ? await loadSignInVerifiers(config, bots) : undefined;
  const db = await openDatabase(config, logger);
  const closers: (() => Promise<unknown>)[] = [() => db.close()];
  try {
    await migrate(db, logger);

    const backend = createBackend(config, { db, logger });
    closers.push(() => backend.close());
    const { redis, rateLimiter, cache, bus, queue, scheduler } = backend;
    const senders = new Map<Channel, ChannelSender>();
    for (const adapter of adapters) if (adapter.sender) senders.set(adapter.channel, adapter.sender);
    const delivery = new Delivery({
      db,
      logger,
      metrics,
      senders,
      maxAttempts: config.deliveryAttempts,
      retryBaseMs: config.deliveryRetryBaseMs,
      retryCapMs: config.deliveryRetryCapMs,
      rateLimiter,
    });
    const outbox = backend.createOutbox(delivery);

    llm = await LlmService.create({ db, bus, logger, bots, metrics });
    const knowledge = new KnowledgeIndexer({ db, logger, sources: llm.knowledgeSources() });
    const ingress = createIngress({ queue, metrics, logger, bots, rateLimiter });
    const handoff = new HandoffService({
      db,
      ingress,
      bots,
      logger,
      events: new AgentEventLog(db, bus, logger),
      sendThroughLane: async (envelope) => void (await ingress.accept(envelope)),
    });
    const handoffSide = engineHandoff({ db, bots, scheduler, service: handoff, logger });
    handoffSide.registerJobs();
    const engine = new SessionEngine({
      handoff: handoffSide,
      db,
      cache,
      bus,
      bots,
      delivery,
      outbox,
      metrics,
      logger,
      llm: llm.provider(),
      send: (envelope) => ingress.accept(envelope),
    });

    // Messages the business sends first; every role registers the scheduled-send job.
    const outbound = new OutboundService({
      db,
      bots,
      ingress,
      scheduler,
      logger,
      adapters: new Map(adapters.map((a) => [a.channel, a])),
    });
    outbound.register();

    const signIn = verifiers ? createSignIn({ db, cache, bus, verifiers, logger }) : undefined;
    const host: AdapterHost = {
      signIn,
      config,
      logger,
      metrics,
      bots,
      ingress,
      bus,
      sessions: createTokenSessions({ db, ingress, bots, logger }),
      history: createHistoryReader(db),
      db,
      rateLimiter,
      async applyStatus(channelMessageId, status, error) {
        await applyPlatformStatus(db, channelMessageId, status, error);
      },
      deliveredThrough: createDeliveredThrough(db),
    };
    for (const adapter of adapters) await adapter.setup?.(host);

    const app = createApp({ logger, maxBodyBytes: config.maxBodyBytes });
    const checks: Check[] = [
      { name: 'database', check: () => db.ping() },
      { name: 'queue', check: () => queue.ping() },
      ...(redis ? [{ name: 'redis', check: async () => void (await redis.ping()) }] : []),
      ...adapters.filter((a) => a.ping).map((a) => ({ name: a.channel, check: () => a.ping!() })),
    ];
    mountOpsApi(app, {
      checks,
      metrics,
      logger,
      async refresh() {
        metrics.queueDepth.set(await queue.depth());
        const active = await countActiveSessions(db, new Date(Date.now() - ACTIVE_WINDOW_MS));
        metrics.activeSessions.reset();
        for (const row of active)
          metrics.activeSessions.set({ bot: row.bot, channel: row.channel }, row.count);
      },
    });
    const works = role === 'all' || role === 'worker';
    if (serves) {
      if (signIn) mountAuthApi(app, { signIn, rateLimiter, config });
      mountIdentityApi(app, {
        db,
        cache,
        logger,
        admin: { adminToken: config.adminToken, rateLimiter, trustProxy: config.trustProxy },
      });
      // Before the operator routes: an admin agent may manage agents, where only ADMIN_TOKEN opens the rest of /api/admin.
      app.route(
        '/api/admin/agents',
        agentAdminRoutes({
          db,
          logger,
          adminToken: config.adminToken,
          onAgentGone: async (id) => void (await handoff.agentGone(id)),
        }),
      );
      app.route(
        '/api/admin/messages',
        outboundMessageRoutes({ db, adminToken: config.adminToken, service: outbound }),
      );
      mountAdminApi(app, {
        idleTimeoutMs: (bot, channel) => bots.rules(bot, channel).idleTimeoutMs,
        config,
        db,
        cache,
        ingress,
        logger,
        rateLimiter,
        ...(redis
          ? { eraseQueueTraces: (sessions) => eraseQueueTraces(redis, config.redisPrefix, sessions) }
          : {}),
      });
      app.route('/api/agent', agentRoutes({ config, db, bus, handoff, logger }));
      mountConsole(app);
      for (const adapter of adapters) adapter.routes?.(app);
    }

    let server: Server | undefined;
    let pruneTimer: NodeJS.Timeout | undefined;
    const expire = () => runExpiry({ db, bots, cache, logger });
    scheduler.handle('expiry', async () => {
      await expire();
    });
    scheduler.handle(IDLE_SWEEP_JOB, async () => {
      await sweepIdleSessions({ db, bots, ingress, logger });
    });
    const webhooks = createEventWebhooks({ db, scheduler, logger, bots, config });
    let stopped = false;

    return {
      config,
      role,
      app,
      db,
      bots,
      queue,
      ingress,
      engine,
      metrics,
      logger,
      bus,
      scheduler,
      expire,
      async start() {
        // Every role listens: workers serve /healthz, /readyz and /metrics.
        server = await new Promise<Server>((resolve, reject) => {
          const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () =>
            resolve(s as Server),
          ) as Server;
          s.once('error', reject);
        });
        const address = server.address();
        const port = typeof address === 'object' && address ? address.port : config.port;
        await webhooks.sync();
        if (serves) {
          for (const adapter of adapters) adapter.attach?.(server);
          for (const adapter of adapters) await adapter.start?.();
        }
        if (works) {
          // Knowledge is indexed before the first message is answered, then kept up to date.
          await knowledge.sync();
          knowledge.start();
          await queue.consume(async (envelope, info) => {
            await engine.handle(envelope, {
              checkDuplicate: info.redelivered,
              trustCachedState: info.followsInLane,
              shareStateLater: info.followedInLane,
            });
          });
          await outbox.start();
          pruneTimer = setInterval(() => {
            pruneInbox(db, new Date(Date.now() - DEDUPE_WINDOW_MS)).catch((err: Error) =>
              logger.warn({ event: 'inbox.prune_failed', err: err.message }),
            );
          }, PRUNE_EVERY_MS);
          pruneTimer.unref();
          // Every worker declares it: there is still one schedule, each run in one worker.
          await scheduler.repeat('expiry', 'expiry', config.expiryIntervalMs, {
            firstDelayMs: Math.min(EXPIRY_FIRST_RUN_MS, config.expiryIntervalMs),
          });
          await scheduler.repeat(IDLE_SWEEP_JOB, IDLE_SWEEP_JOB, config.idleSweepIntervalMs);
          await handoffSide.startJobs();
          await scheduler.start();
          webhooks.start();
        }
        logger.info({
          event: 'hub.started',
          port,
          database: db.kind,
          queue: queue.driver,
          bots: bots.names(),
          channels: adapters.map((a) => a.channel),
        });
        return { port };
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        logger.info({ event: 'hub.stopping' });
        if (pruneTimer) clearInterval(pruneTimer);
        if (server) {
          const s = server;
          const closed = new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeIdleConnections?.();
            setTimeout(() => s.closeAllConnections?.(), 5_000).unref();
          });
          // The server takes no new connections now; the ones adapters hold open must end for it to close.
          for (const adapter of adapters)
            await adapter
              .detach?.()
              .catch((err: Error) =>
                logger.warn({ event: 'adapter.detach_failed', channel: adapter.channel, err: err.message }),
              );
          await closed;
        }
        for (const adapter of adapters)
          await adapter
            .stop?.()
            .catch((err: Error) =>
              logger.warn({ event: 'adapter.stop_failed', channel: adapter.channel, err: err.message }),
            );
        await webhooks.stop();
        await scheduler.stop();
        await queue.stop();
        await knowledge.stop();
        await outbox.stop();
        await bus.close();
        await cache.close();
        for (const close of closers.reverse()) await close().catch(() => undefined);
        logger.info({ event: 'hub.stopped' });
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw err;
  }
}
