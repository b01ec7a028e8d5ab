import { createHash } from 'node:crypto';
import { Counter } from 'prom-client';
import type { RateLimiter } from '../../src/limits/rate-limiter.ts';
import type { Logger } from '../../src/logger.ts';
import type { Metrics } from '../../src/metrics.ts';

export const DEFAULT_LOOP_MAX_REPLIES = 10;
export const DEFAULT_LOOP_MAX_REPEATS = 3;
export const DEFAULT_LOOP_WINDOW_MINUTES = 60;
/**
 * Texts shorter than this (normalized) are not compared: a person answers "yes", "thanks" or a
 * menu's "2" many times; a responder's notice is sentences long.
 */
export const MIN_REPEAT_TEXT_CHARS = 40;

/** Why a mail the bot would answer is recorded without an answer (`email_messages.no_reply`). */
export type LoopReason = 'loop-replies' | 'loop-repeated';

/** The limits (EMAIL_LOOP_*); a limit of 0 is off. */
export interface LoopLimits {
  /** Mails from one address the bot answers within the window. */
  maxReplies: number;
  /** Mails from one address with the same text the bot answers within the window. */
  maxRepeats: number;
  windowMs: number;
}

/**
 * The limiter keys: by the sender's address, which is personal data kept only for the window.
 * Shared by every gateway through the hub's limiter (Redis when configured).
 */
export const loopRepliesKey = (address: string) => `email:loop:${address}:replies`;
export const loopRepeatKey = (address: string, text: string) =>
  `email:loop:${address}:text:${createHash('sha256').update(normalizedText(text)).digest('base64url')}`;
/** Lets one `email.loop_suspected` line a window through for an address. */
export const loopNoticeKey = (address: string) => `email:loop:${address}:notice`;

/**
 * The text as an auto-responder repeats it: case, spacing and numbers (a ticket number, a date
 * that changes with every copy) do not make two mails different.
 */
export function normalizedText(text: string): string {
  return text.toLowerCase().replace(/\d+/g, '0').replace(/\s+/g, ' ').trim();
}

export interface LoopGuardDeps {
  limiter: RateLimiter;
  logger: Logger;
  metrics: Metrics;
  limits: LoopLimits;
}

/**
 * Mail loops with responders that ignore `Auto-Submitted` (ticket systems, "I'm away" scripts):
 * each of their mails would get an answer, which gets an auto-answer, for ever. Past a number of
 * answers to one address in a window (or of answers to the same text, the quicker sign), its mail
 * is still recorded but not answered. Only inbound mail the bot would answer is counted (not
 * auto-replies, which are never answered anyway), and only inbound mail is held: an agent's
 * replies go out as ever. (The adapter does not know whether people hold the session: a person
 * writing to an agent is counted too, which only matters once the bot answers again.)
 */
export class LoopGuard {
  private readonly suspected: Counter<'reason'>;

  constructor(private readonly deps: LoopGuardDeps) {
    this.suspected = loopCounter(deps.metrics);
  }

  /**
   * Counts one mail about to be answered; the reason it must not be, if it is over a limit.
   * Named by its envelope id: the same mail handled again (a retry) is not counted twice. Without
   * the limiter (Redis away) mail is answered: a loop for a while is better than silence.
   */
  async check(
    address: string,
    text: string,
    about: { envelopeId: string; mailbox: string; bot: string },
  ): Promise<LoopReason | undefined> {
    const { limiter, limits, logger } = this.deps;
    const sender = address.toLowerCase();
    let reason: LoopReason | undefined;
    try {
      // The repeated text first: it is the sooner sign, and a refused hit is not counted.
      if (limits.maxRepeats > 0 && normalizedText(text).length >= MIN_REPEAT_TEXT_CHARS) {
        const d = await limiter.hit(
          loopRepeatKey(sender, text),
          limits.maxRepeats,
          limits.windowMs,
          about.envelopeId,
        );
        if (!d.allowed) reason = 'loop-repeated';
      }
      if (!reason && limits.maxReplies > 0) {
        const d = await limiter.hit(
          loopRepliesKey(sender),
          limits.maxReplies,
          limits.windowMs,
          about.envelopeId,
        );
        if (!d.allowed) reason = 'loop-replies';
      }
    } catch (err) {
      logger.warn({
        event: 'email.loop_check_failed',
        envelopeId: about.envelopeId,
        err: (err as Error).message,
      });
      return undefined;
    }
    if (!reason) return undefined;
    this.suspected.inc({ reason });
    const first = await limiter
      .hit(loopNoticeKey(sender), 1, limits.windowMs)
      .then((d) => d.allowed)
      .catch(() => true);
    if (first)
      logger.warn({
        event: 'email.loop_suspected',
        ...about,
        reason,
        limit: reason === 'loop-repeated' ? limits.maxRepeats : limits.maxReplies,
        windowMinutes: limits.windowMs / 60_000,
      });
    return reason;
  }
}

function loopCounter(metrics: Metrics): Counter<'reason'> {
  const name = 'switchboard_email_loop_suspected_total';
  const existing = metrics.registry.getSingleMetric(name);
  if (existing) return existing as Counter<'reason'>;
  return new Counter({
    name,
    help: 'Mails recorded without an answer because their sender seems to be a responder in a mail loop',
    labelNames: ['reason'] as const,
    registers: [metrics.registry],
  });
}
