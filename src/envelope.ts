import { z } from 'zod';
import { CHANNEL_NAME_PATTERN } from './channels/declaration.ts';
import { channels } from './channels/registry.ts';
import { EnvelopeTraceSchema } from './telemetry/tracing.ts';

/** A channel's name, as its adapter declares it (`adapters/<name>/channel.ts`). */
export type Channel = string;

/** A channel name some registered adapter declares. */
export const ChannelSchema = z
  .string()
  .regex(CHANNEL_NAME_PATTERN, 'a channel name is lower-case letters, digits, - and _')
  .refine((name) => channels.has(name), {
    error: (issue) => `unknown channel "${String(issue.input)}"; channels: ${channels.names().join(', ')}`,
  });

/**
 * What an envelope asks the engine to do. `message` is a person talking; `start` opens a
 * session and runs the bot's greeting (Teams `conversationUpdate`, `POST /api/session`);
 * `end` closes it and runs the bot's end handler; `outbound` is a reply that something other
 * than the person puts into the session (see `OutboundSchema`); `transfer_end` gives a session
 * that a human agent held back to the bot (`end.reason`, `end.handoffId`) and runs its
 * ON TRANSFER END.
 */
export const EnvelopeKindSchema = z.enum(['message', 'start', 'end', 'outbound', 'transfer_end']);
export type EnvelopeKind = z.infer<typeof EnvelopeKindSchema>;

/** The longest file name an attachment keeps, in UTF-16 units (zod's `max`). */
export const MAX_ATTACHMENT_NAME = 500;

/**
 * A platform's file name cut to what an envelope holds (no platform promises a bound), so that
 * a long one does not make the whole message invalid and lose its text. A character is not split.
 */
export function attachmentName(name: string): string {
  if (name.length <= MAX_ATTACHMENT_NAME) return name;
  const cut = name.slice(0, MAX_ATTACHMENT_NAME);
  return /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut;
}

export const AttachmentSchema = z.object({
  type: z.string().min(1).max(100), // MIME type or a channel kind such as "image", "location"
  name: z.string().max(MAX_ATTACHMENT_NAME).optional(),
  size: z.number().int().nonnegative().optional(),
  url: z.string().max(4000).optional(),
  /** A reference to bytes held elsewhere (a media id, a storage key), never the bytes. */
  ref: z.string().max(1000).optional(),
  /** The file in the hub's file store (`src/files/`): what bots and channels read the bytes from. */
  fileId: z.uuid().optional(),
  /**
   * The bytes are still at the platform: the worker fetches them into the file store before the
   * turn (the channel adapter's `fetchAttachment`), so the webhook is acknowledged without
   * waiting for a download. Never set once `fileId` is.
   */
  pending: z.boolean().optional(),
  data: z.record(z.string(), z.unknown()).optional(),
});
export type Attachment = z.infer<typeof AttachmentSchema>;

export const IdentitySchema = z.object({
  /** Channel-native identity: web UUID, E.164 phone, Teams/AAD user id, email address. */
  id: z.string().min(1).max(500),
  name: z.string().max(500).optional(),
  email: z.string().max(500).optional(),
  tenant: z.string().max(500).optional(),
});
export type Identity = z.infer<typeof IdentitySchema>;

/**
 * The typed part of an `outbound` envelope: a reply that something other than the person (another
 * session's bot — `SEND TO SESSION` —, a human agent, an operator's API call) puts into a session
 * *through that session's lane*, so that it is ordered with the person's own messages (DESIGN.md
 * point 6). The engine does not run the bot for it: it records the envelope's `text` (and
 * `attachments`) as one history row with `role`, and sends it through the outbox / pushes it live
 * exactly like a bot reply. Idempotent on the envelope `id`, which the sender makes deterministic
 * (`<origin>:<its own id>`), so a replayed send records nothing twice. Built by
 * `outboundEnvelope` (src/engine/outbound.ts); channel-neutral: the envelope's channel, bot, from
 * and thread are the session's own, which is what puts it in the session's lane.
 */
export const OutboundSchema = z
  .object({
    /**
     * The session the reply is for. When set, the reply is recorded only if this session is open
     * and holds the envelope's key (else dropped, logged `outbound.no_session`). Absent: the open
     * session of the envelope's key, made on a channel where first contact makes one.
     */
    sessionId: z.uuid().optional(),
    /**
     * The history role: `assistant` (the bot) or `agent` (a person at the business, `agentId`);
     * `note` is an agent's internal note (`agentId`): recorded in the lane, never sent.
     */
    role: z.enum(['assistant', 'agent', 'note']),
    agentId: z.string().min(1).max(200).optional(),
    /** Who put it there: `session` + session id, `agent` + agent id, `operator` + request id, ... */
    origin: z.object({ type: z.string().min(1).max(50), id: z.string().min(1).max(500) }),
    suggestions: z
      .array(z.object({ text: z.string().min(1).max(1000), value: z.string().max(1000).optional() }))
      .max(50)
      .optional(),
    /**
     * An operator's template message (WhatsApp Cloud `type: template`); the row's text then only
     * describes it. Kept in the row's payload for the channel's sender.
     */
    template: z
      .object({
        name: z.string().min(1).max(512),
        language: z.string().min(1).max(20),
        parameters: z.array(z.string().max(1024)).max(100).optional(),
        components: z.array(z.record(z.string(), z.unknown())).max(20).optional(),
      })
      .optional(),
    /** The subject of a new email thread an operator's message opens (kept in the row's payload). */
    subject: z.string().min(1).max(998).optional(),
  })
  .refine((o) => (o.role !== 'assistant') === (o.agentId !== undefined), {
    message: 'an agent reply or note names its agentId, and only those do',
    path: ['agentId'],
  });
export type Outbound = z.infer<typeof OutboundSchema>;

export const BOT_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const BotNameSchema = z
  .string()
  .regex(BOT_NAME_PATTERN, 'a bot name is lower-case letters, digits, - and _');

/** Why a session (`end`) or a handoff (`transfer_end`) ends, and what the engine checks first. */
export const EndSchema = z.object({
  /** `GET SESSION "end_reason"` / the transfer's end reason: `idle`, `closed`, `timeout`, ... */
  reason: z.string().min(1).max(100),
  /** An idle sweep's end: the last activity it saw; a session active since then stays open. */
  idleSince: z.iso.datetime({ offset: true }).optional(),
  /** A `transfer_end`'s handoff. */
  handoffId: z.string().min(1).max(200).optional(),
});
export type EnvelopeEnd = z.infer<typeof EndSchema>;

/** A message over its session's rate limit, recorded as refused (set by the ingress). */
export const RateLimitedSchema = z.object({
  retryAfterMs: z.number().nonnegative(),
  /** This refusal is the first in its minute: the person is told, once. */
  notice: z.boolean(),
});
export type RateLimited = z.infer<typeof RateLimitedSchema>;

/** An attachment the ingress refused (listed in the history, not kept). */
export const RefusedAttachmentSchema = z.object({
  type: z.string(),
  name: z.string().optional(),
  size: z.number().optional(),
  reason: z.enum(['too_large', 'type_refused', 'unavailable']),
  /** What the person is told. */
  message: z.string().max(1000).optional(),
});
export type RefusedAttachment = z.infer<typeof RefusedAttachmentSchema>;

export const EnvelopeSchema = z.object({
  /** `${channel}:${native message id}` — the idempotency key of the whole pipeline. */
  id: z.string().min(3).max(1000),
  kind: EnvelopeKindSchema.default('message'),
  channel: ChannelSchema,
  bot: BotNameSchema,
  from: IdentitySchema,
  /**
   * Whether the channel could verify that `from` really sent this message. Absent: the channel's
   * usual trust. `false`: this one sender is not identified: the session made for it is linked
   * to no user (no USER MEMORY) and stays anonymous. An adapter that sets it keys such messages
   * apart (a `from.id` of their own), so they never reach a verified person's session.
   */
  identityVerified: z.boolean().optional(),
  /** Channel-native conversation or thread, where the channel has one. */
  thread: z.string().max(1000).optional(),
  text: z.string(),
  attachments: z.array(AttachmentSchema).default([]),
  /** Whatever the adapter needs to answer later, from any process. */
  replyTo: z.unknown().optional(),

  /** Channel details (subject, IP, page URL, ...), kept with the session that the message opens. */
  meta: z.record(z.string(), z.unknown()).default({}),
  // What the hub's own code tells the engine; typed, and never copied into the session's meta.
  /** Record the message without running the bot: mail that must never be answered (auto-replies, bounces). */
  noReply: z.boolean().optional(),
  /** Over the session's message limit: recorded as refused, not answered (set by the ingress). */
  rateLimited: RateLimitedSchema.optional(),
  /** Attachments over the size limit, dropped from `attachments` (set by the ingress). */
  refusedAttachments: z.array(RefusedAttachmentSchema).optional(),
  /** For `end` and `transfer_end`: why, and what the engine checks first. */
  end: EndSchema.optional(),
  receivedAt: z.iso.datetime({ offset: true }),
  /** Present exactly when `kind` is `outbound`. */
  outbound: OutboundSchema.optional(),
  /**
   * The W3C trace context of the accept (set by the ingress when tracing is on): the worker's
   * turn and the delivery continue this trace. Never part of the session's data.
   */
  trace: EnvelopeTraceSchema.optional(),
});
export type Envelope = z.infer<typeof EnvelopeSchema>;
export type EnvelopeInput = z.input<typeof EnvelopeSchema>;

/** Builds the idempotency key from a channel and the platform's own message id. */
export function envelopeId(channel: Channel, nativeMessageId: string): string {
  return `${channel}:${nativeMessageId}`;
}

/**
 * The rule across fields that the schema does not hold (a refinement on the object would keep
 * others from `.omit`-ing from it): `outbound` is there exactly when `kind` is `outbound`.
 */
export function outboundMismatch(envelope: Pick<Envelope, 'kind' | 'outbound'>): string | undefined {
  if (envelope.kind === 'outbound' && !envelope.outbound)
    return 'an outbound envelope needs its outbound part';
  if (envelope.kind !== 'outbound' && envelope.outbound)
    return `a ${envelope.kind} envelope has no outbound part`;
  return undefined;
}

/** Validates outside data into an envelope; throws a ZodError that names the bad fields. */
export function parseEnvelope(input: unknown): Envelope {
  const envelope = EnvelopeSchema.parse(input);
  const mismatch = outboundMismatch(envelope);
  if (mismatch) throw new z.ZodError([{ code: 'custom', path: ['outbound'], message: mismatch, input }]);
  return envelope;
}

/**
 * The channel-native part of the session key: the identity, and the thread where one exists,
 * so that an email thread or a Teams channel thread is a session of its own.
 */
export function nativeSessionKey(envelope: Pick<Envelope, 'from' | 'thread'>): string {
  return envelope.thread ? `${envelope.from.id}#${envelope.thread}` : envelope.from.id;
}

/**
 * The inverse of `nativeSessionKey`: the identity and thread an envelope needs to land in a
 * session's lane. Split at the first '#'; should the identity itself hold a '#', the split lands
 * elsewhere but `nativeSessionKey` joins the parts back into the same key, so the lane is the same.
 */
export function identityOfNativeKey(nativeKey: string): { from: { id: string }; thread?: string } {
  const mark = nativeKey.indexOf('#');
  if (mark <= 0) return { from: { id: nativeKey } };
  return { from: { id: nativeKey.slice(0, mark) }, thread: nativeKey.slice(mark + 1) };
}

/** The full session key `(bot, channel, from.id[, thread])`, used as the per-session FIFO lane. */
export function sessionLane(envelope: Pick<Envelope, 'bot' | 'channel' | 'from' | 'thread'>): string {
  return `${envelope.bot}|${envelope.channel}|${nativeSessionKey(envelope)}`;
}
