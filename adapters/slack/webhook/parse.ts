import { z } from 'zod';
import { type Attachment, attachmentName } from '../../../src/envelope.ts';
import { parseJson } from '../../../src/json.ts';

/** The body is not a request of the Events API or of interactivity at all. */
export class NotASlackRequestError extends Error {
  override name = 'NotASlackRequestError';
}

const FileSchema = z.looseObject({
  id: z.string(),
  name: z.string().optional(),
  title: z.string().optional(),
  mimetype: z.string().optional(),
  size: z.number().int().nonnegative().optional(),
  url_private: z.string().optional(),
  url_private_download: z.string().optional(),
});

const MessageEventSchema = z.looseObject({
  type: z.enum(['message', 'app_mention']),
  subtype: z.string().optional(),
  channel: z.string().min(1),
  channel_type: z.string().optional(),
  user: z.string().optional(),
  bot_id: z.string().optional(),
  text: z.string().default(''),
  ts: z.string().regex(/^\d+\.\d+$/),
  thread_ts: z
    .string()
    .regex(/^\d+\.\d+$/)
    .optional(),
  team: z.string().optional(),
  files: z.array(FileSchema).optional(),
});

const EventCallbackSchema = z.looseObject({
  type: z.literal('event_callback'),
  team_id: z.string().min(1),
  api_app_id: z.string().optional(),
  event_id: z.string().min(1),
  event_time: z.number().optional(),
  event: z.looseObject({ type: z.string() }),
  authorizations: z
    .array(z.looseObject({ user_id: z.string().optional(), is_bot: z.boolean().optional() }))
    .optional(),
});

const UrlVerificationSchema = z.looseObject({
  type: z.literal('url_verification'),
  challenge: z.string().min(1),
});

/** Messages of these subtypes are a person writing; every other subtype is an edit, a join, a bot... */
const CONVERSATION_SUBTYPES = new Set(['file_share', 'thread_broadcast']);

export interface SlackMessage {
  teamId: string;
  eventId: string;
  eventType: 'message' | 'app_mention';
  channel: string;
  /** `im` for a direct message with the bot; `channel`, `group`, `mpim` otherwise (absent on app_mention). */
  channelType?: string;
  user: string;
  /** The text with the bot's own mention taken out. */
  text: string;
  ts: string;
  threadTs?: string;
  attachments: Attachment[];
  /** A direct message (keyed by the person) or a mention in a channel (keyed by the thread). */
  conversation: 'direct' | 'mention';
}

export type ParsedEventRequest =
  | { kind: 'url_verification'; challenge: string }
  | { kind: 'message'; message: SlackMessage }
  /** An event the channel does not act on, with the reason (acknowledged, never retried). */
  | { kind: 'ignored'; reason: string; eventId?: string };

/**
 * Reads a request of the Events API: the `url_verification` handshake, or an `event_callback`.
 * A message is acted on when it is a person writing to the bot: a direct message (`channel_type`
 * `im`), an `app_mention`, or a channel message that mentions the bot (the same message as the
 * mention, under another event id). Messages from bots (a `bot_id`, the `bot_message` subtype,
 * the bot's own user) and edits, deletions, joins are ignored.
 */
export function parseEventRequest(body: unknown): ParsedEventRequest {
  const verification = UrlVerificationSchema.safeParse(body);
  if (verification.success) return { kind: 'url_verification', challenge: verification.data.challenge };
  const callback = EventCallbackSchema.safeParse(body);
  if (!callback.success) {
    const type = (body as { type?: unknown } | null)?.type;
    if (typeof type === 'string' && type !== 'event_callback')
      return { kind: 'ignored', reason: `${type} requests are not handled` };
    throw new NotASlackRequestError('the body is neither url_verification nor an event_callback');
  }
  const { team_id: teamId, event_id: eventId } = callback.data;
  const botUserId = callback.data.authorizations?.[0]?.user_id;
  const ignored = (reason: string): ParsedEventRequest => ({ kind: 'ignored', reason, eventId });

  const event = MessageEventSchema.safeParse(callback.data.event);
  if (!event.success) {
    const type = callback.data.event.type;
    if (type !== 'message' && type !== 'app_mention') return ignored(`${type} events are not handled`);
    return ignored(`unreadable ${type} event: ${firstIssue(event.error)}`);
  }
  const e = event.data;
  if (e.bot_id || e.subtype === 'bot_message') return ignored('sent by a bot');
  if (e.subtype && !CONVERSATION_SUBTYPES.has(e.subtype))
    return ignored(`${e.subtype} messages are not conversations`);
  if (!e.user) return ignored('a message without a user');
  if (botUserId && e.user === botUserId) return ignored("the bot's own message");

  const mention = botUserId ? `<@${botUserId}>` : undefined;
  let conversation: SlackMessage['conversation'];
  if (e.type === 'app_mention') conversation = 'mention';
  else if (e.channel_type === 'im') conversation = 'direct';
  else if (mention && e.text.includes(mention)) conversation = 'mention';
  else return ignored('a channel message that does not mention the bot');

  const message: SlackMessage = {
    teamId,
    eventId,
    eventType: e.type,
    channel: e.channel,
    user: e.user,
    text: (mention ? e.text.split(mention).join(' ') : e.text).replace(/\s{2,}/g, ' ').trim(),
    ts: e.ts,
    attachments: (e.files ?? []).map(fileAttachment),
    conversation,
  };
  if (e.channel_type) message.channelType = e.channel_type;
  if (e.thread_ts) message.threadTs = e.thread_ts;
  return { kind: 'message', message };
}

const ActionSchema = z.looseObject({
  type: z.string(),
  action_id: z.string(),
  block_id: z.string().optional(),
  value: z.string().optional(),
  url: z.string().optional(),
  text: z.looseObject({ text: z.string() }).optional(),
  action_ts: z.string(),
});

const BlockActionsSchema = z.looseObject({
  type: z.literal('block_actions'),
  team: z
    .looseObject({ id: z.string().min(1) })
    .nullable()
    .optional(),
  user: z.looseObject({
    id: z.string().min(1),
    team_id: z.string().optional(),
    name: z.string().optional(),
    username: z.string().optional(),
  }),
  channel: z.looseObject({ id: z.string().min(1), name: z.string().optional() }).optional(),
  container: z
    .looseObject({
      channel_id: z.string().optional(),
      message_ts: z.string().optional(),
      thread_ts: z.string().optional(),
    })
    .optional(),
  message: z.looseObject({ ts: z.string(), thread_ts: z.string().optional() }).optional(),
  actions: z.array(ActionSchema).min(1),
});

export interface SlackButtonPress {
  teamId: string;
  user: string;
  userName?: string;
  channel: string;
  /** The message the button was on. */
  messageTs: string;
  /** Its thread, when it was posted in one. */
  threadTs?: string;
  actionId: string;
  actionTs: string;
  /** The button's value (the suggestion's value), else its label. */
  text: string;
  conversation: 'direct' | 'mention';
}

export type ParsedInteraction =
  | { kind: 'button'; press: SlackButtonPress }
  | { kind: 'ignored'; reason: string };

/**
 * Reads an interactivity request: a form-encoded body whose `payload` field is JSON. A press of
 * a button (`block_actions`) is the person answering with the button's value; other interactions
 * (modals, shortcuts) are not handled.
 */
export function parseInteraction(rawForm: string): ParsedInteraction {
  const payload = new URLSearchParams(rawForm).get('payload');
  if (payload === null) throw new NotASlackRequestError('the body has no payload field');
  let json: unknown;
  try {
    json = parseJson(payload);
  } catch {
    throw new NotASlackRequestError('the payload field is not JSON');
  }
  const type = (json as { type?: unknown } | null)?.type;
  if (type !== 'block_actions')
    return { kind: 'ignored', reason: `${String(type)} interactions are not handled` };
  const parsed = BlockActionsSchema.safeParse(json);
  if (!parsed.success)
    return { kind: 'ignored', reason: `unreadable block_actions: ${firstIssue(parsed.error)}` };
  const p = parsed.data;
  const action = p.actions[0]!;
  // A link button opens its URL in the person's browser; Slack tells the app, but it is no answer.
  if (action.value === undefined && (action.url !== undefined || action.action_id.startsWith('link-')))
    return { kind: 'ignored', reason: 'a link button was opened' };
  const channel = p.channel?.id ?? p.container?.channel_id;
  const messageTs = p.message?.ts ?? p.container?.message_ts;
  const teamId = p.team?.id ?? p.user.team_id;
  if (!channel || !messageTs || !teamId)
    return { kind: 'ignored', reason: 'a button outside a conversation message' };
  const press: SlackButtonPress = {
    teamId,
    user: p.user.id,
    channel,
    messageTs,
    actionId: action.action_id,
    actionTs: action.action_ts,
    text: action.value ?? action.text?.text ?? '',
    conversation: isDirectChannel(channel) ? 'direct' : 'mention',
  };
  const threadTs = p.message?.thread_ts ?? p.container?.thread_ts;
  if (threadTs) press.threadTs = threadTs;
  const userName = p.user.name ?? p.user.username;
  if (userName) press.userName = userName;
  return { kind: 'button', press };
}

/** Direct message conversations have ids that start with D. */
export function isDirectChannel(channel: string): boolean {
  return channel.startsWith('D');
}

function fileAttachment(f: z.infer<typeof FileSchema>): Attachment {
  const a: Attachment = { type: f.mimetype ?? 'file', ref: f.id };
  const name = f.name ?? f.title;
  if (name) a.name = attachmentName(name);
  if (f.size !== undefined) a.size = f.size;
  if (f.url_private) a.url = f.url_private;
  // Where the bytes are: the worker fetches them (with the bot token) before the turn, so the
  // event is acknowledged within Slack's 3 seconds however large the file.
  const download = f.url_private_download ?? f.url_private;
  if (download) {
    a.data = { download };
    a.pending = true;
  }
  return a;
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'unreadable';
}
