import type { Redis } from 'ioredis';
import { type Envelope, sessionLane } from '../envelope.ts';
import { errorMessage, isTransient } from '../errors.ts';
import { rateWindowKey } from '../limits/redis-rate-limiter.ts';
import type { Logger } from '../logger.ts';
import { type DrainedJob, drainSpan } from '../telemetry/envelope-spans.ts';
import { LaneRunner, type LaneRunnerOptions } from './lane-runner.ts';
import type { LaneQueueStatus } from './lane-status.ts';
import {
  type ConsumeOptions,
  type EnqueueResult,
  type EnvelopeHandler,
  type InboundQueue,
  tellSetAside,
} from './queue.ts';
import {
  type ClaimSessions,
  type DeadLetter,
  type PushEntry,
  type PushStatus,
  RedisLanes,
} from './redis-lanes.ts';
import { TickBatcher } from './tick-batch.ts';

/** Envelope ids are remembered this long for deduplication. */
export const DEDUPE_TTL_MS = 24 * 3_600_000;
/** An envelope whose handling fails this often (for reasons other than a dependency being away) is set aside. */
export const MAX_ENVELOPE_ATTEMPTS = 10;
export const INBOUND_QUEUE = 'inbound';

export interface RedisLaneQueueOptions {
  /** Lanes and deduplication. */
  redis: Redis;
  /** BullMQ's producer connection; `redis` when absent. Better not an auto-pipelining one (see hub.ts). */
  queueConnection?: Redis;
  redisUrl: string;
  prefix: string;
  logger: Logger;
  concurrency: number;
  /** First retry delay of a failing envelope (see LaneRunnerOptions). */
  retryBaseMs?: number;
  /** How often the lane runner's sweep runs (see LaneRunnerOptions; `QUEUE_SWEEP_MS`). */
  sweepEveryMs?: number;
  /** Told of each repair the lane runner makes (see LaneRunnerOptions). */
  onRepair?: LaneRunnerOptions['onRepair'];
  /** The shared session cache each claim reads the lanes' sessions from (see `ClaimSessions`). */
  sessions?: ClaimSessions;
}

/** The Redis-lane queue, and what an operator does with the envelopes it set aside. */
export interface RedisLaneQueue extends InboundQueue {
  status(): Promise<LaneQueueStatus>;
  deadLetters(): Promise<DeadLetter[]>;
  /** Re-queues every dead letter (bypassing deduplication); returns how many. */
  replayDeadLetters(): Promise<number>;
}

/**
 * A chunk's envelopes, in an array of one elements kind whoever makes it: `items.map(JSON.parse)`
 * made arrays of one kind before the callback that calls it was optimized and of another after,
 * and the optimized `handleChunk` (and the lane runner's `drain`, which inlines it) were thrown
 * away and compiled again at the first of the other kind, in every worker.
 */
function parseAll(items: string[]): Envelope[] {
  const envelopes: Envelope[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) envelopes[i] = JSON.parse(items[i]!) as Envelope;
  return envelopes;
}

/**
 * The queue port on Redis lanes (`redis-lanes.ts`): each session is a lane, a Redis list (strict
 * FIFO, one envelope at a time, across every worker process), lanes run in parallel, and an
 * envelope id is deduplicated in the same atomic step that queues it. The envelopes live in the
 * lanes, not in BullMQ: BullMQ only wakes them (its `wake-<n>` jobs tell a worker that lanes are
 * ready, and hand a dead worker's claim to another; `lane-runner.ts`).
 */
export function createRedisLaneQueue(options: RedisLaneQueueOptions): RedisLaneQueue {
  const { redis, logger } = options;
  const lanes = new RedisLanes(redis, {
    prefix: options.prefix,
    name: INBOUND_QUEUE,
    ...(options.sessions ? { sessions: options.sessions } : {}),
  });
  const runner = new LaneRunner({
    name: INBOUND_QUEUE,
    redisUrl: options.redisUrl,
    prefix: options.prefix,
    lanes,
    logger,
    connection: options.queueConnection ?? redis,
    ...(options.retryBaseMs === undefined ? {} : { retryBaseMs: options.retryBaseMs }),
    ...(options.sweepEveryMs === undefined ? {} : { sweepEveryMs: options.sweepEveryMs }),
    ...(options.onRepair ? { onRepair: options.onRepair } : {}),
  });
  const failing = new Set<string>();

  // The gateway's pushes of one moment share a script. Each caller is answered once its envelope
  // is durably queued (or refused) and, if the batch marked a wake job, once that job is added,
  // as by a push of its own. A failed wake job's add fails every caller of the batch, even those
  // whose envelope was queued: a retry is a duplicate, and the sweep adds the wake job.
  const batcher = new TickBatcher<PushEntry, PushStatus>(async (entries) => {
    const { statuses, wake } = await lanes.pushMany(entries, DEDUPE_TTL_MS);
    if (wake !== undefined) await runner.wake(wake);
    return statuses;
  });

  async function push(envelope: Envelope, dedupe: boolean): Promise<EnqueueResult> {
    const status = await batcher.call({
      lane: sessionLane(envelope),
      item: JSON.stringify(envelope),
      ...(dedupe ? { dedupeId: envelope.id } : {}),
    });
    return status === 'duplicate' ? 'duplicate' : 'accepted';
  }

  return {
    driver: 'redis-lanes',
    enqueue: (envelope) => push(envelope, true),
    // The Redis rate limiter's window (same Redis, same prefix), counted in the push's own script.
    enqueueWithinLimit: (envelope, { key, limit, windowMs }) =>
      batcher.call({
        lane: sessionLane(envelope),
        item: JSON.stringify(envelope),
        dedupeId: envelope.id,
        limit: { key: rateWindowKey(options.prefix, key), limit, windowMs },
      }),
    async consume(handler: EnvelopeHandler, consuming?: ConsumeOptions) {
      runner.start(async (lane, items, ctx) => {
        return drainSpan(lane, items.length, (job) => handleChunk(lane, items, parseAll(items), ctx, job));
      }, options.concurrency);

      async function handleChunk(
        lane: string,
        items: string[],
        envelopes: Envelope[],
        ctx: { redelivered: boolean; continues: boolean },
        job: DrainedJob | undefined,
      ): Promise<{ done: number; error?: Error }> {
        // The first of the envelopes the handler holds (see DeliveryInfo.mayHold): none of them is
        // acknowledged until a later one's handling makes them durable.
        let firstHeld: number | undefined;
        for (let i = 0; i < items.length; i++) {
          const envelope = envelopes[i]!;
          try {
            const handled = await handler(envelope, {
              redelivered: ctx.redelivered,
              followsInLane: ctx.continues || i > 0,
              followedInLane: i < items.length - 1,
              // Not in a retried chunk: there each envelope's failures count on its own.
              mayHold: !ctx.redelivered && i < items.length - 1,
              job,
            });
            if (handled === 'held') {
              firstHeld ??= i;
              continue;
            }
            firstHeld = undefined;
            if (failing.delete(envelope.id)) await lanes.clearFailure(envelope.id);
          } catch (err) {
            // Held envelopes are not durable: the retry (which holds none) starts from the first.
            if (firstHeld !== undefined) return { done: firstHeld, error: err as Error };
            if (isTransient(err)) return { done: i, error: err as Error };
            failing.add(envelope.id);
            const attempts = await lanes.recordFailure(envelope.id);
            if (attempts < MAX_ENVELOPE_ATTEMPTS) return { done: i, error: err as Error };
            // Set aside, visible to an operator; the session moves on.
            await lanes.ack(lane, items.slice(0, i));
            await lanes.deadLetter(lane, items[i]!, errorMessage(err), attempts);
            await lanes.clearFailure(envelope.id);
            failing.delete(envelope.id);
            logger.error({
              event: 'queue.envelope_failed',
              envelopeId: envelope.id,
              attempts,
              err: errorMessage(err),
            });
            await tellSetAside(consuming, envelope, { error: errorMessage(err), attempts }, logger);
            return { done: 0 };
          }
        }
        return { done: items.length };
      }
    },
    stop: () => runner.stop(),
    ping: () => runner.ping(),
    depth: () => lanes.depth(),
    status: () => runner.status(),
    deadLetters: () => lanes.deadLetters(),
    replayDeadLetters: () =>
      lanes.replayDeadLetters((letter) => push(JSON.parse(letter.item) as Envelope, false)),
  };
}
