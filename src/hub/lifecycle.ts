import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import { hasPendingAttachments, pendingAttachments } from '../files/pending.ts';
import type { HubState } from '../http/ops-api.ts';
import { IDLE_SWEEP_JOB } from '../lifecycle/idle-sweep.ts';
import { ANALYZE_JOB } from '../store/analyze.ts';
import { turnSpan } from '../telemetry/envelope-spans.ts';
import { PRUNE_EVERY_MS, runPrune } from './prune.ts';
import type { HubServices } from './services.ts';

/** Envelope ids are remembered this long for deduplication after they were processed. */
export const DEDUPE_WINDOW_MS = 24 * 3_600_000;
/** The expiry job's first run waits at most this long after start, so a restart storm does not begin with cleanup. */
const EXPIRY_FIRST_RUN_MS = 30_000;

export interface HubLifecycle {
  /** `started` from the end of a successful start() until stop() is called (`/readyz`). */
  readonly state: HubState;
  /** Starts serving and working; resolves with the port it listens on. */
  start(): Promise<{ port: number }>;
  /** Stops taking work, finishes what is in flight, closes every connection. Once. */
  stop(): Promise<void>;
}

/**
 * Starting and stopping a built hub: every role listens (workers serve the ops routes);
 * gateways attach and start the adapters' inbound connections; workers consume the queue, send
 * the outbox and run the scheduled jobs. Stopping undoes it in reverse, then closes the services.
 */
export function hubLifecycle(services: HubServices, app: Hono): HubLifecycle {
  const { config, role, logger, db, bots, adapters, engine, outbox, knowledge, webhooks } = services;
  const { queue, scheduler, bus, cache } = services.backend;
  const serves = role === 'all' || role === 'gateway';
  const works = role === 'all' || role === 'worker';
  let server: Server | undefined;
  let pruneTimer: NodeJS.Timeout | undefined;
  let stopped = false;
  let state: HubState = 'starting';
  let starting: Promise<unknown> | undefined;

  async function startServing(): Promise<{ port: number }> {
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
      const fetchPending = pendingAttachments({
        adapters,
        files: services.files,
        bots,
        db,
        logger,
        retryAttempts: config.attachmentRetryAttempts,
        retryDelaysMs: config.attachmentRetryDelaysMs,
        metrics: services.metrics,
      });
      await queue.consume(async (envelope, info) => {
        const outcome = await turnSpan(
          envelope,
          async (trace) =>
            // Most envelopes carry no file still at the platform: no fetch step (an await) for them.
            engine.handle(
              hasPendingAttachments(envelope) ? await fetchPending(envelope, info.redelivered) : envelope,
              {
                checkDuplicate: info.redelivered,
                trustCachedState: info.followsInLane,
                shareStateLater: info.followedInLane,
                mayHold: info.mayHold ?? false,
                trace,
              },
            ),
          info.job,
        );
        return outcome === 'held' ? 'held' : undefined;
      });
      await outbox.start();
      const { redis } = services.backend;
      pruneTimer = setInterval(() => {
        runPrune({
          db,
          ...(redis ? { redis: { connection: redis, prefix: config.redisPrefix } } : {}),
          dedupeWindowMs: DEDUPE_WINDOW_MS,
          deadLetterKeepMs: config.deadLetterKeepMs,
          logger,
        }).catch((err: Error) => logger.warn({ event: 'prune.failed', err: err.message }));
      }, PRUNE_EVERY_MS);
      pruneTimer.unref();
      // Every worker declares it: there is still one schedule, each run in one worker.
      await scheduler.repeat('expiry', 'expiry', config.expiryIntervalMs, {
        firstDelayMs: Math.min(EXPIRY_FIRST_RUN_MS, config.expiryIntervalMs),
      });
      await scheduler.repeat(IDLE_SWEEP_JOB, IDLE_SWEEP_JOB, config.idleSweepIntervalMs);
      if (config.dbAnalyzeIntervalMs > 0)
        await scheduler.repeat(ANALYZE_JOB, ANALYZE_JOB, config.dbAnalyzeIntervalMs);
      await services.handoffJobs.startJobs();
      // The webhook dispatcher runs before the scheduler hands it the lanes' retry jobs (it hands
      // on a job that comes while it is not running; see WebhookDispatcher).
      webhooks.start();
      await scheduler.start();
    }
    logger.info({
      event: 'hub.started',
      port,
      database: db.kind,
      queue: queue.driver,
      bots: bots.names(),
      channels: adapters.map((a) => a.channel),
    });
    if (!stopped) state = 'started';
    return { port };
  }

  return {
    get state() {
      return state;
    },

    start() {
      const started = startServing();
      starting = started;
      return started;
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      state = 'stopping';
      // A signal during the start (the server listens, and answers `/healthz`, before the rest
      // has started): the start finishes, or fails, first, so nothing it is opening meets a
      // closed database.
      await starting?.catch(() => undefined);
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
      await services.close();
      logger.info({ event: 'hub.stopped' });
    },
  };
}
