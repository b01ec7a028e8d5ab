import { envelopeId } from '../../src/envelope.ts';

/**
 * Activity ids are not unique across conversations: Teams numbers messages by their time in
 * milliseconds (`1485983408511`), so two chats can share one. The envelope id is therefore the
 * conversation id and the activity id together. A retry of the same activity (Teams resends a
 * turn it got no answer to in 15 s) has the same pair, and is a duplicate.
 */
export function messageEnvelopeId(conversationId: string, activityId: string): string {
  return envelopeId('teams', `${conversationId}|${activityId}`);
}

/** The bot added to a conversation: a `start` envelope, which no reply refers back to. */
export function startEnvelopeId(conversationId: string, activityId: string): string {
  return envelopeId('teams', `${conversationId}|${START_MARK}${activityId}`);
}

const START_MARK = 'start|';

/**
 * The activity a reply answers, from the envelope it answers: set as `replyToId` so that the
 * reply is threaded under the person's message. Undefined for a conversation start (the
 * greeting answers no message) and for envelopes of another conversation.
 */
export function replyToIdFor(inReplyTo: string, conversationId: string): string | undefined {
  const prefix = envelopeId('teams', `${conversationId}|`);
  if (!inReplyTo.startsWith(prefix)) return undefined;
  const activityId = inReplyTo.slice(prefix.length);
  if (activityId === '' || activityId.startsWith(START_MARK)) return undefined;
  return activityId;
}
