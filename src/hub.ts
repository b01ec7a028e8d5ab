import type { Hono } from 'hono';
import type { Bus } from './bus/bus.ts';
import type { BotRegistry } from './config/bots.ts';
import { adminTokenProblem, ConfigError, type HubConfig, type Role } from './config/env.ts';
import type { SessionEngine } from './engine/engine.ts';
import { assembleHttp } from './http/assembly.ts';
import { hubLifecycle } from './hub/lifecycle.ts';
import { createServices } from './hub/services.ts';
import type { ExpiryReport } from './lifecycle/expiry.ts';
import { createLogger, type Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { rateLimitChannelsProblem } from './outbound/rate-limit-channels.ts';
import type { ChannelAdapter, Ingress } from './ports.ts';
import type { InboundQueue } from './queue/queue.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import type { Db } from './store/db.ts';

export { DEDUPE_WINDOW_MS } from './hub/lifecycle.ts';
export { openDatabase } from './hub/services.ts';

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
  /** What start() or stop() is doing now, for a stop past its deadline (HubLifecycle.step). */
  readonly step: string | undefined;
}

/** Refuses a configuration this role cannot run with, before anything is opened. */
function checkRole(config: HubConfig, role: Role): void {
  const adminProblem = config.adminToken === undefined ? undefined : adminTokenProblem(config.adminToken);
  if (adminProblem) throw new ConfigError(`ADMIN_TOKEN ${adminProblem}`);
  const metricsProblem =
    config.metricsToken === undefined ? undefined : adminTokenProblem(config.metricsToken);
  if (metricsProblem) throw new ConfigError(`METRICS_TOKEN ${metricsProblem}`);
  const rateLimitProblem = rateLimitChannelsProblem(config.broadcastRateLimits);
  if (rateLimitProblem) throw new ConfigError(`BROADCAST_RATE_LIMITS: ${rateLimitProblem}`);
  if (role !== 'all' && !config.redisUrl) {
    throw new ConfigError(
      `--role ${role} shares work through Redis: set REDIS_URL (and DATABASE_URL), or use --role all`,
    );
  }
  if (role !== 'all' && !config.databaseUrl) {
    throw new ConfigError(`--role ${role} needs a shared PostgreSQL: set DATABASE_URL`);
  }
}

/**
 * A hub in three steps: its services (`hub/services.ts`: database, backend, engine, adapters set
 * up), its HTTP application (`http/assembly.ts`), and its lifecycle (`hub/lifecycle.ts`).
 */
export async function createHub(options: HubOptions): Promise<Hub> {
  const { config } = options;
  const role = options.role ?? 'all';
  const logger = options.logger ?? createLogger(config.logLevel, { role });
  checkRole(config, role);
  const services = await createServices({ config, role, logger, adapters: options.adapters ?? [] });
  let app: Hono;
  try {
    // `lifecycle` is made below; `/readyz` asks it only once requests come.
    app = assembleHttp(services, { state: () => lifecycle.state });
  } catch (err) {
    await services.close();
    throw err;
  }
  const lifecycle = hubLifecycle(services, app);
  const { backend } = services;
  return {
    config,
    role,
    app,
    db: services.db,
    bots: services.bots,
    queue: backend.queue,
    ingress: services.ingress,
    engine: services.engine,
    metrics: services.metrics,
    logger,
    bus: backend.bus,
    scheduler: backend.scheduler,
    expire: services.expire,
    start: lifecycle.start,
    stop: lifecycle.stop,
    get step() {
      return lifecycle.step;
    },
  };
}
