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

const EntitySchema = z.looseObject({
  type: z.string(),
  offset: z.number().int().nonnegative(),
  length: z.number().int().nonnegative(),
  user: z.looseObject({ id: z.number().int() }).optional(),
});
/** Formatting and mentions: an entity the channel cannot read costs the message nothing. */
const EntitiesSchema = z.array(EntitySchema).optional().catch(undefined);

const MessageSchema = z.looseObject({
  message_id: z.number().int(),
  from: UserSchema.optional(),
  chat: ChatSchema,
  date: z.number().int(),
  message_thread_id: z.number().int().optional(),
  text: z.string().optional(),
  caption: z.string().optional(),
  entities: EntitiesSchema,
  caption_entities: EntitiesSchema,
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
  venue: z
    .looseObject({
      location: z.looseObject({ latitude: z.number(), longitude: z.number() }),
      title: z.string().optional(),
      address: z.string().optional(),
    })
    .optional(),
  /** A Mini App's `Telegram.WebApp.sendData()`, from a keyboard button (private chats only). */
  web_app_data: z.looseObject({ data: z.string(), button_text: z.string().optional() }).optional(),
  reply_to_message: z
    .looseObject({ message_id: z.number().int(), from: z.looseObject({ id: z.number().int() }).optional() })
    .optional(),
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
  /** Present when the message names anyone: what the group rule reads (see `addressing.ts`). */
  addressing?: Addressing;
  /** A Mini App's data (`web_app_data`): the data is the text; this is the button that opened it. */
  webApp?: { buttonText?: string };
}

/** Whom a message addresses: what decides, in a group, whether it is meant for the bot. */
export interface Addressing {
  /** `@username` mentions, lower-case, without the `@`. */
  usernames?: string[];
  /** Users mentioned by name (`text_mention`: people without a username). */
  userIds?: string[];
  /** The `/command` the message starts with, and the bot it names (`/start@this_bot`), lower-case. */
  command?: { name: string; bot?: string };
  /** The author of the message this one replies to. */
  replyToUserId?: string;
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
    const message = readMessage(m.data);
    // Service messages (joins, leaves, pins, title changes, migrations, ...) and kinds the channel
    // cannot read carry no text and no media: nothing a person said to the bot.
    if (message.text.trim() === '' && message.attachments.length === 0)
      return { kind: 'other', updateId, reason: unreadReason(m.data) };
    return { kind: 'message', updateId, message };
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
  // A venue carries its location too (the Bot API sets both): one attachment, with its name.
  if (m.venue)
    msg.attachments.push({
      type: 'location',
      data: {
        ...m.venue.location,
        ...(m.venue.title ? { name: m.venue.title } : {}),
        ...(m.venue.address ? { address: m.venue.address } : {}),
      },
    });
  else if (m.location) msg.attachments.push({ type: 'location', data: { ...m.location } });
  if (m.contact) msg.attachments.push({ type: 'contacts', data: { contacts: [m.contact] } });
  if (m.web_app_data) {
    msg.text = m.web_app_data.data;
    msg.webApp = m.web_app_data.button_text ? { buttonText: m.web_app_data.button_text } : {};
  }
  const addressing = readAddressing(m);
  if (addressing) msg.addressing = addressing;
  return msg;
}

function readAddressing(m: z.infer<typeof MessageSchema>): Addressing | undefined {
  const a: Addressing = {};
  const usernames: string[] = [];
  const userIds: string[] = [];
  const text = m.text ?? m.caption ?? '';
  // Entity offsets count UTF-16 code units, as JavaScript strings do.
  for (const e of m.entities ?? m.caption_entities ?? []) {
    const part = text.slice(e.offset, e.offset + e.length);
    if (e.type === 'mention' && part.startsWith('@')) usernames.push(part.slice(1).toLowerCase());
    else if (e.type === 'text_mention' && e.user) userIds.push(String(e.user.id));
    else if (e.type === 'bot_command' && e.offset === 0) {
      const [name = '', bot] = part.slice(1).split('@');
      a.command = { name, ...(bot ? { bot: bot.toLowerCase() } : {}) };
    }
  }
  if (usernames.length > 0) a.usernames = usernames;
  if (userIds.length > 0) a.userIds = userIds;
  if (m.reply_to_message?.from) a.replyToUserId = String(m.reply_to_message.from.id);
  return Object.keys(a).length > 0 ? a : undefined;
}

/** Message fields of kinds a person sends that the channel does not read. */
const UNREAD_KINDS = ['poll', 'dice', 'game', 'story', 'giveaway', 'paid_media', 'checklist', 'invoice'];

/** Why a message with no text and no media is not handled: its service field, or its kind. */
function unreadReason(m: Record<string, unknown>): string {
  const kind = UNREAD_KINDS.find((k) => m[k] !== undefined);
  if (kind) return `${kind} messages are not handled`;
  const service = Object.keys(m).find((k) => SERVICE_FIELDS.has(k));
  return service ? `service message (${service})` : 'a message without text or media';
}

/** The Bot API's service messages (Message fields), named in the reason an update is ignored. */
const SERVICE_FIELDS = new Set([
  'new_chat_members',
  'left_chat_member',
  'new_chat_title',
  'new_chat_photo',
  'delete_chat_photo',
  'group_chat_created',
  'supergroup_chat_created',
  'channel_chat_created',
  'message_auto_delete_timer_changed',
  'migrate_to_chat_id',
  'migrate_from_chat_id',
  'pinned_message',
  'successful_payment',
  'refunded_payment',
  'users_shared',
  'chat_shared',
  'gift',
  'unique_gift',
  'connected_website',
  'write_access_allowed',
  'passport_data',
  'proximity_alert_triggered',
  'boost_added',
  'chat_background_set',
  'forum_topic_created',
  'forum_topic_edited',
  'forum_topic_closed',
  'forum_topic_reopened',
  'general_forum_topic_hidden',
  'general_forum_topic_unhidden',
  'giveaway_created',
  'giveaway_winners',
  'giveaway_completed',
  'video_chat_scheduled',
  'video_chat_started',
  'video_chat_ended',
  'video_chat_participants_invited',
]);

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
