import { z } from 'zod';
import { type Attachment, attachmentName, type EnvelopeInput, envelopeId } from '../../../src/envelope.ts';
import { toE164 } from '../phone.ts';
import type { WebReplyTo } from '../reply-to.ts';
import type { WebId, WebMessage } from './client.ts';

export type WebInbound =
  | { kind: 'envelope'; envelope: EnvelopeInput }
  /** A `@lid` chat: the phone number must be looked up before the envelope can be built. */
  | { kind: 'needs_phone'; lid: string }
  | { kind: 'ignored'; reason: string };

export interface WebInboundOptions {
  bot: string;
  /**
   * Group messages: `ignore`d; `accept`ed when they @mention the linked account or quote (reply
   * to) one of its messages; or `all` answered.
   */
  groups: 'ignore' | 'accept' | 'all';
  /** The linked account's own ids (`…@c.us`, `…@lid`): what a mention of it or a reply to it names. */
  self?: readonly string[];
  /** The phone number (`...@c.us`) of a `@lid` id, when it has been looked up. */
  phoneOf?: (lid: string) => string | undefined;
  now?: Date;
}

const STATUS_BROADCAST = 'status@broadcast';

/**
 * The message types a person writes and the channel reads (whatsapp-web.js's `MessageTypes`).
 * The library emits `message` for every other new message too: system notices with an empty
 * body (`e2e_notification` when a security code changes, `notification_template` on first
 * contact, `call_log` for a missed call, `notification`, `protocol`, `ciphertext`, ...) and kinds
 * the channel cannot read (polls, orders, payments, group invites). Those are ignored.
 */
export const CONVERSATION_TYPES: ReadonlySet<string> = new Set([
  'chat',
  'image',
  'video',
  'audio',
  'ptt',
  'document',
  'sticker',
  'location',
  'vcard',
  'multi_vcard',
  'buttons_response',
  'list_response',
  'template_button_reply',
]);

/**
 * A whatsapp-web.js `message` event as an envelope: `5511999999999@c.us` becomes the session key
 * `+5511999999999`. Status broadcasts, our own messages, system notices and other types the
 * channel does not read, messages with nothing in them, and (unless accepted) groups are ignored.
 * In an accepted group the session is the person's within that group (the group is the thread);
 * with `groups: 'accept'` only a message that mentions the linked account or replies to it counts.
 */
export function webMessageToEnvelope(msg: WebMessage, o: WebInboundOptions): WebInbound {
  if (msg.isStatus || msg.from === STATUS_BROADCAST || msg.from.endsWith('@broadcast'))
    return { kind: 'ignored', reason: 'status broadcast' };
  if (msg.fromMe || msg.id.fromMe) return { kind: 'ignored', reason: 'our own message' };
  if (msg.from.endsWith('@newsletter')) return { kind: 'ignored', reason: 'channel post' };
  if (!CONVERSATION_TYPES.has(msg.type)) return { kind: 'ignored', reason: `${msg.type} message` };
  const isLocation = msg.type === 'location';
  const location = isLocation ? locationAttachment(msg) : undefined;
  if (isLocation && !location) return { kind: 'ignored', reason: 'location message without coordinates' };
  // A location's body is the map's thumbnail (base64 JPEG): the place is its attachment, not text.
  const body = isLocation ? '' : (msg.body ?? '');
  // Backstop: whatever type it claims, a message with no text and no file has nothing to answer.
  if (!msg.hasMedia && !location && body.trim() === '') return { kind: 'ignored', reason: 'empty message' };
  const isGroup = msg.from.endsWith('@g.us');
  if (isGroup && o.groups === 'ignore') return { kind: 'ignored', reason: 'group message' };
  if (isGroup && o.groups === 'accept' && !addressesUs(msg, o.self ?? []))
    return { kind: 'ignored', reason: 'a group message that neither mentions nor replies to us' };
  const sender = isGroup ? msg.author : msg.from;
  if (!sender) return { kind: 'ignored', reason: 'no sender' };
  let phoneId = sender;
  if (sender.endsWith('@lid')) {
    const pn = o.phoneOf?.(sender);
    if (!pn) return { kind: 'needs_phone', lid: sender };
    phoneId = pn;
  }
  const phone = toE164(phoneId);
  if (!phone) return { kind: 'ignored', reason: `sender ${sender} has no phone number` };
  const replyTo: WebReplyTo = { transport: 'web', chatId: msg.from };
  const name = msg._data?.notifyName;
  const envelope: EnvelopeInput = {
    id: envelopeId('whatsapp', msg.id._serialized),
    channel: 'whatsapp',
    bot: o.bot,
    from: { id: phone, ...(name ? { name } : {}) },
    text: isGroup ? withoutMentionOf(body, o.self ?? []) : body,
    attachments: location ? [location] : msg.hasMedia ? [mediaAttachment(msg)] : [],
    replyTo,
    meta: {
      transport: 'web',
      type: msg.type,
      chatId: msg.from,
      ...(msg.timestamp ? { sentAt: new Date(msg.timestamp * 1000).toISOString() } : {}),
    },
    receivedAt: (o.now ?? new Date()).toISOString(),
  };
  if (isGroup) envelope.thread = msg.from;
  return { kind: 'envelope', envelope };
}

/** Whether a group message @mentions the linked account or quotes one of its messages. */
function addressesUs(msg: WebMessage, self: readonly string[]): boolean {
  if (self.length === 0) return false;
  const quoted = idOf(msg._data?.quotedParticipant);
  if (quoted && self.includes(quoted)) return true;
  return (msg.mentionedIds ?? []).some((m) => {
    const id = idOf(m);
    return id !== undefined && self.includes(id);
  });
}

/**
 * The text without the @mention of the linked account (written `@<number>` or `@<lid>` in the
 * body), as Slack's mention is taken out: the bot reads what was said to it.
 */
function withoutMentionOf(text: string, self: readonly string[]): string {
  let out = text;
  for (const id of self) {
    const user = id.split('@')[0];
    if (user) out = out.replace(new RegExp(`@${escapeRegExp(user)}(?!\\d)`, 'g'), '');
  }
  return out === text ? text : out.replace(/[ \t]{2,}/g, ' ').trim();
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function idOf(id: WebId | undefined): string | undefined {
  if (typeof id === 'string') return id;
  return id?._serialized;
}

/**
 * A media message's file as WhatsApp announced it (type, name, size: the sender's word, until the
 * bytes are in the store and sniffed). `data.kind` is the library's message type.
 */
function mediaAttachment(msg: WebMessage): Attachment {
  const raw = msg._data ?? {};
  const size =
    typeof raw.size === 'number' && Number.isInteger(raw.size) && raw.size >= 0 ? raw.size : undefined;
  return {
    type: (typeof raw.mimetype === 'string' && raw.mimetype.split(';')[0]?.trim()) || msg.type,
    ...(typeof raw.filename === 'string' && raw.filename ? { name: attachmentName(raw.filename) } : {}),
    ...(size !== undefined ? { size } : {}),
    data: { kind: msg.type, transport: 'web' },
  };
}

const LocationSchema = z.object({
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  name: z.string().min(1).max(1000).optional().catch(undefined),
  address: z.string().min(1).max(1000).optional().catch(undefined),
  url: z.string().min(1).max(2000).optional().catch(undefined),
});

/**
 * A `location` message's place, in the shape WhatsApp Cloud and Telegram give it: latitude,
 * longitude, and the name, address and URL when the sender shared a named place. Undefined when
 * the library gave no usable coordinates.
 */
function locationAttachment(msg: WebMessage): Attachment | undefined {
  const parsed = LocationSchema.safeParse(msg.location ?? {});
  if (!parsed.success) return undefined;
  const { latitude, longitude, name, address, url } = parsed.data;
  return {
    type: 'location',
    data: {
      latitude,
      longitude,
      ...(name ? { name } : {}),
      ...(address ? { address } : {}),
      ...(url ? { url } : {}),
    },
  };
}
