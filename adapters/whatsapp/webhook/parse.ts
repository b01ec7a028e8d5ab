import { z } from 'zod';
import { type Attachment, attachmentName } from '../../../src/envelope.ts';
import type { DeliveryStatus } from '../../../src/store/records.ts';

/*
 * The Cloud API `messages` webhook, as Meta documents it: `entry[].changes[].value` holds
 * `metadata`, `contacts[]`, `messages[]`, `statuses[]` and `errors[]`. Every object is read
 * loosely (unknown fields are kept aside, not refused): Meta adds fields without notice.
 */

const ErrorSchema = z.looseObject({
  code: z.coerce.number().optional(),
  title: z.string().optional(),
  message: z.string().optional(),
  error_data: z.looseObject({ details: z.string().optional() }).optional(),
});

const MediaSchema = z.looseObject({
  id: z.string(),
  mime_type: z.string().optional(),
  sha256: z.string().optional(),
  caption: z.string().optional(),
  filename: z.string().optional(),
  url: z.string().optional(),
  voice: z.boolean().optional(),
  animated: z.boolean().optional(),
});

const MessageSchema = z.looseObject({
  id: z.string().min(1),
  from: z.string().min(1),
  timestamp: z.string().optional(),
  type: z.string(),
  context: z.looseObject({}).optional(),
  referral: z.looseObject({}).optional(),
  text: z.looseObject({ body: z.string() }).optional(),
  interactive: z
    .looseObject({
      type: z.string(),
      button_reply: z.looseObject({ id: z.string(), title: z.string().optional() }).optional(),
      list_reply: z
        .looseObject({ id: z.string(), title: z.string().optional(), description: z.string().optional() })
        .optional(),
      nfm_reply: z
        .looseObject({
          response_json: z.string().optional(),
          body: z.string().optional(),
          name: z.string().optional(),
        })
        .optional(),
    })
    .optional(),
  button: z.looseObject({ payload: z.string().optional(), text: z.string().optional() }).optional(),
  image: MediaSchema.optional(),
  audio: MediaSchema.optional(),
  video: MediaSchema.optional(),
  document: MediaSchema.optional(),
  sticker: MediaSchema.optional(),
  location: z
    .looseObject({
      latitude: z.number(),
      longitude: z.number(),
      name: z.string().optional(),
      address: z.string().optional(),
      url: z.string().optional(),
    })
    .optional(),
  contacts: z.array(z.looseObject({})).optional(),
  reaction: z.looseObject({ message_id: z.string().optional(), emoji: z.string().optional() }).optional(),
  errors: z.array(ErrorSchema).optional(),
});

const StatusSchema = z.looseObject({
  id: z.string().min(1),
  status: z.string(),
  timestamp: z.string().optional(),
  recipient_id: z.string().optional(),
  errors: z.array(ErrorSchema).optional(),
});

const ValueSchema = z.looseObject({
  messaging_product: z.string().optional(),
  metadata: z
    .looseObject({ display_phone_number: z.string().optional(), phone_number_id: z.string() })
    .optional(),
  contacts: z
    .array(
      z.looseObject({
        wa_id: z.string().optional(),
        profile: z.looseObject({ name: z.string().optional() }).optional(),
      }),
    )
    .optional(),
  messages: z.array(z.unknown()).optional(),
  statuses: z.array(z.unknown()).optional(),
  errors: z.array(ErrorSchema).optional(),
});

export const WebhookSchema = z.looseObject({
  object: z.string(),
  entry: z.array(
    z.looseObject({
      id: z.string().optional(),
      changes: z.array(z.looseObject({ field: z.string().optional(), value: z.unknown() })).default([]),
    }),
  ),
});

/** Media kinds whose payload is `{id, mime_type, sha256, ...}` under the key of the same name. */
const MEDIA_KINDS = ['image', 'audio', 'video', 'document', 'sticker'] as const;

export interface InboundMessage {
  /** The wamid: the idempotency key. */
  id: string;
  /** The sender's WhatsApp id (digits). */
  waId: string;
  /** From `contacts[].profile.name`. */
  profileName?: string;
  phoneNumberId: string;
  displayPhoneNumber?: string;
  /** When the person sent it (from the platform's timestamp). */
  sentAt?: Date;
  type: string;
  /** What the bot reads: the text, a caption, the chosen reply's id, a reaction's emoji. */
  text: string;
  attachments: Attachment[];
  /** Type-specific details a bot may want: the chosen reply, the reaction, the ad, the quoted message. */
  details: Record<string, unknown>;
}

export interface StatusUpdate {
  /** The wamid of a message we sent. */
  messageId: string;
  status: DeliveryStatus;
  recipientId?: string;
  phoneNumberId?: string;
  /** `131047 Re-engagement message: <details>` for a failure. */
  error?: string;
}

export interface PlatformError {
  phoneNumberId?: string;
  error: string;
}

export interface ParsedWebhook {
  messages: InboundMessage[];
  statuses: StatusUpdate[];
  /** Value-level errors Meta reports about the account or the app. */
  errors: PlatformError[];
  /** What could not be read, with why (logged, never fatal for the rest of the batch). */
  skipped: { what: string; reason: string }[];
}

/** What the webhook does with a person's reaction (`WHATSAPP_REACTIONS`). */
export type ReactionPolicy = 'ignore' | 'message';

export interface ParseOptions {
  /**
   * `ignore` (the default): a reaction is acknowledged and skipped, as every other channel does.
   * `message`: a reaction is a message whose text is the emoji. A removed reaction is skipped
   * either way: there is nothing in it to answer.
   */
  reactions?: ReactionPolicy;
}

export class NotAWhatsAppWebhookError extends Error {
  override name = 'NotAWhatsAppWebhookError';
}

const PLATFORM_STATUS: Record<string, DeliveryStatus> = {
  sent: 'sent',
  delivered: 'delivered',
  read: 'read',
  // A voice message played: it was displayed too.
  played: 'read',
  failed: 'failed',
};

/**
 * Reads a webhook body (already JSON-parsed). Throws NotAWhatsAppWebhookError when the body is
 * not a WhatsApp Business Account webhook at all; a single unreadable message or status in an
 * otherwise good batch is skipped and reported, so the rest still goes through.
 */
export function parseWebhook(body: unknown, options: ParseOptions = {}): ParsedWebhook {
  const parsed = WebhookSchema.safeParse(body);
  if (!parsed.success || parsed.data.object !== 'whatsapp_business_account') {
    throw new NotAWhatsAppWebhookError('the body is not a whatsapp_business_account webhook');
  }
  const out: ParsedWebhook = { messages: [], statuses: [], errors: [], skipped: [] };
  for (const entry of parsed.data.entry) {
    for (const change of entry.changes) {
      if (change.field !== undefined && change.field !== 'messages') continue;
      const value = ValueSchema.safeParse(change.value);
      if (!value.success) {
        out.skipped.push({ what: 'change', reason: value.error.issues[0]?.message ?? 'unreadable' });
        continue;
      }
      readValue(value.data, out, options);
    }
  }
  return out;
}

function readValue(value: z.infer<typeof ValueSchema>, out: ParsedWebhook, options: ParseOptions): void {
  const phoneNumberId = value.metadata?.phone_number_id;
  const displayPhoneNumber = value.metadata?.display_phone_number;
  const names = new Map<string, string>();
  for (const c of value.contacts ?? []) if (c.wa_id && c.profile?.name) names.set(c.wa_id, c.profile.name);

  for (const raw of value.messages ?? []) {
    const m = MessageSchema.safeParse(raw);
    if (!m.success) {
      out.skipped.push({ what: 'message', reason: m.error.issues[0]?.message ?? 'unreadable' });
      continue;
    }
    if (!phoneNumberId) {
      out.skipped.push({ what: `message ${m.data.id}`, reason: 'metadata.phone_number_id is missing' });
      continue;
    }
    if (m.data.type === 'system') {
      // Platform notices (a user changed numbers), not a person talking to the bot.
      out.skipped.push({ what: `message ${m.data.id}`, reason: 'system message' });
      continue;
    }
    const message = readMessage(m.data, { phoneNumberId, displayPhoneNumber, names });
    const notForTheBot = whyNotForTheBot(message, options);
    if (notForTheBot) {
      out.skipped.push({ what: `message ${m.data.id}`, reason: notForTheBot });
      continue;
    }
    out.messages.push(message);
  }

  for (const raw of value.statuses ?? []) {
    const s = StatusSchema.safeParse(raw);
    if (!s.success) {
      out.skipped.push({ what: 'status', reason: s.error.issues[0]?.message ?? 'unreadable' });
      continue;
    }
    const status = PLATFORM_STATUS[s.data.status];
    if (!status) {
      out.skipped.push({ what: `status ${s.data.id}`, reason: `unknown status "${s.data.status}"` });
      continue;
    }
    const update: StatusUpdate = { messageId: s.data.id, status };
    if (s.data.recipient_id) update.recipientId = s.data.recipient_id;
    if (phoneNumberId) update.phoneNumberId = phoneNumberId;
    const error = describeErrors(s.data.errors);
    if (error) update.error = error;
    out.statuses.push(update);
  }

  for (const e of value.errors ?? []) {
    const error = describeErrors([e])!;
    out.errors.push(phoneNumberId ? { phoneNumberId, error } : { error });
  }
}

function readMessage(
  m: z.infer<typeof MessageSchema>,
  where: { phoneNumberId: string; displayPhoneNumber: string | undefined; names: Map<string, string> },
): InboundMessage {
  const msg: InboundMessage = {
    id: m.id,
    waId: m.from,
    phoneNumberId: where.phoneNumberId,
    type: m.type,
    text: '',
    attachments: [],
    details: {},
  };
  const name = where.names.get(m.from);
  if (name) msg.profileName = name;
  if (where.displayPhoneNumber) msg.displayPhoneNumber = where.displayPhoneNumber;
  const seconds = Number(m.timestamp);
  if (m.timestamp && Number.isFinite(seconds) && seconds > 0) msg.sentAt = new Date(seconds * 1000);
  if (m.context) msg.details.context = m.context;
  if (m.referral) msg.details.referral = m.referral;
  const errors = describeErrors(m.errors);
  if (errors) msg.details.errors = errors;

  switch (m.type) {
    case 'text':
      msg.text = m.text?.body ?? '';
      break;
    case 'interactive': {
      // The reply's id is what we sent as the suggestion's value: the bot reads the value.
      const reply = m.interactive?.button_reply ?? m.interactive?.list_reply;
      if (reply) {
        msg.text = reply.id;
        msg.details.reply = { kind: m.interactive!.type, ...reply };
      } else if (m.interactive?.nfm_reply) {
        msg.text = m.interactive.nfm_reply.body ?? '';
        msg.details.flow = m.interactive.nfm_reply;
      }
      break;
    }
    case 'button':
      // A template's quick-reply button: its payload is the business's value.
      msg.text = m.button?.payload || m.button?.text || '';
      msg.details.reply = { kind: 'button', ...m.button };
      break;
    case 'location': {
      const loc = m.location;
      if (loc) msg.attachments.push({ type: 'location', data: { ...loc } });
      break;
    }
    case 'contacts':
      msg.attachments.push({ type: 'contacts', data: { contacts: m.contacts ?? [] } });
      break;
    case 'reaction':
      // No emoji (or an empty one) means the person removed their reaction: skipped below.
      msg.text = m.reaction?.emoji ?? '';
      msg.details.reaction = { messageId: m.reaction?.message_id, emoji: m.reaction?.emoji ?? '' };
      break;
    default: {
      const kind = MEDIA_KINDS.find((k) => k === m.type);
      const media = kind ? m[kind] : undefined;
      if (kind && media) {
        msg.text = media.caption ?? '';
        const attachment: Attachment = { type: media.mime_type ?? kind, ref: media.id, data: { kind } };
        if (media.filename) attachment.name = attachmentName(media.filename);
        if (media.url) attachment.url = media.url;
        if (media.sha256) attachment.data!.sha256 = media.sha256;
        if (media.voice !== undefined) attachment.data!.voice = media.voice;
        if (media.animated !== undefined) attachment.data!.animated = media.animated;
        msg.attachments.push(attachment);
      }
    }
  }
  return msg;
}

/**
 * Why a message the person sent is no turn for the bot, or undefined when it is one. Each of
 * these would otherwise reach the dialog as an empty text (or an emoji), run the bot, and answer
 * a pending HEAR:
 * - a message type Meta cannot deliver (`unsupported`, error 131051; `unknown` in older versions);
 * - a removed reaction (Meta sends the reaction without an emoji);
 * - any reaction, unless `reactions: 'message'`;
 * - anything else with nothing to read: no text, no file, no chosen reply (an `order`, a
 *   `request_welcome`, a type added later).
 */
function whyNotForTheBot(msg: InboundMessage, options: ParseOptions): string | undefined {
  if (msg.type === 'unsupported' || msg.type === 'unknown') {
    const errors = msg.details.errors;
    return `unsupported message${typeof errors === 'string' ? ` (${errors})` : ''}`;
  }
  if (msg.type === 'reaction') {
    if (msg.text === '') return 'reaction removed';
    if ((options.reactions ?? 'ignore') === 'ignore') return 'reaction (WHATSAPP_REACTIONS=ignore)';
    return undefined;
  }
  const chosen = msg.details.reply !== undefined || msg.details.flow !== undefined;
  if (msg.text.trim() === '' && msg.attachments.length === 0 && !chosen)
    return `${msg.type} message with nothing to read`;
  return undefined;
}

/** `131047 Re-engagement message: Message failed to send because ...` */
export function describeErrors(errors: z.infer<typeof ErrorSchema>[] | undefined): string | undefined {
  if (!errors || errors.length === 0) return undefined;
  return errors
    .map((e) => {
      const head = [e.code, e.title ?? e.message].filter((x) => x !== undefined && x !== '').join(' ');
      const details = e.error_data?.details;
      return details && details !== (e.title ?? e.message) ? `${head}: ${details}` : head;
    })
    .join('; ');
}
