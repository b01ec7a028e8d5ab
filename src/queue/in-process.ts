import { ConfigError } from '../config/env.ts';
import { type Envelope, sessionLane } from '../envelope.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../store/db.ts';
import {
  type InboxEntry,
  insertInbox,
  insertInboxBatch,
  markInboxProcessed,
  pendingInbox,
  recordInboxAttempt,
} from '../store/inbox.ts';
import {
  backoffDelay,
  type ConsumeOptions,
  type EnqueueResult,
  type EnvelopeHandler,
  type InboundQueue,
  retryDelayHint,
  tellSetAside,
} from './queue.ts';

export const RETRY_BASE_MS = 200;
export const RETRY_CAP_MS = 30_000;
export const DEFAULT_MAX_ATTEMPTS = 10;
/** How often the inbox is scanned for pending envelopes this process does not hold (an operator's replay). */
const RESCAN_MS = 30_000;
/** Acknowledgements are written in batches; a crash before the write only means a harmless replay. */
const ACK_FLUSH_MS = 20;

/** Most envelopes written to the inbox in one statement. */
const MAX_INBOX_BATCH = 256;

/** Any fixed number: the advisory lock that keeps the in-process queue to one process per database. */
const IN_PROCESS_QUEUE_LOCK = 7_340_212;

export class QueueLockedError extends ConfigError {
  override name = 'QueueLockedError';
  constructor() {
    super(
      'another process already runs the in-process queue on this database; to run several processes set REDIS_URL (BullMQ), or stop the other one',
    );
  }
}

type LaneState = 'idle' | 'ready' | 'running' | 'backoff';

interface Lane {
  key: string;
  items: InboxEntry[];
  state: LaneState;
}

export interface InProcessQueueOptions {
  db: Db;
  logger: Logger;
  concurrency: number;
  maxAttempts?: number;
  /** First retry delay of a failing envelope; doubles each attempt, with full jitter, up to 30 s. */
  retryBaseMs?: number;
}

/**
 * The embedded queue: per-session lanes in memory, backed by the `inbox` table so that an
 * accepted envelope survives a crash and is resumed on the next start, in arrival order.
 */
export function createInProcessQueue(options: InProcessQueueOptions): InboundQueue {
  const { db, logger } = options;
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const lanes = new Map<string, Lane>();
  const ready: string[] = [];
  const known = new Set<number>();
  const timers = new Set<NodeJS.Timeout>();
  let handler: EnvelopeHandler | undefined;
  let consuming: ConsumeOptions | undefined;
  let running = 0;
  let stopping = false;
  let idleWaiters: (() => void)[] = [];
  let pendingAcks: number[] = [];
  let ackTimer: NodeJS.Timeout | undefined;
  let ackFlush: Promise<void> = Promise.resolve();
  let releaseLock: (() => Promise<void>) | undefined;
  let rescanTimer: NodeJS.Timeout | undefined;
  let inboxBatch: {
    lane: string;
    envelope: Envelope;
    resolve: (entry: InboxEntry | undefined) => void;
    reject: (err: unknown) => void;
  }[] = [];
  let inboxWriting = false;

  /**
   * Records an envelope in the inbox; resolves once its row is written. Envelopes that arrive
   * while a write is in flight go into the next one together (one statement and one commit for
   * many, the way the engine's group commit writes turns); the first waits for nobody. Not a
   * TickBatcher (src/queue/tick-batch.ts), which sends each tick's batch at once and fails a batch
   * whole: each write here is a commit, so one is in flight, and a batch the database refuses is
   * written again envelope by envelope.
   */
  function recordInbox(lane: string, envelope: Envelope): Promise<InboxEntry | undefined> {
    return new Promise((resolve, reject) => {
      inboxBatch.push({ lane, envelope, resolve, reject });
      if (!inboxWriting) void writeInbox();
    });
  }

  async function writeInbox() {
    inboxWriting = true;
    while (inboxBatch.length > 0) {
      const items = inboxBatch.slice(0, MAX_INBOX_BATCH);
      inboxBatch = inboxBatch.slice(items.length);
      try {
        const entries =
          items.length === 1
            ? [await insertInbox(db, items[0]!.lane, items[0]!.envelope)]
            : await insertInboxBatch(db, items);
        for (const [i, item] of items.entries()) item.resolve(entries[i]);
      } catch (err) {
        if (items.length === 1) items[0]!.reject(err);
        // One envelope the database refuses must not refuse the others: each again on its own.
        else
          for (const item of items)
            await insertInbox(db, item.lane, item.envelope).then(item.resolve, item.reject);
      }
    }
    inboxWriting = false;
  }

  function flushAcks(): Promise<void> {
    ackTimer = undefined;
    const ids = pendingAcks;
    pendingAcks = [];
    ackFlush = ackFlush.then(() =>
      markInboxProcessed(db, ids).catch((err: Error) =>
        logger.warn({ event: 'queue.ack_failed', count: ids.length, err: err.message }),
      ),
    );
    return ackFlush;
  }

  function ack(id: number) {
    pendingAcks.push(id);
    known.delete(id);
    ackTimer ??= setTimeout(flushAcks, ACK_FLUSH_MS);
  }

  function push(entry: InboxEntry) {
    if (known.has(entry.id)) return;
    known.add(entry.id);
    let lane = lanes.get(entry.lane);
    if (!lane) {
      lane = { key: entry.lane, items: [], state: 'idle' };
      lanes.set(entry.lane, lane);
    }
    // Keep each lane in acceptance order even when two inserts resolve out of order.
    // The head of a running or retrying lane is in hand and stays first.
    const floor = lane.state === 'running' || lane.state === 'backoff' ? 1 : 0;
    let at = lane.items.length;
    while (at > floor && lane.items[at - 1]!.id > entry.id) at--;
    lane.items.splice(at, 0, entry);
    if (lane.state === 'idle') {
      lane.state = 'ready';
      ready.push(lane.key);
    }
    pump();
  }

  function pump() {
    while (handler && !stopping && running < options.concurrency && ready.length > 0) {
      const key = ready.shift()!;
      const lane = lanes.get(key);
      if (lane?.state !== 'ready') continue;
      void run(lane, handler);
    }
    if (running === 0) {
      for (const resolve of idleWaiters) resolve();
      idleWaiters = [];
    }
  }

  async function run(lane: Lane, handle: EnvelopeHandler) {
    lane.state = 'running';
    running++;
    const entry = lane.items[0]!;
    let retryIn: number | undefined;
    try {
      await handle(entry.envelope, {
        redelivered: entry.attempts > 0 || entry.recovered === true,
        // One process, one cache: nothing to confirm elsewhere.
        followsInLane: false,
        followedInLane: false,
      });
      lane.items.shift();
      ack(entry.id);
    } catch (err) {
      entry.attempts++;
      const message = err instanceof Error ? err.message : String(err);
      const failed = entry.attempts >= maxAttempts;
      await recordInboxAttempt(db, entry.id, message, failed).catch(() => undefined);
      if (failed) {
        // Kept in the inbox with its error for an operator; the session moves on.
        logger.error({
          event: 'queue.envelope_failed',
          envelopeId: entry.envelope.id,
          attempts: entry.attempts,
          err: message,
        });
        lane.items.shift();
        known.delete(entry.id);
        await tellSetAside(consuming, entry.envelope, { error: message, attempts: entry.attempts }, logger);
      } else {
        // The handler's own hint first (an attachment's retry spacing), else the backoff.
        retryIn =
          retryDelayHint(err) ??
          backoffDelay(entry.attempts, options.retryBaseMs ?? RETRY_BASE_MS, RETRY_CAP_MS);
        logger.warn({
          event: 'queue.envelope_retry',
          envelopeId: entry.envelope.id,
          attempt: entry.attempts,
          retryInMs: retryIn,
          err: message,
        });
      }
    } finally {
      running--;
      if (retryIn !== undefined) {
        lane.state = 'backoff';
        const timer = setTimeout(() => {
          timers.delete(timer);
          lane.state = 'ready';
          ready.push(lane.key);
          pump();
        }, retryIn);
        timers.add(timer);
      } else if (lane.items.length > 0) {
        lane.state = 'ready';
        ready.push(lane.key);
      } else {
        lane.state = 'idle';
        lanes.delete(lane.key);
      }
      pump();
    }
  }

  return {
    driver: 'in-process',
    async enqueue(envelope: Envelope): Promise<EnqueueResult> {
      if (stopping) throw new Error('the queue is stopping');
      const entry = await recordInbox(sessionLane(envelope), envelope);
      if (!entry) return 'duplicate';
      push(entry);
      return 'accepted';
    },
    async consume(h: EnvelopeHandler, options?: ConsumeOptions) {
      // Two processes resuming one inbox would run the same sessions at once: one per database.
      releaseLock = await db.holdLock(IN_PROCESS_QUEUE_LOCK);
      if (!releaseLock) throw new QueueLockedError();
      handler = h;
      consuming = options;
      const pending = await pendingInbox(db);
      if (pending.length > 0) logger.info({ event: 'queue.resumed', count: pending.length });
      for (const entry of pending) push({ ...entry, recovered: true });
      pump();
      rescanTimer = setInterval(() => {
        pendingInbox(db)
          .then((rows) => {
            for (const entry of rows) if (!stopping) push({ ...entry, recovered: true });
          })
          .catch((err: Error) => logger.warn({ event: 'queue.rescan_failed', err: err.message }));
      }, RESCAN_MS);
      rescanTimer.unref();
    },
    async stop() {
      stopping = true;
      if (rescanTimer) clearInterval(rescanTimer);
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      if (running > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve));
      if (ackTimer) clearTimeout(ackTimer);
      await flushAcks();
      await releaseLock?.();
    },
    async ping() {
      await db.ping();
    },
    async depth() {
      let n = 0;
      for (const lane of lanes.values()) n += lane.items.length;
      return n;
    },
  };
}
