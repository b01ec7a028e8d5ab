import { type Activity, TurnContext } from 'botbuilder';
import { type Attachment, attachmentName, type EnvelopeInput } from '../../../src/envelope.ts';
import { messageEnvelopeId, startEnvelopeId } from '../ids.ts';
import { isTeamsFile } from './files.ts';
import type { InboundActivity } from './parse.ts';

/** Teams adds the rich-text rendering of every message as an attachment: it is the text again. */
const RICH_TEXT_COPY = 'text/html';
/** A file shared in a 1:1 chat: the bytes are at `content.downloadUrl`. */
const FILE_DOWNLOAD_INFO = 'application/vnd.microsoft.teams.file.download.info';
/** The envelope's limits on an attachment (src/envelope.ts). */
const MAX_ATTACHMENT_TYPE = 100;
const MAX_ATTACHMENT_URL = 4000;

export interface EnvelopeOptions {
  bot: string;
  now: Date;
}

/**
 * A message or a "bot added" conversation update as an envelope. The person is their Entra ID
 * object id (the same across bots and apps), else their Teams user id; the conversation is the
 * thread, so a 1:1 chat, each group chat and each channel thread is a session of its own. The
 * conversation reference goes into `replyTo`: whichever worker answers needs nothing else.
 */
export function activityToEnvelope(
  activity: InboundActivity,
  kind: 'message' | 'start',
  options: EnvelopeOptions,
): EnvelopeInput {
  const tenant = activity.conversation.tenantId ?? activity.channelData?.tenant?.id ?? undefined;
  const reference = TurnContext.getConversationReference(activity as unknown as Activity);
  // A greeting answers no message: sent to the conversation, not as a reply to the update.
  if (kind === 'start') delete reference.activityId;
  const from = activity.from;
  return {
    id:
      kind === 'start'
        ? startEnvelopeId(activity.conversation.id, activity.id)
        : messageEnvelopeId(activity.conversation.id, activity.id),
    kind,
    channel: 'teams',
    bot: options.bot,
    from: {
      id: from.aadObjectId || from.id,
      ...(from.name ? { name: from.name } : {}),
      ...(tenant ? { tenant } : {}),
    },
    thread: activity.conversation.id,
    text: kind === 'message' ? messageText(activity) : '',
    attachments: kind === 'message' ? toAttachments(activity) : [],
    replyTo: reference,
    meta: compact({
      conversationType: activity.conversation.conversationType,
      tenantId: tenant,
      teamId: activity.channelData?.team?.id,
      teamsChannelId: activity.channelData?.channel?.id,
      botFrameworkChannel: activity.channelId,
      userId: from.id,
      locale: activity.locale,
      value: kind === 'message' ? activity.value : undefined,
    }),
    receivedAt: options.now.toISOString(),
  };
}

/**
 * A card's `Action.Execute` press as the person's message: its text is the button's value (as a
 * `messageBack` press's is), the invoke's `value` (action, verb, data) in `meta.value`.
 */
export function cardActionToEnvelope(
  activity: InboundActivity,
  pressed: { value: string; verb?: string },
  options: EnvelopeOptions,
): EnvelopeInput {
  const envelope = activityToEnvelope({ ...activity, text: null, attachments: null }, 'message', options);
  return {
    ...envelope,
    text: pressed.value,
    meta: { ...envelope.meta, cardAction: compact({ verb: pressed.verb, invoke: activity.name }) },
  };
}

/**
 * The text without the bot's own @mention (in channels and group chats Teams puts
 * `<at>Bot</at>` in front of every message to the bot), by botbuilder's helper. Other people's
 * mentions stay: they are part of what was said.
 */
export function messageText(activity: InboundActivity): string {
  const text = activity.text ?? '';
  if (text === '') return '';
  const copy = {
    ...activity,
    text,
    // The helper reads `mentioned.id` and replaces `text` verbatim: a mention without either
    // (malformed) has nothing it could remove.
    entities: (activity.entities ?? []).filter(
      (e) => e.type.toLowerCase() !== 'mention' || (e.text && e.mentioned),
    ),
  };
  return TurnContext.removeRecipientMention(copy as unknown as Activity).trim();
}

function toAttachments(activity: InboundActivity): Attachment[] {
  const out: Attachment[] = [];
  for (const a of activity.attachments ?? []) {
    if (a.contentType === RICH_TEXT_COPY) continue;
    const content = isRecord(a.content) ? a.content : undefined;
    const url =
      a.contentType === FILE_DOWNLOAD_INFO && typeof content?.downloadUrl === 'string'
        ? content.downloadUrl
        : (a.contentUrl ?? undefined);
    const attachment: Attachment = {
      type: a.contentType.slice(0, MAX_ATTACHMENT_TYPE),
      ...(a.name ? { name: attachmentName(a.name) } : {}),
      ...(url && url.length <= MAX_ATTACHMENT_URL ? { url } : {}),
      ...(content ? { data: content } : {}),
    };
    // The bytes are fetched by the worker before the turn, not while Teams waits for the answer.
    if (isTeamsFile(attachment)) attachment.pending = true;
    out.push(attachment);
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function compact(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined && v !== null));
}
