import { setMaxListeners } from 'node:events';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadSignInVerifiers } from '../auth/sign-in-config.ts';
import { createSignIn, type SignIn } from '../auth/sign-in-service.ts';
import { type Backend, createBackend } from '../backend.ts';
import { unknownChannelBots } from '../channels/channel-bots.ts';
import {
  createAdapterStore,
  createDeliveredThrough,
  createHistoryReader,
  createTokenSessions,
} from '../channels/host-services.ts';
import { BOTS_DIR, type BotRegistry, loadBots } from '../config/bots.ts';
import { ConfigError, type HubConfig, type Role } from '../config/env.ts';
import { Delivery } from '../delivery/delivery.ts';
import type { Outbox } from '../delivery/outbox.ts';
import { registerDeliveryRetries } from '../delivery/retry-job.ts';
import type { ChannelSender } from '../delivery/sender.ts';
import { DependencyError, databaseDependency, untilAnswers } from '../dependencies.ts';
import { SessionEngine } from '../engine/engine.ts';
import type { Channel } from '../envelope.ts';
import { BotMedia } from '../files/bot-media.ts';
import { FileStore } from '../files/store.ts';
import { engineHandoff } from '../handoff/engine-side.ts';
import { AgentEventLog } from '../handoff/events.ts';
import { HandoffService } from '../handoff/service.ts';
import { createIngress } from '../ingress.ts';
import { KnowledgeIndexer } from '../kb/indexer.ts';
import { type ExpiryReport, runExpiry } from '../lifecycle/expiry.ts';
import { IDLE_SWEEP_JOB, sweepIdleSessions } from '../lifecycle/idle-sweep.ts';
import { LlmService, llmDialogServices } from '../llm/service.ts';
import type { Logger } from '../logger.ts';
import { createMetrics, type Metrics } from '../metrics.ts';
import { BroadcastService } from '../outbound/broadcasts.ts';
import { OutboundService } from '../outbound/service.ts';
import type { AdapterHost, ChannelAdapter, Ingress } from '../ports.ts';
import { ANALYZE_JOB, analyzeStaleTables } from '../store/analyze.ts';
import type { Db } from '../store/db.ts';
import { applyPlatformStatus } from '../store/messages.ts';
import { migrate, requireMigrated } from '../store/migrate.ts';
import {
  createEventWebhooks,
  type EventWebhooks,
  unsetWebhookSecretProblem,
  unsetWebhookSecrets,
} from '../webhooks/webhooks.ts';
import { erasureServices } from './erasure-services.ts';

/**
 * Everything a hub is made of, built and wired, nothing started: the database (migrated), the
 * backend's moving parts (memory or Redis), and the services on top — delivery, the engine,
 * handoff, outbound messages, sign-in — and the adapters, set up with their host.
 */
export interface HubServices {
  readonly config: HubConfig;
  readonly role: Role;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly bots: BotRegistry;
  readonly db: Db;
  readonly backend: Backend;
  readonly adapters: readonly ChannelAdapter[];
  readonly ingress: Ingress;
  readonly engine: SessionEngine;
  readonly outbox: Outbox;
  readonly knowledge: KnowledgeIndexer;
  readonly handoff: HandoffService;
  /** The engine's side of handoff: its scheduled jobs start with the workers. */
  readonly handoffJobs: ReturnType<typeof engineHandoff>;
  readonly outbound: OutboundService;
  readonly broadcasts: BroadcastService;
  /** The sign-in upgrade: gateways only. */
  readonly signIn?: SignIn;
  readonly webhooks: EventWebhooks;
  /** Every file a person or a bot sent (`src/files/`). */
  readonly files: FileStore;
  /**
   * Aborted by the stop, first thing: the HTTP shell answers new requests 503, and requests that
   * wait (a chat for its replies, an agent's event stream) answer or end (AdapterHost.stopping).
   */
  readonly stopping: AbortController;
  /** Runs the expiry job now. */
  expire(): Promise<ExpiryReport>;
  /** Closes what was opened here (the backend's connections, the database), last first. */
  close(): Promise<void>;
}

/**
 * The database, answering: it is asked one question first (bounded by DEPENDENCY_TIMEOUT_SECONDS),
 * so that a wrong DATABASE_URL (refused, no such database, a wrong password) stops a start or a
 * command with a DependencyError naming it and its setting, rather than with the driver's words
 * from deep inside the first query. `waitForIt` (a start: the server may be starting too): asked
 * again while it does not answer, until then.
 */
export async function openDatabase(
  config: HubConfig,
  logger: Logger,
  options: { waitForIt?: boolean } = {},
): Promise<Db> {
  const db = config.databaseUrl
    ? (await import('../store/postgres.ts')).openPostgres({
        url: config.databaseUrl,
        poolSize: config.databasePoolSize,
        logger,
      })
    : await openEmbedded(config.dataDir);
  try {
    await untilAnswers(databaseDependency(config, db), {
      timeoutMs: config.dependencyTimeoutMs,
      retry: options.waitForIt ?? false,
    });
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  return db;
}

/** The embedded database; one that cannot be opened (but for another process holding it) names DATA_DIR. */
async function openEmbedded(dataDir: string): Promise<Db> {
  const { DataDirLockedError, openPglite } = await import('../store/pglite.ts');
  try {
    return await openPglite(dataDir);
  } catch (err) {
    if (err instanceof DataDirLockedError) throw err;
    throw new DependencyError(
      `the embedded database in ${dataDir} could not be opened (DATA_DIR): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** A ConfigError naming each bot, endpoint and variable, when a webhook's signing secret is unset. */
function refuseUnsetWebhookSecrets(bots: BotRegistry): void {
  const unset = unsetWebhookSecrets(
    bots.names().map((name) => bots.get(name)),
    process.env,
  );
  if (unset.length === 0) return;
  throw new ConfigError(
    unset
      .map((u) => {
        const { field, message } = unsetWebhookSecretProblem(u);
        return `bot "${u.bot}": ${field} ${message}`;
      })
      .join('; '),
  );
}

/** A ConfigError naming each setting that names a bot that does not exist, and the bot. */
function refuseUnknownChannelBots(adapters: readonly ChannelAdapter[], bots: BotRegistry): void {
  const unknown = unknownChannelBots(adapters, (bot) => bots.has(bot));
  if (unknown.length > 0) throw new ConfigError(unknown.map((p) => `${p.field}: ${p.message}`).join('; '));
}

export async function createServices(options: {
  config: HubConfig;
  role: Role;
  logger: Logger;
  adapters: readonly ChannelAdapter[];
}): Promise<HubServices> {
  const { config, role, logger, adapters } = options;
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
  // A channel answering with a bot that is not there would fail every message it takes.
  refuseUnknownChannelBots(adapters, bots);
  const serves = role === 'all' || role === 'gateway';
  // Sign-in keys are read once, here, so that a bad one stops the start with a ConfigError.
  const verifiers = serves ? await loadSignInVerifiers(config, bots) : undefined;
  // Workers sign and send the event webhooks: one whose secret is missing would fail every event
  // for WEBHOOK_MAX_AGE_SECONDS, then drop it. Gateways only record the events.
  if (role === 'all' || role === 'worker') refuseUnsetWebhookSecrets(bots);
  const db = await openDatabase(config, logger, { waitForIt: true });
  const closers: (() => Promise<unknown>)[] = [() => db.close()];
  const close = async () => {
    for (const closer of closers.reverse()) await closer().catch(() => undefined);
  };
  try {
    // MIGRATE_ON_START=false: a separate `switchboard migrate` runs before the processes are
    // rolled (README, "Upgrading"); a start that finds one pending refuses.
    if (config.migrateOnStart) await migrate(db, logger);
    else await requireMigrated(db);

    const backend = await createBackend(config, { db, logger, metrics });
    closers.push(() => backend.close());
    const { rateLimiter, cache, bus, scheduler } = backend;
    const senders = new Map<Channel, ChannelSender>();
    for (const adapter of adapters) if (adapter.sender) senders.set(adapter.channel, adapter.sender);
    const delivery = new Delivery({
      db,
      logger,
      metrics,
      senders,
      maxAttempts: config.deliveryAttempts,
      giveUpAfterMs: config.deliveryGiveUpAfterMs,
      retryBaseMs: config.deliveryRetryBaseMs,
      retryCapMs: config.deliveryRetryCapMs,
      rateLimiter,
      scheduler,
    });
    const outbox = backend.createOutbox(delivery);
    registerDeliveryRetries(scheduler, outbox);

    const files = await new FileStore(db, config.publicUrl).init();
    llm = await LlmService.create({ db, bus, logger, bots, metrics });
    const knowledge = new KnowledgeIndexer({ db, logger, metrics, sources: llm.knowledgeSources() });
    const ingress = createIngress({ queue: backend.queue, metrics, logger, bots, rateLimiter });
    const handoff = new HandoffService({
      db,
      ingress,
      bots,
      logger,
      events: new AgentEventLog(db, bus, logger),
      sendThroughLane: async (envelope) => void (await ingress.accept(envelope)),
    });
    const handoffJobs = engineHandoff({ db, bots, scheduler, service: handoff, logger });
    handoffJobs.registerJobs();
    const engine = new SessionEngine({
      handoff: handoffJobs,
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
      files,
      media: new BotMedia({
        files,
        botsDir: path.join(config.configDir, BOTS_DIR),
        fetchTimeoutMs: config.mediaFetchTimeoutMs,
        allowHosts: config.mediaFetchAllowHosts,
      }),
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
    const broadcasts = new BroadcastService({
      db,
      bots,
      scheduler,
      logger,
      outbound,
      adapters: new Map(adapters.map((a) => [a.channel, a])),
      rateLimits: config.broadcastRateLimits,
      progressMs: config.webhookBroadcastProgressMs,
    });
    broadcasts.register();

    const signIn = verifiers ? createSignIn({ db, cache, bus, verifiers, logger }) : undefined;
    const stopping = new AbortController();
    // Every request that waits listens to it (and stops listening when it ends): no leak to warn of.
    setMaxListeners(0, stopping.signal);
    const common: Omit<AdapterHost, 'store'> = {
      signIn,
      stopping: stopping.signal,
      config,
      logger,
      metrics,
      bots,
      ingress,
      bus,
      sessions: createTokenSessions({ db, ingress, bots, logger }),
      history: createHistoryReader(db),
      files,
      rateLimiter,
      async applyStatus(channelMessageId, status, error) {
        await applyPlatformStatus(db, channelMessageId, status, error);
      },
      deliveredThrough: createDeliveredThrough(db),
    };
    // Each adapter gets the same services and a store of its own.
    for (const adapter of adapters)
      await adapter.setup?.({ ...common, store: createAdapterStore(db, adapter.channel) });

    const expire = () =>
      runExpiry({
        db,
        bots,
        cache,
        logger,
        agentEventsKeepMs: config.agentEventsKeepMs,
        deadLetterKeepMs: config.deadLetterKeepMs,
        ...(config.identifiedUserRetentionMs === undefined
          ? {}
          : {
              identifiedUsers: {
                retentionMs: config.identifiedUserRetentionMs,
                erasure: erasureServices(backend, config.redisPrefix),
              },
            }),
      });
    scheduler.handle('expiry', async () => {
      await expire();
    });
    scheduler.handle(IDLE_SWEEP_JOB, async () => {
      await sweepIdleSessions({ db, bots, ingress, logger });
    });
    // One worker at a time (a repeating job): see src/store/analyze.ts. A schedule left from a
    // start with DB_ANALYZE_SECONDS set runs on, and does nothing once it is 0.
    scheduler.handle(ANALYZE_JOB, async () => {
      if (config.dbAnalyzeIntervalMs === 0) return;
      for (const t of await analyzeStaleTables(db, { minIntervalMs: config.dbAnalyzeMinIntervalMs })) {
        metrics.tablesAnalyzed.inc({ table: t.table });
        logger.info({ event: 'db.analyzed', ...t });
      }
    });
    const webhooks = createEventWebhooks({ db, scheduler, logger, bots, config });

    return {
      config,
      role,
      logger,
      metrics,
      bots,
      db,
      backend,
      adapters,
      ingress,
      engine,
      outbox,
      knowledge,
      handoff,
      handoffJobs,
      outbound,
      broadcasts,
      ...(signIn ? { signIn } : {}),
      webhooks,
      files,
      stopping,
      expire,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
