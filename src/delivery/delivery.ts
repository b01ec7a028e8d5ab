import type { Channel } from '../envelope.ts';
import { errorMessage } from '../errors.ts';
import { defaultRecipient, type RateLimiter, recipientKey } from '../limits/rate-limiter.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { Db } from '../store/db.ts';
import {
  type DeliveryOutcome,
  type QueuedReply,
  queuedReplies,
  recordDeliveries,
} from '../store/messages.ts';
import type { DeliveryStatus, SessionRecord } from '../store/records.ts';
import { loadSnapshot } from '../store/sessions.ts';
import {
  failSpan,
  inSpan,
  type Span,
  SpanKind,
  spanLogIds,
  traceContext,
  tracingEnabled,
} from '../telemetry/tracing.ts';
import { deliveryVerdict, failureKind, type RetryPolicy } from './failure.ts';
import { scheduleDeliveryRetry } from './retry-job.ts';
import { type ChannelSender, SendError, type SendOutcome } from './sender.ts';

export interface DeliveryOptions extends RetryPolicy {
  db: Db;
  logger: Logger;
  metrics: Metrics;
  senders: Map<Channel, ChannelSender>;
  rateLimiter: RateLimiter;
  /** Where a failed send's retry waits (`registerDeliveryRetries` hands it back to the outbox). */
  scheduler: Pick<Scheduler, 'schedule'>;
}

/** How a turn's delivery ended: every reply settled, or the first still waiting for its retry. */
type TurnEnd = 'settled' | 'waiting';

/**
 * Sends a session's committed replies through its channel's sender, in sequence order.
 * Everything it knows comes from PostgreSQL (the replies still `queued`), so it can run in any
 * process, again, at any time: whoever calls it must only make sure one call per session runs at
 * a time (the outbox does). Every outcome is written to the message's delivery status.
 *
 * A failed send is retried with exponential backoff and full jitter (or the platform's
 * Retry-After), but not by waiting here: the retry's time is written on the replies and a
 * scheduler job hands the session back to the outbox then (src/delivery/retry-job.ts), so a
 * worker's slots go on to other sessions meanwhile, and the session's later replies wait behind
 * it. Which failures are retried, and for how long, is `deliveryVerdict`'s: transient ones until
 * the reply has waited `giveUpAfterMs`, refusals never. A reply given up is `failed` and kept,
 * for an operator to replay. Channels without a sender (REST API, web socket) are read by their
 * clients: their replies are `sent` as soon as they are committed.
 */
export class Delivery {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly wakeups = new Set<() => void>();
  private stopping = false;

  constructor(private readonly options: DeliveryOptions) {}

  /** The status a reply is committed with on this channel. */
  initialStatus(channel: Channel): DeliveryStatus {
    return this.options.senders.has(channel) ? 'queued' : 'sent';
  }

  hasSender(channel: Channel): boolean {
    return this.options.senders.has(channel);
  }

  /** Tells the person the bot is working, where the channel can show it. Never throws, never waits. */
  typing(session: SessionRecord): void {
    const sender = this.options.senders.get(session.channel);
    if (!sender?.typing || this.stopping) return;
    const onError = (err: Error) =>
      this.options.logger.debug({ event: 'delivery.typing_failed', sessionId: session.id, err: err.message });
    sender.typing(session).catch(onError);
  }

  /** Sends everything the session has queued, oldest first; returns once none is left (or stopping). */
  async deliverSession(sessionId: string): Promise<void> {
    const { db, logger } = this.options;
    let queued = await queuedReplies(db, sessionId);
    if (queued.length === 0) return;
    const snapshot = await loadSnapshot(db, sessionId);
    if (!snapshot) return;
    const { session } = snapshot;
    const sender = this.options.senders.get(session.channel);
    if (!sender) {
      logger.warn({
        event: 'delivery.no_sender',
        sessionId,
        channel: session.channel,
        queued: queued.length,
      });
      return;
    }
    while (queued.length > 0 && !this.stopping) {
      const inReplyTo = queued[0]!.inReplyTo;
      const turn = queued.filter((m) => m.inReplyTo === inReplyTo);
      if (turn[0]!.dueInMs > 0) {
        // Its retry is not due yet (a later turn's replies were committed meanwhile, or the job
        // fired a moment early): this turn and the ones after it wait for it.
        await this.resumeLater(session, turn[0]!.dueInMs);
        return;
      }
      if ((await this.deliverTurn(sender, session, inReplyTo ?? '', turn)) === 'waiting') return;
      queued = queued.slice(turn.length);
    }
  }

  private async deliverTurn(
    sender: ChannelSender,
    session: SessionRecord,
    inReplyTo: string,
    replies: QueuedReply[],
  ): Promise<TurnEnd> {
    const { db, logger, metrics } = this.options;
    let remaining = replies.map((m) => ({ seq: m.seq, text: m.content, payload: m.payload }));
    // Attempts so far: failed ones recorded by an earlier pass, then this pass's.
    let attempt = replies[0]?.deliveryAttempts ?? 0;
    // How long the turn has waited: on the database's clock when read, then on this process's.
    const readAt = performance.now();
    const waitedAtRead = replies[0]?.queuedForMs ?? 0;
    const limit = sender.recipientLimit;
    while (remaining.length > 0 && !this.stopping) {
      let sent: SendOutcome[] = [];
      let failure: unknown;
      // The send's span ids (tracing on), for the lines that tell of its failure.
      let traceIds: { trace_id?: string; span_id?: string } = {};
      // Paced channels get one reply at a time, each after the limiter lets it through.
      const piece = limit ? remaining.slice(0, 1) : remaining;
      if (limit) await this.pace(limit, session);
      const send = async (span: Span | undefined) => {
        try {
          sent = await sender.send({ session, inReplyTo, replies: piece });
        } catch (err) {
          failure = err;
          sent = err instanceof SendError ? err.sent : [];
          failSpan(span, err);
          traceIds = spanLogIds(span);
        }
      };
      // The platform send continues the trace of the turn that wrote the replies (with tracing
      // off, no span's options are built: this runs for every reply).
      await (tracingEnabled()
        ? inSpan(
            `switchboard.send ${session.channel}`,
            {
              kind: SpanKind.CLIENT,
              parent: traceContext(piece[0]?.payload.trace as Record<string, unknown> | undefined),
              attributes: {
                'switchboard.channel': session.channel,
                'switchboard.session.id': session.id,
                'switchboard.send.replies': piece.length,
                'switchboard.send.attempt': attempt + 1,
              },
            },
            send,
          )
        : send(undefined));
      const outcomes: DeliveryOutcome[] = sent.map((o) => ({
        seq: o.seq,
        status: o.status ?? 'sent',
        channelMessageId: o.channelMessageId,
      }));
      const done = new Set(failure ? sent.map((o) => o.seq) : piece.map((r) => r.seq));
      remaining = remaining.filter((r) => !done.has(r.seq));
      metrics.messagesOut.inc({ channel: session.channel }, sent.length);
      if (failure === undefined) {
        await recordDeliveries(db, session.id, outcomes);
        continue;
      }
      attempt++;
      const message = errorMessage(failure);
      const waitedMs = Math.round(waitedAtRead + (performance.now() - readAt));
      const verdict = deliveryVerdict(failure, attempt, waitedMs, this.options);
      const kind = failureKind(failure);
      if ('giveUp' in verdict) {
        await recordDeliveries(db, session.id, [
          ...outcomes,
          ...remaining.map((r) => ({ seq: r.seq, status: 'failed' as DeliveryStatus, error: message })),
        ]);
        metrics.deliveryFailures.inc({ channel: session.channel, reason: verdict.giveUp });
        logger.error({
          event: 'delivery.failed',
          sessionId: session.id,
          channel: session.channel,
          reason: verdict.giveUp,
          attempts: attempt,
          waitedMs,
          retryable: kind !== 'refused',
          err: message,
          ...traceIds,
        });
        return 'settled';
      }
      await recordDeliveries(db, session.id, [
        ...outcomes,
        ...remaining.map((r) => ({
          seq: r.seq,
          status: 'queued' as DeliveryStatus,
          error: message,
          retryInMs: verdict.retryInMs,
        })),
      ]);
      logger.warn({
        event: 'delivery.retry',
        sessionId: session.id,
        channel: session.channel,
        attempt,
        kind,
        retryInMs: verdict.retryInMs,
        waitedMs,
        err: message,
        ...traceIds,
      });
      await this.resumeLater(session, verdict.retryInMs);
      return 'waiting';
    }
    return 'settled';
  }

  /**
   * Hands the session back to the outbox in `delayMs`, through the durable scheduler. When the
   * scheduler cannot take the job (its store is away), the outbox's sweep takes the session up
   * once its retry is overdue (STALE_REPLY_MS).
   */
  private async resumeLater(session: SessionRecord, delayMs: number): Promise<void> {
    try {
      await scheduleDeliveryRetry(this.options.scheduler, session.id, delayMs);
    } catch (err) {
      this.options.logger.warn({
        event: 'delivery.retry_not_scheduled',
        sessionId: session.id,
        channel: session.channel,
        retryInMs: delayMs,
        err: errorMessage(err),
      });
    }
  }

  /** Waits until the recipient's limit lets one more message through. */
  private async pace(
    limit: NonNullable<ChannelSender['recipientLimit']>,
    session: SessionRecord,
  ): Promise<void> {
    const recipient = limit.recipient?.(session) ?? defaultRecipient(session.nativeKey);
    const key = recipientKey(session.channel, recipient);
    while (!this.stopping) {
      const decision = await this.options.rateLimiter.hit(key, limit.count, limit.windowMs);
      if (decision.allowed) return;
      await this.sleep(Math.max(decision.retryAfterMs, 1));
    }
  }

  /** Waits, or less if stopping. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.timers.delete(timer);
        this.wakeups.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.timers.add(timer);
      this.wakeups.add(wake);
    });
  }

  stop(): void {
    this.stopping = true;
    for (const wake of [...this.wakeups]) wake();
  }
}
