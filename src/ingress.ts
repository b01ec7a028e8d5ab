import { ZodError } from 'zod';
import { channels } from './channels/registry.ts';
import type { BotRegistry } from './config/bots.ts';
import { formatIssues } from './config/env-parsing.ts';
import { type Envelope, type EnvelopeInput, parseEnvelope, sessionLane } from './envelope.ts';
import { tooLarge as tooLargeError } from './files/store.ts';
import type { SessionRules } from './lifecycle/rules.ts';
import { MINUTE_MS, type RateLimiter, rateNoticeKey, sessionMessagesKey } from './limits/rate-limiter.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { AcceptResult, Ingress } from './ports.ts';
import type { EnqueueResult, InboundQueue } from './queue/queue.ts';
import { carryAcceptTrace, startAcceptSpan } from './telemetry/envelope-spans.ts';
import {
  activeContext,
  failSpan,
  type Span,
  spanIn,
  traceContext,
  tracingEnabled,
} from './telemetry/tracing.ts';
import { cleanTextDeep } from './text.ts';

export class InvalidEnvelopeError extends Error {
  override name = 'InvalidEnvelopeError';
  constructor(readonly issues: ZodError['issues']) {
    super(`invalid envelope: ${formatIssues(issues)}`);
  }
}

/** A message over its session's rate limit, on a channel whose client is told at once (HTTP 429, an error frame). */
export class RateLimitedError extends Error {
  override name = 'RateLimitedError';
  constructor(
    readonly limit: number,
    readonly retryAfterMs: number,
  ) {
    super(
      `more than ${limit} messages a minute in this session; try again in ${Math.ceil(retryAfterMs / 1000)} s`,
    );
  }
}

/**
 * Whether the sender of a message hears the answer to it (HTTP, the web socket: channels whose
 * clients read or are pushed their replies): a message over the limit is refused there and then,
 * and nothing is queued. Where a worker's sender delivers replies (WhatsApp, Teams, email) the
 * platform has already delivered the message, so it is recorded as refused and the person gets
 * one polite notice per minute, not one per message.
 */
function refusedAtTheDoor(channel: string): boolean {
  const delivery = channels.get(channel)?.delivery;
  return delivery === 'live' || delivery === 'client';
}

export interface IngressOptions {
  queue: InboundQueue;
  metrics: Metrics;
  logger: Logger;
  bots: BotRegistry;
  rateLimiter: RateLimiter;
}

/**
 * Validates envelopes, applies the session's message rate limit and attachment size limit, and
 * queues them. Deduplication is the queue's: an id is only marked as seen in the same durable
 * step that queues it, so a failed enqueue never swallows a message.
 */
export function createIngress(options: IngressOptions): Ingress {
  const { queue, metrics, logger, bots, rateLimiter } = options;

  async function limitRate(envelope: Envelope, rules: SessionRules): Promise<Envelope> {
    const lane = sessionLane(envelope);
    const decision = await rateLimiter
      .hit(sessionMessagesKey(lane), rules.messagesPerMinute, MINUTE_MS, envelope.id)
      .catch((err: Error) => {
        // Without the limiter (Redis away) messages still flow: losing one is worse than a burst.
        logger.warn({ event: 'ingress.rate_limiter_failed', err: err.message });
        return undefined;
      });
    if (!decision || decision.allowed) return envelope;
    metrics.rateLimited.inc({ channel: envelope.channel });
    logger.info({ event: 'ingress.rate_limited', lane, envelopeId: envelope.id });
    if (refusedAtTheDoor(envelope.channel))
      throw new RateLimitedError(rules.messagesPerMinute, decision.retryAfterMs);
    const notice = await rateLimiter
      .hit(rateNoticeKey(lane), 1, MINUTE_MS)
      .then((d) => d.allowed)
      .catch(() => false);
    return { ...envelope, rateLimited: { retryAfterMs: decision.retryAfterMs, notice } };
  }

  function limitAttachments(envelope: Envelope, { maxFileBytes }: SessionRules): Envelope {
    const tooLarge = envelope.attachments.filter((a) => (a.size ?? 0) > maxFileBytes);
    if (tooLarge.length === 0) return envelope;
    logger.info({ event: 'ingress.attachment_too_large', envelopeId: envelope.id, count: tooLarge.length });
    return {
      ...envelope,
      attachments: envelope.attachments.filter((a) => (a.size ?? 0) <= maxFileBytes),
      refusedAttachments: [
        ...(envelope.refusedAttachments ?? []),
        ...tooLarge.map((a) => ({
          type: a.type,
          name: a.name,
          size: a.size,
          reason: 'too_large' as const,
          message: tooLargeError(a.name ?? 'the file', maxFileBytes).message,
        })),
      ],
    };
  }

  /**
   * `span`: the accept's (tracing on), ended here when the accept settles (an error marks it
   * failed): in the accept's own frame, not by a `.then` on its promise (`endWhenSettled`), which
   * cost every traced message a promise, two closures and a microtask more, alive while the
   * envelope waits for Redis (README "Tracing").
   */
  async function accept(input: EnvelopeInput, span?: Span): Promise<AcceptResult> {
    try {
      let envelope: Envelope;
      try {
        envelope = parseEnvelope(input);
      } catch (err) {
        if (err instanceof ZodError) throw new InvalidEnvelopeError(err.issues);
        throw err;
      }
      envelope = cleanEnvelopeText(envelope, logger);
      if (span) carryAcceptTrace(envelope, span);
      let status: EnqueueResult | 'limited' | undefined;
      if (envelope.kind === 'message') {
        const rules = bots.rules(envelope.bot, envelope.channel);
        envelope = limitAttachments(envelope, rules);
        // Where the queue can, the message is counted against its session's limit in the step
        // that queues it; a full window (or a queue that cannot) takes the way below.
        status = await queue.enqueueWithinLimit?.(envelope, {
          key: sessionMessagesKey(sessionLane(envelope)),
          limit: rules.messagesPerMinute,
          windowMs: MINUTE_MS,
        });
        if (status === undefined || status === 'limited') envelope = await limitRate(envelope, rules);
      }
      if (status === undefined || status === 'limited') status = await queue.enqueue(envelope);
      if (status === 'duplicate') {
        metrics.duplicatesIn.inc({ channel: envelope.channel });
        logger.debug({ event: 'ingress.duplicate', envelopeId: envelope.id });
      } else {
        metrics.messagesIn.inc({ channel: envelope.channel });
      }
      if (span) {
        span.setAttribute('switchboard.accept.status', status);
        span.end();
      }
      return { status, envelopeId: envelope.id };
    } catch (err) {
      if (span) {
        failSpan(span, err);
        span.end();
      }
      throw err;
    }
  }

  return {
    accept(input: EnvelopeInput): Promise<AcceptResult> {
      if (!tracingEnabled()) return accept(input);
      // Inside a request (or a turn) the accept is its child; else it continues a trace the input
      // carries (a replay), or starts one. The span is handed down rather than made active: the
      // accept starts no span under it, and a context made active (AsyncLocalStorage) makes every
      // promise of the process pay from then on, in a process that may have no other reason to.
      const active = activeContext()!;
      const parent = spanIn(active) ? active : traceContext(input.trace)!;
      const span = startAcceptSpan(input, parent);
      return accept(input, span);
    },
  };
}

/**
 * Webhooks and mailboxes deliver what the platform hands them, and their sender cannot be told
 * "400": a NUL or a lone surrogate anywhere in the envelope (text, name, subject, ids) would make
 * every write of the message fail, and the platform or the mailbox would offer it again forever.
 * Such characters become U+FFFD and the message goes on. (REST and the socket refuse them at
 * their own door with 400 `invalid_text`.)
 */
export function cleanEnvelopeText(envelope: Envelope, logger: Logger): Envelope {
  const { value, cleaned } = cleanTextDeep(envelope);
  if (cleaned.length === 0) return envelope;
  logger.warn({
    event: 'ingress.text_cleaned',
    envelopeId: value.id,
    channel: value.channel,
    fields: cleaned.slice(0, 20),
  });
  return value;
}
