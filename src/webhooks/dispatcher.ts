import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Logger } from '../logger.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { Db } from '../store/db.ts';
import { signatureHeader } from './signature.ts';
import {
  freshLanes,
  type Lane,
  laneHead,
  leaseLane,
  markDead,
  markDelivered,
  markRetry,
  type OutboxEvent,
  overdueLanes,
  pruneDelivered,
  pruneExpiredLeases,
  releaseLane,
} from './store.ts';

/** The scheduler job that wakes a lane whose head event waits for a retry. */
export const WEBHOOK_LANE_JOB = 'webhooks.lane';
/** Delivered events are kept this long (for support questions), then forgotten. */
export const KEEP_DELIVERED_MS = 24 * 60 * 60 * 1000;
const PRUNE_EVERY_MS = 10 * 60 * 1000;
/** How long past its end a lane lease is kept before it is forgotten (see pruneExpiredLeases). */
export const EXPIRED_LEASE_GRACE_MS = 60 * 60 * 1000;
/**
 * A lane's wake-up that comes while this dispatcher is not running (stopping, or not started yet)
 * is handed on to run this much later, on another worker or this one once it runs again: failing
 * the job instead would use up one of its starts.
 */
const HANDED_ON_WAKE_MS = 1_000;
/** A lane's wake-up: `lane` its key; `sessionId` the payload jobs scheduled before session-less lanes had. */
const LanePayload = z.union([
  z.object({ endpoint: z.string(), lane: z.string().min(1) }),
  z.object({ endpoint: z.string(), sessionId: z.uuid() }),
]);
const toLane = (p: z.infer<typeof LanePayload>): Lane => ({
  endpoint: p.endpoint,
  key: 'lane' in p ? p.lane : p.sessionId,
});

export interface WebhookEndpoint {
  bot: string;
  url: string;
  secretEnv: string;
}

export interface WebhookDispatcherOptions {
  db: Db;
  scheduler: Scheduler;
  logger: Logger;
  /** By endpoint key (`endpointKey(bot, url)`). */
  endpoints: ReadonlyMap<string, WebhookEndpoint>;
  /** Where secrets are read (`secretEnv` names a variable here). */
  env: Readonly<Record<string, string | undefined>>;
  /** One request's time limit. */
  timeoutMs: number;
  /** How often the loop looks for fresh events. */
  pollMs: number;
  /** First retry delay; doubles each attempt (with jitter), up to `retryMaxMs`. */
  retryBaseMs: number;
  retryMaxMs: number;
  /**
   * A lane whose retry is this long overdue, with no live lease, is drained by the loop as if its
   * scheduler job had woken it: that job was lost (see `overdueLanes`).
   */
  overdueRetryMs: number;
  /** An event still undelivered this long after it happened is dead-lettered. */
  maxAgeMs: number;
  /** Lanes delivered at once by this process. */
  concurrency: number;
}

/** Exponential backoff with "equal jitter": half the step fixed, half random. */
export function retryDelay(attempts: number, baseMs: number, maxMs: number, random = Math.random): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.min(attempts - 1, 30));
  return Math.round(step / 2 + (random() * step) / 2);
}

/** The request body: what receivers see (and deduplicate by `id`). */
export function eventBody(e: OutboxEvent): string {
  return JSON.stringify({
    id: e.eventId,
    type: e.type,
    created_at: e.createdAt.toISOString(),
    bot: e.bot,
    session_id: e.sessionId,
    data: e.data,
  });
}

/**
 * What started a lane's run: the loop's look for fresh events, the lane's scheduler job, or the
 * loop's look for overdue retries (a lost job). The last two may retry the head.
 */
type LaneRun = 'fresh' | 'job' | 'overdue';

/**
 * Delivers the webhook outbox: a loop (never a session's lane) finds lanes — one per endpoint and
 * session, or per endpoint and ordering key for session-less events — with fresh events and
 * sends them one at a time in order; a failed send is retried by a durable scheduler job at the
 * lane's next attempt, so retries survive restarts. Should that job be lost (set aside, gone with
 * Redis's data), the loop takes the lane up once its retry is `overdueRetryMs` late. An event that
 * stays undeliverable for `maxAgeMs` is dead-lettered and the lane goes on (the gap is logged).
 * Whoever runs a lane holds its lease (`webhook_lanes`) meanwhile, so one process at a time sends
 * from it, each event once.
 */
export class WebhookDispatcher {
  private readonly owner = randomUUID();
  private readonly running = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private ticking: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly leaseMs: number;
  private prunedAt = 0;

  constructor(private readonly o: WebhookDispatcherOptions) {
    this.leaseMs = o.timeoutMs * 2 + 5_000;
    o.scheduler.handle(WEBHOOK_LANE_JOB, async (payload) => {
      const lane = toLane(LanePayload.parse(payload));
      if (this.stopped) {
        // No endpoint here: nothing in this hub delivers (the lane waits; a hub that has its
        // endpoint again takes it up as overdue). Otherwise it is stopping (or not started yet):
        // hand the wake-up on rather than fail it (a failed run would use up one of its starts).
        if (this.o.endpoints.size > 0) await this.wakeLater(lane, HANDED_ON_WAKE_MS);
        return;
      }
      await this.runLane(lane, 'job');
    });
  }

  start(): void {
    if (this.o.endpoints.size === 0 || !this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    await Promise.all([...this.inFlight]);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick()
        .catch((err: Error) => this.o.logger.warn({ event: 'webhook.poll_failed', err: err.message }))
        .finally(() => this.schedule());
    }, this.o.pollMs);
    this.timer.unref();
  }

  /**
   * One look for fresh events, then for lanes whose retry is long overdue; starts their lanes (up
   * to the concurrency).
   */
  async tick(): Promise<void> {
    if (Date.now() - this.prunedAt > PRUNE_EVERY_MS) {
      this.prunedAt = Date.now();
      const n = await pruneDelivered(this.o.db, KEEP_DELIVERED_MS);
      if (n > 0) this.o.logger.info({ event: 'webhook.pruned', count: n });
      const leases = await pruneExpiredLeases(this.o.db, EXPIRED_LEASE_GRACE_MS);
      if (leases > 0) this.o.logger.info({ event: 'webhook.leases_pruned', count: leases });
    }
    const room = this.o.concurrency - this.running.size;
    if (room <= 0) return;
    for (const lane of await freshLanes(this.o.db, room + this.running.size)) {
      if (this.running.size >= this.o.concurrency) return;
      if (!this.running.has(laneId(lane))) this.startLane(lane, 'fresh');
    }
    if (this.running.size >= this.o.concurrency) return;
    for (const lane of await overdueLanes(this.o.db, this.o.overdueRetryMs, this.o.concurrency)) {
      if (this.running.size >= this.o.concurrency) return;
      if (this.running.has(laneId(lane))) continue;
      this.o.logger.warn({
        event: 'webhook.lane_resumed',
        endpoint: lane.endpoint,
        lane: lane.key,
        overdueMs: Date.now() - lane.dueAt.getTime(),
      });
      this.startLane({ endpoint: lane.endpoint, key: lane.key }, 'overdue');
    }
  }

  private startLane(lane: Lane, via: LaneRun): void {
    const run = this.runLane(lane, via)
      .catch((err: Error) =>
        this.o.logger.warn({ event: 'webhook.lane_failed', endpoint: lane.endpoint, err: err.message }),
      )
      .finally(() => this.inFlight.delete(run));
    this.inFlight.add(run);
  }

  /**
   * Sends the lane's pending events in order while they succeed. Run by its retry `job` or for an
   * `overdue` retry, the head may be retried; run for `fresh` events, only fresh heads are sent.
   */
  async runLane(lane: Lane, via: LaneRun): Promise<void> {
    const id = laneId(lane);
    if (this.running.has(id)) return this.wakeLater(lane, this.o.timeoutMs);
    this.running.add(id);
    try {
      if (!(await leaseLane(this.o.db, lane, this.owner, this.leaseMs))) {
        // Another process is delivering it; when its job woke it for a retry, look again after
        // that lease (the loop looks again anyway for an overdue one).
        if (via === 'job') await this.wakeLater(lane, this.leaseMs);
        return;
      }
      try {
        await this.drain(lane, via);
      } finally {
        await releaseLane(this.o.db, lane, this.owner);
      }
    } finally {
      this.running.delete(id);
    }
  }

  private async drain(lane: Lane, via: LaneRun): Promise<void> {
    let woken = via !== 'fresh';
    for (;;) {
      if (this.stopped) {
        // The job that woke it is spent: a retry not yet sent is handed on (see HANDED_ON_WAKE_MS).
        if (woken && via === 'job') await this.wakeLater(lane, HANDED_ON_WAKE_MS);
        return;
      }
      const head = await laneHead(this.o.db, lane);
      if (!head) return;
      if (head.attempts > 0 && !woken) return; // the scheduler's job wakes it
      if (head.nextAttemptAt && head.nextAttemptAt.getTime() > Date.now() + 50) {
        return this.wakeLater(lane, head.nextAttemptAt.getTime() - Date.now());
      }
      woken = false;
      await leaseLane(this.o.db, lane, this.owner, this.leaseMs);
      const error = await this.send(head);
      const attempts = head.attempts + 1;
      if (error === undefined) {
        await markDelivered(this.o.db, head.id, attempts);
        continue;
      }
      if (Date.now() - head.createdAt.getTime() >= this.o.maxAgeMs) {
        await markDead(this.o.db, head.id, attempts, error);
        // Later events go on: the receiver sees a gap, deduplicable and replayable by id.
        this.o.logger.warn({
          event: 'webhook.dead_lettered',
          endpoint: head.endpoint,
          sessionId: head.sessionId,
          lane: head.lane,
          eventId: head.eventId,
          type: head.type,
          attempts,
          err: error,
        });
        continue;
      }
      const delay = retryDelay(attempts, this.o.retryBaseMs, this.o.retryMaxMs);
      // The wake-up first: a process that dies between the two still has the retry on the
      // scheduler. The retry is marked even when the wake-up could not be written (the scheduler's
      // store away): the loop takes the lane up once that retry is overdue, not at every poll.
      try {
        await this.wakeLater(lane, delay);
      } finally {
        await markRetry(this.o.db, head.id, attempts, new Date(Date.now() + delay), error);
      }
      this.o.logger.info({
        event: 'webhook.retry_scheduled',
        endpoint: head.endpoint,
        sessionId: head.sessionId,
        lane: head.lane,
        eventId: head.eventId,
        attempts,
        delayMs: delay,
        err: error,
      });
      return;
    }
  }

  private async wakeLater(lane: Lane, delayMs: number): Promise<void> {
    await this.o.scheduler.schedule(
      WEBHOOK_LANE_JOB,
      { endpoint: lane.endpoint, lane: lane.key },
      { id: laneJobId(lane), delayMs: Math.max(0, Math.round(delayMs)) },
    );
  }

  /** Sends one event; undefined when the receiver took it (2xx), else why not. */
  private async send(event: OutboxEvent): Promise<string | undefined> {
    const endpoint = this.o.endpoints.get(event.endpoint);
    if (!endpoint) return 'endpoint no longer configured';
    const secret = this.o.env[endpoint.secretEnv];
    if (!secret) return `${endpoint.secretEnv} is not set`;
    const body = eventBody(event);
    try {
      const res = await fetch(endpoint.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Switchboard-Webhooks',
          'switchboard-event-id': event.eventId,
          'switchboard-signature': signatureHeader(secret, body, Math.floor(Date.now() / 1000)),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
      await res.body?.cancel().catch(() => undefined);
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (err) {
      return (err as Error).name === 'TimeoutError' ? 'timed out' : (err as Error).message;
    }
  }
}

// For a session's lane the same id as before session-less lanes: a pending wake-up is replaced, not doubled.
const laneId = (lane: Lane) => `${lane.endpoint}\n${lane.key}`;
/** The scheduled job id that wakes a lane whose head waits for a retry. */
export const laneJobId = (lane: Lane) => `webhooks:${laneId(lane)}`;
