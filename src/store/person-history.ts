import type { Queryable } from './db.ts';
import { type HistoryPage, listMessages, repliesTo } from './messages.ts';
import { type MessageRecord, PERSON_FACING_ROLES } from './records.ts';

/**
 * The one reader of a conversation as its person sees it: every path that shows a person their
 * history (REST, socket replay, the replies of `POST /api/chat`) reads through here, so a
 * private row (a tool's raw result, an agent's note) cannot reach them by a path that forgot to
 * filter. Paging counts the rows the person sees.
 */
export function personHistory(q: Queryable, sessionId: string, page: HistoryPage): Promise<MessageRecord[]> {
  return listMessages(q, sessionId, page, PERSON_FACING_ROLES);
}

/** The rows a turn added for its person (its replies), in order; empty when not processed (yet). */
export function personRepliesTo(q: Queryable, envelopeId: string): Promise<MessageRecord[]> {
  return repliesTo(q, envelopeId, PERSON_FACING_ROLES);
}
