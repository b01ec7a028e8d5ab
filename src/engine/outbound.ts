import {
  type Attachment,
  type Envelope,
  type EnvelopeInput,
  identityOfNativeKey,
  type Outbound,
} from '../envelope.ts';
import type { DeliveryStatus, MessagePayload, SessionRecord, Suggestion } from '../store/records.ts';
import type { TurnWrite } from '../store/turns.ts';

/** What a sender says about a reply it puts into a session; the envelope's other fields come from the session. */
export interface OutboundReply {
  /**
   * The idempotency id, unique per sender and deterministic for the same send (a replayed turn,
   * a retried API call): the envelope id is `outbound:<origin.type>:<id>`.
   */
  id: string;
  text: string;
  role: Outbound['role'];
  agentId?: string;
  origin: Outbound['origin'];
  suggestions?: Suggestion[];
  attachments?: Attachment[];
  template?: Outbound['template'];
  subject?: string;
  /** When the sender made it; now when absent. */
  at?: Date;
}

/**
 * The envelope that puts `reply` into `session` through the session's own lane: the session's
 * bot, channel and the identity and thread its key was made of, so that the queue orders it with
 * the person's messages. Hand it to `Ingress.accept`, which only queues it: the sender never waits
 * for the other session's turn (two sessions sending to each other cannot deadlock).
 */
export function outboundEnvelope(
  session: Pick<SessionRecord, 'id' | 'bot' | 'channel' | 'nativeKey'>,
  reply: OutboundReply,
): EnvelopeInput {
  return {
    id: `outbound:${reply.origin.type}:${reply.id}`,
    kind: 'outbound',
    channel: session.channel,
    bot: session.bot,
    ...identityOfNativeKey(session.nativeKey),
    text: reply.text,
    attachments: reply.attachments ?? [],
    meta: {},
    receivedAt: (reply.at ?? new Date()).toISOString(),
    outbound: {
      sessionId: session.id,
      role: reply.role,
      ...(reply.agentId !== undefined ? { agentId: reply.agentId } : {}),
      origin: reply.origin,
      ...(reply.suggestions?.length ? { suggestions: reply.suggestions } : {}),
      ...(reply.template ? { template: reply.template } : {}),
      ...(reply.subject !== undefined ? { subject: reply.subject } : {}),
    },
  };
}

/** The history row an outbound envelope becomes: a reply with its role, sent like any other. */
export function outboundRow(
  envelope: Envelope,
  seq: number,
  deliveryStatus: DeliveryStatus,
): TurnWrite['inbound'] | undefined {
  const out = envelope.outbound;
  if (envelope.kind !== 'outbound' || !out) return undefined;
  const payload: MessagePayload = { origin: out.origin };
  if (out.agentId !== undefined) payload.agentId = out.agentId;
  if (out.suggestions?.length) payload.suggestions = out.suggestions;
  if (envelope.attachments.length > 0) payload.attachments = envelope.attachments;
  if (out.template) payload.template = out.template;
  if (out.subject !== undefined) payload.subject = out.subject;
  // A note is history only: no delivery status, so nothing sends it or pushes it to the person.
  if (out.role === 'note')
    return { seq, role: out.role, content: envelope.text, envelopeId: envelope.id, payload };
  return { seq, role: out.role, content: envelope.text, envelopeId: envelope.id, payload, deliveryStatus };
}

/** The rows of a committed turn that go out to the person: an outbound envelope's own row, then the replies. */
export function outgoingRows(write: TurnWrite): { seq: number; content: string; payload: MessagePayload }[] {
  return write.inbound.deliveryStatus ? [write.inbound, ...write.replies] : write.replies;
}

/** An outbound envelope names its session: is `session` that one (open, and of the envelope's key)? */
export function isOutboundTarget(envelope: Envelope, session: SessionRecord): boolean {
  const wanted = envelope.outbound?.sessionId;
  return wanted === undefined || (wanted === session.id && session.endedAt === null);
}
