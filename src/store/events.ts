import type { Queryable } from './db.ts';
import { json } from './records.ts';

export interface SessionEvent {
  sessionId: string | null;
  bot: string;
  channel: string;
  type: string;
  data?: unknown;
}

export async function recordEvent(q: Queryable, event: SessionEvent): Promise<void> {
  await q.query(
    'INSERT INTO session_events (session_id, bot, channel, type, data) VALUES ($1, $2, $3, $4, $5::jsonb)',
    [event.sessionId, event.bot, event.channel, event.type, json(event.data ?? {})],
  );
}

export interface SessionEventRecord {
  type: string;
  data: unknown;
  createdAt: string;
}

/** A session's latest events, newest first (what an agent sees beside a conversation). */
export async function recentEvents(
  q: Queryable,
  sessionId: string,
  limit: number,
): Promise<SessionEventRecord[]> {
  const { rows } = await q.query(
    'SELECT type, data, created_at FROM session_events WHERE session_id = $1 ORDER BY id DESC LIMIT $2',
    [sessionId, limit],
  );
  return rows.map((row) => ({
    type: row.type as string,
    data: row.data,
    createdAt: new Date(row.created_at as string | Date).toISOString(),
  }));
}
