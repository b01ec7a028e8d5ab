import { ZodError } from 'zod';
import { type Envelope, type EnvelopeInput, EnvelopeSchema } from './envelope.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { AcceptResult, Ingress } from './ports.ts';
import type { InboundQueue } from './queue/queue.ts';

export class InvalidEnvelopeError extends Error {
  override name = 'InvalidEnvelopeError';
  constructor(readonly issues: ZodError['issues']) {
    super(`invalid envelope: ${issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
}

/**
 * Validates envelopes and queues them. Deduplication is the queue's: an id is only marked as
 * seen in the same durable step that queues it, so a failed enqueue never swallows a message.
 */
export function createIngress(queue: InboundQueue, metrics: Metrics, logger: Logger): Ingress {
  return {
    async accept(input: EnvelopeInput): Promise<AcceptResult> {
      let envelope: Envelope;
      try {
        envelope = EnvelopeSchema.parse(input);
      } catch (err) {
        if (err instanceof ZodError) throw new InvalidEnvelopeError(err.issues);
        throw err;
      }
      const status = await queue.enqueue(envelope);
      if (status === 'duplicate') {
        metrics.duplicatesIn.inc({ channel: envelope.channel });
        logger.debug({ event: 'ingress.duplicate', envelopeId: envelope.id });
      } else {
        metrics.messagesIn.inc({ channel: envelope.channel });
      }
      return { status, envelopeId: envelope.id };
    },
  };
}
