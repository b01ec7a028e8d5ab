import type { Channel } from '../envelope.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { backoffDelay } from '../queue/queue.ts';
import type { Db } from '../store/db.ts';
import { undeliveredReplies, updateDelivery } from '../store/messages.ts';
import type { DeliveryStatus, SessionRecord } from '../store/records.ts';
import { loadSnapshot } from '../store/sessions.ts';
import { type ChannelSender, type OutboundBatch, SendError, type SendOutcome } from './sender.ts';

export const DELIVERY_RETRY_BASE_MS = 500;
export const DELIVERY_RETRY_CAP_MS = 60_000;
export const DEFAULT_DELIVERY_ATTEMPTS = 8;
/** Replies older than this and still queued at start belong to a process that died before sending. */
const SWEEP_AGE_MS = 5_000;
const SWEEP_BATCH = 500;

export interface DeliveryOptions {
  db: Db;
  logger: Logger;
  metrics: Metrics;
  senders: Map<Channel, ChannelSender>;
  maxAttempts?: number;
}

/**
 * Sends committed replies through their channel's sender, one session at a time and in
 * sequence order, retrying with exponential backoff and jitter. Every outcome is written to the
 * message's delivery status; a reply that exhausts its attempts is marked `failed` and kept.
 * Channels without a sender (the REST API, the web socket) are read by their clients: their
 * replies are `sent` as soon as they are committed.
 */
export class Delivery {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopping = false;

  constructor(private readonly options: DeliveryOptions) {}

  /** The status a reply is committed with on this channel. */
  initialStatus(channel: Channel): DeliveryStatus {
    return this.options.senders.has(channel) ? 'queued' : 'sent';
  }

  /** Queues a turn's replies behind the session's earlier ones. Never throws. */
  dispatch(batch: OutboundBatch): void {
    const sender = this.options.senders.get(batch.session.channel);
    if (!sender || batch.replies.length === 0 || this.stopping) return;
    const id = batch.session.id;
    const previous = this.chains.get(id) ?? Promise.resolve();
    const next = previous.then(() => this.deliver(sender, batch));
    this.chains.set(id, next);
    void next.finally(() => {
      if (this.chains.get(id) === next) this.chains.delete(id);
    });
  }

  /** Tells the person the bot is working, where the channel can show it. Never throws, never waits. */
  typing(session: SessionRecord): void {
    const sender = this.options.senders.get(session.channel);
    if (!sender?.typing || this.stopping) return;
    const onError = (err: Error) =>
      this.options.logger.debug({ event: 'delivery.typing_failed', sessionId: session.id, err: err.message });
    sender.typing(session).catch(onError);
  }

  /** Re-sends replies that were committed but never sent (their process died). */
  async sweep(): Promise<number> {
    const stale = await undeliveredReplies(this.options.db, new Date(Date.now() - SWEEP_AGE_MS), SWEEP_BATCH);
    const bySession = new Map<string, typeof stale>();
    for (const m of stale) {
      if (!bySession.has(m.sessionId)) bySession.set(m.sessionId, []);
      bySession.get(m.sessionId)!.push(m);
    }
    for (const [sessionId, messages] of bySession) {
      const snapshot = await loadSnapshot(this.options.db, sessionId);
      if (!snapshot) continue;
      let batch: OutboundBatch | undefined;
      for (const m of messages) {
        if (!batch || batch.inReplyTo !== m.inReplyTo) {
          if (batch) this.dispatch(batch);
          batch = { session: snapshot.session, inReplyTo: m.inReplyTo ?? '', replies: [] };
        }
        batch.replies.push({ seq: m.seq, text: m.content, payload: m.payload });
      }
      if (batch) this.dispatch(batch);
    }
    if (stale.length > 0) this.options.logger.info({ event: 'delivery.swept', count: stale.length });
    return stale.length;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.chains.values()]);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  private async record(session: SessionRecord, outcomes: SendOutcome[]): Promise<void> {
    for (const o of outcomes) {
      await updateDelivery(this.options.db, {
        sessionId: session.id,
        seq: o.seq,
        status: o.status ?? 'sent',
        channelMessageId: o.channelMessageId ?? null,
        attempted: true,
      });
      this.options.metrics.messagesOut.inc({ channel: session.channel });
    }
  }

  private async deliver(sender: ChannelSender, batch: OutboundBatch): Promise<void> {
    const { logger } = this.options;
    const maxAttempts = this.options.maxAttempts ?? DEFAULT_DELIVERY_ATTEMPTS;
    let remaining = batch.replies;
    for (let attempt = 1; remaining.length > 0; attempt++) {
      if (this.stopping) return;
      try {
        const outcomes = await sender.send({ ...batch, replies: remaining });
        await this.record(batch.session, outcomes);
        return;
      } catch (err) {
        const sendError = err instanceof SendError ? err : undefined;
        const sent = sendError?.sent ?? [];
        await this.record(batch.session, sent).catch(() => undefined);
        const done = new Set(sent.map((o) => o.seq));
        remaining = remaining.filter((r) => !done.has(r.seq));
        const message = err instanceof Error ? err.message : String(err);
        const retryable = sendError ? sendError.retryable : true;
        if (!retryable || attempt >= maxAttempts) {
          for (const r of remaining) {
            await updateDelivery(this.options.db, {
              sessionId: batch.session.id,
              seq: r.seq,
              status: 'failed',
              error: message,
              attempted: true,
            }).catch(() => undefined);
          }
          this.options.metrics.deliveryFailures.inc({ channel: batch.session.channel });
          logger.error({
            event: 'delivery.failed',
            sessionId: batch.session.id,
            channel: batch.session.channel,
            attempts: attempt,
            retryable,
            err: message,
          });
          return;
        }
        const delay = Math.max(
          sendError?.retryAfterMs ?? 0,
          backoffDelay(attempt, DELIVERY_RETRY_BASE_MS, DELIVERY_RETRY_CAP_MS),
        );
        logger.warn({
          event: 'delivery.retry',
          sessionId: batch.session.id,
          channel: batch.session.channel,
          attempt,
          retryInMs: delay,
          err: message,
        });
        await this.sleep(delay);
      }
    }
  }
}
