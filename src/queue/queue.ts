import type { Envelope } from '../envelope.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { DrainedJob } from '../telemetry/envelope-spans.ts';
import type { LaneQueueStatus } from './lane-status.ts';

export interface DeliveryInfo {
  /** The envelope may have been handled before (its first handler died, or it is retried). */
  redelivered: boolean;
  /**
   * This process handled the lane's previous envelope just before, holding the lane throughout:
   * no other worker took a turn of this session in between, so what this process cached of it
   * is current (unless something outside the queue, a sign-in, moved it: the commit's version
   * check catches that).
   */
  followsInLane: boolean;
  /**
   * This process handles the lane's next envelope right after this one, still holding the lane:
   * what the handler caches of the session may stay in this process until the last of them.
   */
  followedInLane: boolean;
  /**
   * The handler may answer `'held'`: the envelope is handled but its effects are not yet durable;
   * they become durable, in order, when a later envelope of the same chunk of this lane is handled
   * (the last one of the chunk never gets `mayHold`). Until then the queue must not acknowledge
   * it: a failure after it retries from the first held envelope.
   */
  mayHold?: boolean;
  /**
   * The span of the queue job that serves this envelope with others (tracing on; see
   * src/telemetry/envelope-spans.ts `drainSpan`), for the envelope's turn to link to.
   */
  job?: DrainedJob;
}

/** `'held'`: see `DeliveryInfo.mayHold`. */
// biome-ignore lint/suspicious/noConfusingVoidType: a handler that holds nothing returns nothing (`async () => {}`).
export type EnvelopeHandler = (envelope: Envelope, info: DeliveryInfo) => Promise<void | 'held'>;

export type EnqueueResult = 'accepted' | 'duplicate';

/**
 * Told of an envelope the queue has set aside (its handling failed again and again: a dead
 * letter), once it is set aside: `error` is its last failure. What it does is its own; a failure
 * of it is logged and changes nothing in the queue.
 */
export type SetAsideHandler = (envelope: Envelope, set: { error: string; attempts: number }) => Promise<void>;

export interface ConsumeOptions {
  setAside?: SetAsideHandler;
}

/**
 * What feeds the session engine. Every driver keeps this contract:
 * - `enqueue` resolves only once the envelope is durably accepted, and answers `duplicate`
 *   (changing nothing) for an envelope id it has accepted before;
 * - per session lane: strict FIFO, one envelope at a time;
 * - across lanes: in parallel;
 * - at-least-once: a handler that throws or dies is retried, so handlers are idempotent on the
 *   envelope id.
 */
export interface InboundQueue {
  readonly driver: 'in-process' | 'redis-lanes';
  enqueue(envelope: Envelope): Promise<EnqueueResult>;
  /**
   * `enqueue`, counting the envelope (a named hit: its id) against a rate limit of the hub's rate
   * limiter in the same step, where the queue and the limiter share a store. `limited`: the
   * limit's window is full; nothing was counted or queued. Absent: hit, then `enqueue`.
   */
  enqueueWithinLimit?(
    envelope: Envelope,
    limit: { key: string; limit: number; windowMs: number },
  ): Promise<EnqueueResult | 'limited'>;
  /** Starts feeding envelopes to `handler` (worker role). */
  consume(handler: EnvelopeHandler, options?: ConsumeOptions): Promise<void>;
  /** Stops taking work, waits for what is in flight, and releases its connections. */
  stop(): Promise<void>;
  /** Throws when the queue cannot take envelopes. */
  ping(): Promise<void>;
  /** Envelopes accepted but not yet handled. */
  depth(): Promise<number>;
  /** What the shared queue holds now (Redis lanes only; the embedded queue's is the inbox's). */
  status?(): Promise<LaneQueueStatus>;
}

/** Exponential backoff with full jitter: a random delay in [0, min(cap, base·2^attempt)). */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random = Math.random): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** attempt));
}

/**
 * The delay a handler's error asks for before its envelope is tried again (`retryAfterMs`, set
 * by the attachment retry: a platform's hiccup needs seconds, not the queue's backoff of a few
 * hundred milliseconds). Undefined: the queue's own backoff. The lane waits that long (its
 * order holds); other lanes go on.
 */
export function retryDelayHint(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const ms = (err as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/** Tells `options.setAside` of a dead letter; its failure is only logged (the envelope is set aside either way). */
export async function tellSetAside(
  options: ConsumeOptions | undefined,
  envelope: Envelope,
  set: { error: string; attempts: number },
  logger: Logger,
): Promise<void> {
  if (!options?.setAside) return;
  await options
    .setAside(envelope, set)
    .catch((err: unknown) =>
      logger.error({ event: 'queue.set_aside_hook_failed', envelopeId: envelope.id, err: errorMessage(err) }),
    );
}
