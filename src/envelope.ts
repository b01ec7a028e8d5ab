import { z } from 'zod';

/** Every channel Switchboard speaks. `api` is the plain REST API (`POST /api/chat`). */
export const CHANNELS = ['web', 'whatsapp', 'teams', 'email', 'api'] as const;
export const ChannelSchema = z.enum(CHANNELS);
export type Channel = z.infer<typeof ChannelSchema>;

/**
 * What an envelope asks the engine to do. `message` is a person talking; `start` opens a
 * session and runs the bot's greeting (Teams `conversationUpdate`, `POST /api/session`);
 * `end` closes it and runs the bot's end handler.
 */
export const EnvelopeKindSchema = z.enum(['message', 'start', 'end']);
export type EnvelopeKind = z.infer<typeof EnvelopeKindSchema>;

export const AttachmentSchema = z.object({
  type: z.string().min(1).max(100), // MIME type or a channel kind such as "image", "location"
  name: z.string().max(500).optional(),
  size: z.number().int().nonnegative().optional(),
  url: z.string().max(4000).optional(),
  /** A reference to bytes held elsewhere (a media id, a storage key), never the bytes. */
  ref: z.string().max(1000).optional(),
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

export const BOT_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const BotNameSchema = z
  .string()
  .regex(BOT_NAME_PATTERN, 'a bot name is lower-case letters, digits, - and _');

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
  /**
   * Channel details (subject, IP, page URL, ...). `noReply: true` asks the engine to record the
   * message without running the bot: mail that must never be answered (auto-replies, bounces).
   */
  meta: z.record(z.string(), z.unknown()).default({}),
  receivedAt: z.iso.datetime({ offset: true }),
});
export type Envelope = z.infer<typeof EnvelopeSchema>;
export type EnvelopeInput = z.input<typeof EnvelopeSchema>;

/** Builds the idempotency key from a channel and the platform's own message id. */
export function envelopeId(channel: Channel, nativeMessageId: string): string {
  return `${channel}:${nativeMessageId}`;
}

/** Validates outside data into an envelope; throws a ZodError that names the bad fields. */
export function parseEnvelope(input: unknown): Envelope {
  return EnvelopeSchema.parse(input);
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
