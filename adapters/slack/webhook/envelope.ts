import type { EnvelopeInput } from '../../../src/envelope.ts';
import type { SlackReplyTo } from '../reply-to.ts';
import type { SlackButtonPress, SlackMessage } from './parse.ts';

/**
 * The envelope id of a Slack message: its conversation and timestamp, which Slack keeps the same
 * across the `app_mention` and `message` events of one message and across retries (event ids
 * differ between the two events, so they cannot be the key).
 */
export function messageEnvelopeId(teamId: string, channel: string, ts: string): string {
  return `slack:${teamId}:${channel}:${ts}`;
}

/** The person: a workspace user, `<team id>:<user id>`. */
export function personId(teamId: string, user: string): string {
  return `${teamId}:${user}`;
}

/**
 * A message as an envelope. A direct message is keyed by the person (team + user) and answered in
 * the conversation (in its thread, when written in one); a mention in a channel is keyed by the
 * person in that thread (`<channel>:<thread ts>`, the mention itself starting the thread) and
 * answered in the thread. `name` is the person's, when the workspace told it.
 */
export function messageToEnvelope(
  m: SlackMessage,
  bot: string,
  now = new Date(),
  name?: string,
): EnvelopeInput {
  const threadTs = m.conversation === 'mention' ? (m.threadTs ?? m.ts) : m.threadTs;
  const replyTo: SlackReplyTo = { teamId: m.teamId, channel: m.channel, ...(threadTs ? { threadTs } : {}) };
  return {
    id: messageEnvelopeId(m.teamId, m.channel, m.ts),
    channel: 'slack',
    bot,
    from: { id: personId(m.teamId, m.user), tenant: m.teamId, ...(name ? { name } : {}) },
    ...(m.conversation === 'mention' ? { thread: `${m.channel}:${threadTs}` } : {}),
    text: m.text,
    attachments: m.attachments,
    replyTo,
    meta: {
      conversation: m.conversation,
      eventType: m.eventType,
      eventId: m.eventId,
      channelId: m.channel,
      ...(m.channelType ? { channelType: m.channelType } : {}),
      ts: m.ts,
      userId: m.user,
      teamId: m.teamId,
    },
    receivedAt: now.toISOString(),
  };
}

/**
 * A button press as an envelope whose text is the button's value, in the session of the
 * conversation the button was shown in. Its id is the press (`action_ts`), so each press counts once.
 * `name` is the person's as the workspace tells it, else the username the payload carries.
 */
export function buttonToEnvelope(
  p: SlackButtonPress,
  bot: string,
  now = new Date(),
  name = p.userName,
): EnvelopeInput {
  const threadTs = p.conversation === 'mention' ? (p.threadTs ?? p.messageTs) : p.threadTs;
  const replyTo: SlackReplyTo = { teamId: p.teamId, channel: p.channel, ...(threadTs ? { threadTs } : {}) };
  return {
    id: `${messageEnvelopeId(p.teamId, p.channel, p.messageTs)}:${p.actionId}:${p.actionTs}`,
    channel: 'slack',
    bot,
    from: { id: personId(p.teamId, p.user), tenant: p.teamId, ...(name ? { name } : {}) },
    ...(p.conversation === 'mention' ? { thread: `${p.channel}:${threadTs}` } : {}),
    text: p.text,
    attachments: [],
    replyTo,
    meta: {
      conversation: p.conversation,
      eventType: 'block_actions',
      channelId: p.channel,
      actionId: p.actionId,
      messageTs: p.messageTs,
      userId: p.user,
      teamId: p.teamId,
    },
    receivedAt: now.toISOString(),
  };
}
