import { type EnvelopeInput, envelopeId } from '../../../src/envelope.ts';
import { toE164 } from '../phone.ts';
import type { CloudReplyTo } from '../reply-to.ts';
import type { InboundMessage } from './parse.ts';

/** A platform time this far ahead of ours is not believed (clock skew, or a bad value). */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * A Cloud API message as an envelope: id `whatsapp:<wamid>`, the sender's E.164 number as the
 * session key, and in `replyTo` the business number that received it (which answers it) and
 * when the person wrote (which opens the 24-hour customer service window).
 * Undefined when the sender's id is no phone number.
 */
export function cloudMessageToEnvelope(
  msg: InboundMessage,
  bot: string,
  now = new Date(),
): EnvelopeInput | undefined {
  const phone = toE164(msg.waId);
  if (!phone) return undefined;
  const sentAt = msg.sentAt && msg.sentAt.getTime() <= now.getTime() + MAX_CLOCK_SKEW_MS ? msg.sentAt : now;
  const replyTo: CloudReplyTo = {
    transport: 'cloud',
    phoneNumberId: msg.phoneNumberId,
    waId: msg.waId,
    messageId: msg.id,
    at: sentAt.toISOString(),
  };
  return {
    id: envelopeId('whatsapp', msg.id),
    channel: 'whatsapp',
    bot,
    from: { id: phone, ...(msg.profileName ? { name: msg.profileName } : {}) },
    text: msg.text,
    attachments: msg.attachments,
    replyTo,
    meta: {
      transport: 'cloud',
      type: msg.type,
      phoneNumberId: msg.phoneNumberId,
      ...(msg.displayPhoneNumber ? { displayPhoneNumber: msg.displayPhoneNumber } : {}),
      waId: msg.waId,
      sentAt: sentAt.toISOString(),
      ...msg.details,
    },
    receivedAt: now.toISOString(),
  };
}
