import { createHash } from 'node:crypto';
import type { BotRegistry } from '../config/bots.ts';
import type { Envelope, EnvelopeInput } from '../envelope.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Ingress } from '../ports.ts';
import type { SetAsideHandler } from '../queue/queue.ts';

/** The origin of the apology for a message set aside (`outbound.origin.type`, the envelope id's middle). */
export const SET_ASIDE_ORIGIN = 'set_aside';
/** Longest `outbound.origin.id` (the envelope schema's); a longer envelope id is hashed. */
const MAX_ORIGIN_ID = 500;

/**
 * What the hub does once the queue has set an envelope aside (its turn failed again and again: a
 * write PostgreSQL refuses however it is cleaned, a bug). It is counted
 * (`switchboard_envelopes_set_aside_total`) and, when it was a person's message, the person gets
 * the bot's `apology` — what they get when the bot's code fails — instead of silence: a reply
 * the hub puts into the session through its lane, as SEND TO SESSION does (an outbound envelope,
 * recorded and sent like any reply; the bot does not run). Its id is made of the message's, so
 * it goes once, however often the message is set aside again (an operator's replay).
 */
export function setAsideApology(deps: {
  bots: BotRegistry;
  ingress: Ingress;
  metrics: Metrics;
  logger: Logger;
}): SetAsideHandler {
  const { bots, ingress, metrics, logger } = deps;
  return async (envelope, { attempts }) => {
    metrics.envelopesSetAside.inc({ channel: envelope.channel, kind: envelope.kind });
    const apology = apologyFor(envelope, bots);
    if (!apology) return;
    const { status } = await ingress.accept(apologyEnvelope(envelope, apology)).catch((err: unknown) => {
      logger.error({
        event: 'turn.set_aside_apology_failed',
        envelopeId: envelope.id,
        err: errorMessage(err),
      });
      return { status: 'failed' as const };
    });
    if (status !== 'failed')
      logger.warn({ event: 'turn.set_aside_apology', envelopeId: envelope.id, attempts, status });
  };
}

/**
 * The apology a set-aside envelope is answered with, if any: only a person's message that expects
 * an answer (not mail never to be answered, nor a message over the rate limit), of a bot whose
 * apology is not turned off (blank).
 */
function apologyFor(envelope: Envelope, bots: BotRegistry): string | undefined {
  if (envelope.kind !== 'message' || envelope.noReply || envelope.rateLimited) return undefined;
  if (!bots.has(envelope.bot)) return undefined;
  const { apology } = bots.get(envelope.bot).settings;
  return apology.trim() === '' ? undefined : apology;
}

/** The apology as a reply into the message's session: same key (channel, bot, person, thread), so the same lane. */
function apologyEnvelope(envelope: Envelope, text: string): EnvelopeInput {
  const ref =
    envelope.id.length <= MAX_ORIGIN_ID
      ? envelope.id
      : createHash('sha256').update(envelope.id).digest('hex');
  return {
    id: `outbound:${SET_ASIDE_ORIGIN}:${ref}`,
    kind: 'outbound',
    channel: envelope.channel,
    bot: envelope.bot,
    from: envelope.from,
    ...(envelope.identityVerified !== undefined ? { identityVerified: envelope.identityVerified } : {}),
    ...(envelope.thread !== undefined ? { thread: envelope.thread } : {}),
    ...(envelope.replyTo !== undefined ? { replyTo: envelope.replyTo } : {}),
    text,
    attachments: [],
    meta: {},
    receivedAt: new Date().toISOString(),
    outbound: { role: 'assistant', origin: { type: SET_ASIDE_ORIGIN, id: ref } },
  };
}
