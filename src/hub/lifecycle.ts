import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import {
  bounded,
  type Dependency,
  DependencyError,
  databaseDependency,
  formatSeconds,
  redisDependency,
  untilAnswers,
} from '../dependencies.ts';
import { setAsideApology } from '../engine/set-aside.ts';
import { hasPendingAttachments, pendingAttachments } from '../files/pending.ts';
import { answerClientErrorsAsJson } from '../http/client-errors.ts';
import { type RequestDrain, trackRequests } from '../http/drain.ts';
import type { HubState } from '../http/ops-api.ts';
import { IDLE_SWEEP_JOB } from '../lifecycle/idle-sweep.ts';
import { ANALYZE_JOB } from '../store/analyze.ts';
import { databaseId } from '../store/database-id.ts';
import { turnSpan } from '../telemetry/envelope-spans.ts';
import { PRUNE_EVERY_MS, runPrune } from './prune.ts';
import { claimRedisPrefix } from './redis-claim.ts';
import type { HubServices } from './services.ts';

/** Envelope ids are remembered this long for deduplication after they were processed. */
export const DEDUPE_WINDOW_MS = 24 * 3_600_000;
/** The expiry job's first run waits at most this long after start, so a restart storm does not begin with cleanup. */
const EXPIRY_FIRST_RUN_MS = 30_000;

/** A stop came while the hub was starting: the start gave way to it (start() rejects with this). */
export class HubStoppedError extends Error {
  override name = 'HubStoppedError';
  constructor() {
    super('the hub was stopped before its start had finished');
  }
}

export interface HubLifecycle {
  /** `started` from the end of a successful start() until stop() is called (`/readyz`). */
  readonly state: HubState;
  /**
   * What start() or stop() is doing now (`start: scheduler.repeat expiry`, `queue: turns in
   * flight`), undefined when neither is under way: what a stop past its deadline names.
   */
  readonly step: string | undefined;
  /**
   * Starts serving and working; resolves with the port it listens on. Each step that talks to
   * PostgreSQL or Redis is bounded by DEPENDENCY_TIMEOUT_SECONDS (DependencyError); a stop
   * meanwhile cuts it short (HubStoppedError).
   */
  start(): Promise<{ port: number }>;
  /**
   * Stops taking work, answers the requests and finishes the turns in flight, closes every
   * connection. Once: a second call returns the first one's promise. Has no deadline of its own
   * (the process has one: `src/hub/shutdown.ts`).
   */
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
  let requests: RequestDrain | undefined;
  let pruneTimer: NodeJS.Timeout | undefined;
  let state: HubState = 'starting';
  let starting: Promise<unknown> | undefined;
  let stopping: Promise<void> | undefined;
  let step: string | undefined;
  /** Aborted by stop(): the start takes no further step, and gives up a wait under way. */
  const startCut = new AbortController();
  const dependencies: Dependency[] = [
    databaseDependency(config, db),
    ...(services.backend.redis && config.redisUrl
      ? [redisDependency(config.redisUrl, services.backend.redis)]
      : []),
  ];

  /**
   * One step of the start, named for a stop that comes meanwhile. Bounded (unless `unbounded`:
   * work that goes on by itself, such as indexing documents) by DEPENDENCY_TIMEOUT_SECONDS; with
   * `abortable`, a stop gives up waiting for it at once (a wait on Redis, on a platform: nothing
   * the stop then closes is in its way).
   */
  async function startStep<T>(
    name: string,
    work: () => Promise<T>,
    options: { abortable?: boolean; unbounded?: boolean } = {},
  ): Promise<T> {
    startCut.signal.throwIfAborted();
    step = `start: ${name}`;
    try {
      if (options.unbounded) return await work();
      return await bounded(work(), {
        timeoutMs: config.dependencyTimeoutMs,
        onTimeout: () =>
          new DependencyError(
            `the start step "${name}" did not finish within ${formatSeconds(config.dependencyTimeoutMs)} (DEPENDENCY_TIMEOUT_SECONDS)`,
          ),
        ...(options.abortable ? { signal: startCut.signal } : {}),
      });
    } finally {
      step = undefined;
    }
  }

  async function startServing(): Promise<{ port: number }> {
    server = await new Promise<Server>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () =>
        resolve(s as Server),
      ) as Server;
      s.once('error', reject);
    });
    answerClientErrorsAsJson(server);
    requests = trackRequests(server);
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    // PostgreSQL and Redis may be starting too: they get DEPENDENCY_TIMEOUT_SECONDS to answer,
    // then the start fails naming the one that did not (rather than wait for ever).
    await startStep(
      'dependencies',
      () =>
        Promise.all(
          dependencies.map((d) =>
            untilAnswers(d, { timeoutMs: config.dependencyTimeoutMs, retry: true, signal: startCut.signal }),
          ),
        ),
      { unbounded: true },
    );
    // Before anything reads or writes under the prefix: it must be this database's. Redis has
    // answered (above); the claim is bounded like any step, and a stop gives it up.
    const { redis } = services.backend;
    if (redis)
      await startStep(
        'redis.claim',
        async () =>
          claimRedisPrefix({
            redis,
            prefix: config.redisPrefix,
            databaseId: await databaseId(db),
            waitMs: config.dependencyTimeoutMs,
          }),
        { abortable: true },
      );
    // Only Redis waits without limit (BullMQ waits for its connection): those steps a stop gives up.
    const onRedis = services.backend.kind === 'redis';
    await startStep('webhooks.sync', () => webhooks.sync());
    if (serves) {
      for (const adapter of adapters) adapter.attach?.(server);
      for (const adapter of adapters)
        if (adapter.start)
          await startStep(`${adapter.channel}.start`, () => adapter.start!(), { abortable: true });
    }
    if (works) {
      // Knowledge is indexed before the first message is answered, then kept up to date.
      await startStep('knowledge.sync', () => knowledge.sync(startCut.signal), { unbounded: true });
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
      // A person's message set aside gets the bot's apology rather than silence.
      const setAside = {
        setAside: setAsideApology({ bots, ingress: services.ingress, metrics: services.metrics, logger }),
      };
      await startStep(
        'queue.consume',
        () =>
          queue.consume(async (envelope, info) => {
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
          }, setAside),
        { abortable: onRedis },
      );
      await startStep('outbox.start', () => outbox.start(), { abortable: onRedis });
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
      await startStep(
        'scheduler.repeat expiry',
        () =>
          scheduler.repeat('expiry', 'expiry', config.expiryIntervalMs, {
            firstDelayMs: Math.min(EXPIRY_FIRST_RUN_MS, config.expiryIntervalMs),
          }),
        { abortable: onRedis },
      );
      await startStep(
        `scheduler.repeat ${IDLE_SWEEP_JOB}`,
        () => scheduler.repeat(IDLE_SWEEP_JOB, IDLE_SWEEP_JOB, config.idleSweepIntervalMs),
        { abortable: onRedis },
      );
      if (config.dbAnalyzeIntervalMs > 0)
        await startStep(
          `scheduler.repeat ${ANALYZE_JOB}`,
          () => scheduler.repeat(ANALYZE_JOB, ANALYZE_JOB, config.dbAnalyzeIntervalMs),
          { abortable: onRedis },
        );
      await startStep('handoff jobs', () => services.handoffJobs.startJobs(), { abortable: onRedis });
      // The webhook dispatcher runs before the scheduler hands it the lanes' retry jobs (it hands
      // on a job that comes while it is not running; see WebhookDispatcher).
      webhooks.start();
      await startStep('scheduler.start', () => scheduler.start(), { abortable: onRedis });
    }
    startCut.signal.throwIfAborted();
    logger.info({
      event: 'hub.started',
      port,
      database: db.kind,
      queue: queue.driver,
      bots: bots.names(),
      channels: adapters.map((a) => a.channel),
    });
    state = 'started';
    return { port };
  }

  /** One step of the stop, named for the deadline's log line. */
  async function stopStep(name: string, work: () => Promise<unknown>): Promise<void> {
    step = name;
    await work();
  }

  /**
   * No new connection; requests in flight are answered (a chat waiting for its replies at once,
   * `stopping`), each response closing its connection; then the adapters end what they hold
   * open (web sockets). Past SHUTDOWN_TIMEOUT_SECONDS the connections still open are cut: the
   * process has exited by then (`src/hub/shutdown.ts`), unless the hub runs inside another.
   */
  async function closeServer(s: Server): Promise<void> {
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    requests?.drain();
    const cut = setTimeout(() => s.closeAllConnections(), config.shutdownTimeoutMs);
    cut.unref();
    try {
      for (const adapter of adapters)
        await adapter
          .detach?.()
          .catch((err: Error) =>
            logger.warn({ event: 'adapter.detach_failed', channel: adapter.channel, err: err.message }),
          );
      await closed;
    } finally {
      clearTimeout(cut);
    }
  }

  async function stopOnce(): Promise<void> {
    state = 'stopping';
    // New requests are refused from now on, and waiting ones answered.
    services.stopping.abort();
    // A stop during the start (the server listens, and answers `/healthz`, before the rest has
    // started): the start takes no further step and gives up a wait on Redis, then the stop
    // closes what it had opened.
    startCut.abort(new HubStoppedError());
    await starting?.catch(() => undefined);
    logger.info({ event: 'hub.stopping' });
    if (pruneTimer) clearInterval(pruneTimer);
    if (server) await stopStep('http: requests in flight', () => closeServer(server!));
    for (const adapter of adapters)
      if (adapter.stop)
        await stopStep(`${adapter.channel}.stop`, () =>
          adapter.stop!().catch((err: Error) =>
            logger.warn({ event: 'adapter.stop_failed', channel: adapter.channel, err: err.message }),
          ),
        );
    await stopStep('webhooks: deliveries in flight', () => webhooks.stop());
    await stopStep('scheduler: jobs in flight', () => scheduler.stop());
    await stopStep('queue: turns in flight', () => queue.stop());
    await stopStep('knowledge', () => knowledge.stop());
    await stopStep('outbox: sends in flight', () => outbox.stop());
    await stopStep('bus', () => bus.close());
    await stopStep('cache', () => cache.close());
    await stopStep('connections', () => services.close());
    step = undefined;
    logger.info({ event: 'hub.stopped' });
  }

  return {
    get state() {
      return state;
    },

    get step() {
      if (step === 'http: requests in flight' && requests)
        return `http: ${requests.inFlight()} request(s) in flight`;
      return step;
    },

    start() {
      const started = startServing();
      starting = started;
      return started;
    },

    stop() {
      stopping ??= stopOnce();
      return stopping;
    },
  };
}
