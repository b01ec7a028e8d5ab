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
