import { type Attachment, attachmentName, type EnvelopeInput, envelopeId } from '../../../src/envelope.ts';
import { toE164 } from '../phone.ts';
import type { WebReplyTo } from '../reply-to.ts';
import type { WebMessage } from './client.ts';

export type WebInbound =
  | { kind: 'envelope'; envelope: EnvelopeInput }
  /** A `@lid` chat: the phone number must be looked up before the envelope can be built. */
  | { kind: 'needs_phone'; lid: string }
  | { kind: 'ignored'; reason: string };

export interface WebInboundOptions {
  bot: string;
  groups: 'ignore' | 'accept';
  /** The phone number (`...@c.us`) of a `@lid` id, when it has been looked up. */
  phoneOf?: (lid: string) => string | undefined;
  now?: Date;
}

const STATUS_BROADCAST = 'status@broadcast';

/**
 * A whatsapp-web.js `message` event as an envelope: `5511999999999@c.us` becomes the session key
 * `+5511999999999`. Status broadcasts, our own messages and (unless accepted) groups are ignored.
 * In an accepted group the session is the person's within that group (the group is the thread).
 */
export function webMessageToEnvelope(msg: WebMessage, o: WebInboundOptions): WebInbound {
  if (msg.isStatus || msg.from === STATUS_BROADCAST || msg.from.endsWith('@broadcast'))
    return { kind: 'ignored', reason: 'status broadcast' };
  if (msg.fromMe || msg.id.fromMe) return { kind: 'ignored', reason: 'our own message' };
  if (msg.from.endsWith('@newsletter')) return { kind: 'ignored', reason: 'channel post' };
  const isGroup = msg.from.endsWith('@g.us');
  if (isGroup && o.groups === 'ignore') return { kind: 'ignored', reason: 'group message' };
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
    text: msg.body ?? '',
    attachments: msg.hasMedia ? [mediaAttachment(msg)] : [],
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
