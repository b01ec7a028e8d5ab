import { z } from 'zod';
import { type Attachment, attachmentName } from '../../../src/envelope.ts';

/** The body is not a Telegram Update at all (no `update_id`). */
export class NotATelegramUpdateError extends Error {
  override name = 'NotATelegramUpdateError';
}

const UserSchema = z.looseObject({
  id: z.number().int(),
  is_bot: z.boolean().default(false),
  first_name: z.string().default(''),
  last_name: z.string().optional(),
  username: z.string().optional(),
  language_code: z.string().optional(),
});

const ChatSchema = z.looseObject({
  id: z.number().int(),
  type: z.enum(['private', 'group', 'supergroup', 'channel']),
  title: z.string().optional(),
  username: z.string().optional(),
});

const FileSchema = z.looseObject({
  file_id: z.string(),
  file_unique_id: z.string().optional(),
  file_size: z.number().int().nonnegative().optional(),
  file_name: z.string().optional(),
  mime_type: z.string().optional(),
  width: z.number().optional(),
  height: z.number().optional(),
  duration: z.number().optional(),
  emoji: z.string().optional(),
});

const MessageSchema = z.looseObject({
  message_id: z.number().int(),
  from: UserSchema.optional(),
  chat: ChatSchema,
  date: z.number().int(),
  message_thread_id: z.number().int().optional(),
  text: z.string().optional(),
  caption: z.string().optional(),
  photo: z.array(FileSchema).optional(),
  document: FileSchema.optional(),
  audio: FileSchema.optional(),
  voice: FileSchema.optional(),
  video: FileSchema.optional(),
  video_note: FileSchema.optional(),
  animation: FileSchema.optional(),
  sticker: FileSchema.optional(),
  location: z.looseObject({ latitude: z.number(), longitude: z.number() }).optional(),
  contact: z
    .looseObject({
      phone_number: z.string(),
      first_name: z.string(),
      last_name: z.string().optional(),
      user_id: z.number().optional(),
    })
    .optional(),
  reply_to_message: z.looseObject({ message_id: z.number().int() }).optional(),
});

const CallbackQuerySchema = z.looseObject({
  id: z.string(),
  from: UserSchema,
  message: z.looseObject({ message_id: z.number().int(), chat: ChatSchema }).optional(),
  inline_message_id: z.string().optional(),
  chat_instance: z.string().optional(),
  data: z.string().optional(),
});

const UpdateSchema = z.looseObject({ update_id: z.number().int().nonnegative() });

export interface TelegramUser {
  id: string;
  isBot: boolean;
  /** First and last name, as the person set them. */
  name: string;
  username?: string;
  languageCode?: string;
}

export interface TelegramChat {
  /** The chat id as a decimal string: a person's private chat has their user id, groups are negative. */
  id: string;
  type: 'private' | 'group' | 'supergroup' | 'channel';
  title?: string;
}

export interface InboundMessage {
  messageId: number;
  chat: TelegramChat;
  /** Absent for posts in channels. */
  from?: TelegramUser;
  sentAt: Date;
  text: string;
  attachments: Attachment[];
  /** A forum topic, in supergroups that have them. */
  topicId?: number;
  replyToMessageId?: number;
}

export interface InboundCallback {
  id: string;
  from: TelegramUser;
  /** The button's `callback_data`. */
  data: string;
  /** The chat of the message the button was on (absent for inline-mode messages). */
  chat?: TelegramChat;
  messageId?: number;
}

export type ParsedUpdate =
  | { kind: 'message'; updateId: number; message: InboundMessage }
  | { kind: 'callback'; updateId: number; callback: InboundCallback }
  /** An update the channel does not act on (edits, channel posts, membership changes, ...). */
  | { kind: 'other'; updateId: number; reason: string };

/** The update types the hub asks for in `setWebhook`'s `allowed_updates`. */
export const ALLOWED_UPDATES = ['message', 'callback_query'] as const;

/**
 * Reads one Update, as Telegram POSTs it to the webhook. Throws NotATelegramUpdateError when the
 * body is no Update; an Update of a kind the channel does not act on, or whose message cannot be
 * read, is `other` with the reason (acknowledged, so Telegram does not send it again).
 */
export function parseUpdate(body: unknown): ParsedUpdate {
  const update = UpdateSchema.safeParse(body);
  if (!update.success) throw new NotATelegramUpdateError('the body is not a Telegram Update (no update_id)');
  const updateId = update.data.update_id;
  const raw = update.data as Record<string, unknown>;

  if (raw.message !== undefined) {
    const m = MessageSchema.safeParse(raw.message);
    if (!m.success) return { kind: 'other', updateId, reason: `unreadable message: ${firstIssue(m.error)}` };
    return { kind: 'message', updateId, message: readMessage(m.data) };
  }
  if (raw.callback_query !== undefined) {
    const q = CallbackQuerySchema.safeParse(raw.callback_query);
    if (!q.success)
      return { kind: 'other', updateId, reason: `unreadable callback_query: ${firstIssue(q.error)}` };
    const callback: InboundCallback = { id: q.data.id, from: readUser(q.data.from), data: q.data.data ?? '' };
    if (q.data.message) {
      callback.chat = readChat(q.data.message.chat);
      callback.messageId = q.data.message.message_id;
    }
    return { kind: 'callback', updateId, callback };
  }
  const type = Object.keys(raw).find((k) => k !== 'update_id') ?? 'empty';
  return { kind: 'other', updateId, reason: `${type} updates are not handled` };
}

function readMessage(m: z.infer<typeof MessageSchema>): InboundMessage {
  const msg: InboundMessage = {
    messageId: m.message_id,
    chat: readChat(m.chat),
    sentAt: new Date(m.date * 1000),
    text: m.text ?? m.caption ?? '',
    attachments: [],
  };
  if (m.from) msg.from = readUser(m.from);
  if (m.message_thread_id !== undefined) msg.topicId = m.message_thread_id;
  if (m.reply_to_message) msg.replyToMessageId = m.reply_to_message.message_id;

  const largestPhoto = m.photo?.reduce((a, b) =>
    (b.width ?? 0) * (b.height ?? 0) > (a.width ?? 0) * (a.height ?? 0) ? b : a,
  );
  if (largestPhoto) msg.attachments.push(fileAttachment('image', largestPhoto, 'photo'));
  for (const kind of ['document', 'audio', 'voice', 'video', 'video_note', 'animation'] as const) {
    const file = m[kind];
    if (file) msg.attachments.push(fileAttachment(file.mime_type ?? kind, file, kind));
  }
  if (m.sticker) {
    msg.attachments.push(fileAttachment('sticker', m.sticker, 'sticker'));
    if (msg.text === '' && m.sticker.emoji) msg.text = m.sticker.emoji;
  }
  if (m.location) msg.attachments.push({ type: 'location', data: { ...m.location } });
  if (m.contact) msg.attachments.push({ type: 'contacts', data: { contacts: [m.contact] } });
  return msg;
}

/** Kinds of attachment whose bytes come into the file store (a sticker's emoji is its text; it stays a reference). */
export const FILE_KINDS = new Set([
  'photo',
  'document',
  'audio',
  'voice',
  'video',
  'video_note',
  'animation',
]);

function fileAttachment(type: string, file: z.infer<typeof FileSchema>, kind: string): Attachment {
  const attachment: Attachment = { type, ref: file.file_id, data: { kind } };
  // The worker fetches the bytes (getFile, then the file path) before the turn: the update is
  // acknowledged without waiting for a download.
  if (FILE_KINDS.has(kind)) attachment.pending = true;
  if (file.file_name) attachment.name = attachmentName(file.file_name);
  if (file.file_size !== undefined) attachment.size = file.file_size;
  if (file.file_unique_id) attachment.data!.fileUniqueId = file.file_unique_id;
  if (file.width !== undefined) attachment.data!.width = file.width;
  if (file.height !== undefined) attachment.data!.height = file.height;
  if (file.duration !== undefined) attachment.data!.duration = file.duration;
  return attachment;
}

function readUser(u: z.infer<typeof UserSchema>): TelegramUser {
  const user: TelegramUser = {
    id: String(u.id),
    isBot: u.is_bot,
    name: [u.first_name, u.last_name].filter(Boolean).join(' '),
  };
  if (u.username) user.username = u.username;
  if (u.language_code) user.languageCode = u.language_code;
  return user;
}

function readChat(c: z.infer<typeof ChatSchema>): TelegramChat {
  return { id: String(c.id), type: c.type, ...(c.title ? { title: c.title } : {}) };
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'unreadable';
}
