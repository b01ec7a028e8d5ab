import type { Db, Queryable } from './db.ts';
import {
  type DeliveryStatus,
  json,
  type MessagePayload,
  type MessageRole,
  type SessionStateData,
} from './records.ts';

/** Everything one turn writes, committed together or not at all. */
export interface TurnWrite {
  sessionId: string;
  /** The turn's time: every row it writes carries it, so what clients are told matches the history. */
  at: Date;
  bot: string;
  channel: string;
  /** The state version the turn was computed from; the write fails if it moved. */
  expectedVersion: number;
  state: SessionStateData;
  inbound: { seq: number; role: MessageRole; content: string; envelopeId: string; payload: MessagePayload };
  replies: { seq: number; content: string; payload: MessagePayload; deliveryStatus: DeliveryStatus }[];
  /** The new last sequence number and how many user messages this turn adds. */
  lastSeq: number;
  messageCountDelta: number;
  /** The latest channel reply address; null leaves the stored one. */
  replyTo: unknown;
  expiresAt: Date | null;
  /** Set when the turn ends the session. */
  end?: { reason: string };
  memory: { key: string; value: unknown }[];
  events: { type: string; data: unknown }[];
}

export type TurnCommitResult = 'committed' | 'duplicate' | 'conflict';

class TurnAbort extends Error {
  constructor(readonly result: Exclude<TurnCommitResult, 'committed'>) {
    super(result);
  }
}

async function writeTurn(tx: Queryable, turn: TurnWrite): Promise<void> {
  const s = turn.state;
  const state = await tx.query(
    `UPDATE session_state SET variables = $2::jsonb, context = $3::jsonb, kbs = $4::jsonb, tools = $5::jsonb,
       suggestions = $6::jsonb, dialog = $7::jsonb, version = version + 1, updated_at = now()
     WHERE session_id = $1 AND version = $8`,
    [
      turn.sessionId,
      json(s.variables),
      json(s.context),
      json(s.kbs),
      json(s.tools),
      json(s.suggestions),
      json(s.dialog),
      turn.expectedVersion,
    ],
  );
  if (state.rowCount === 0) throw new TurnAbort('conflict');

  const inbound = await tx.query(
    `INSERT INTO messages (session_id, seq, role, content, envelope_id, delivery_status, payload, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, 'received', $6::jsonb, $7, $7) ON CONFLICT (envelope_id) DO NOTHING`,
    [
      turn.sessionId,
      turn.inbound.seq,
      turn.inbound.role,
      turn.inbound.content,
      turn.inbound.envelopeId,
      json(turn.inbound.payload),
      turn.at,
    ],
  );
  if (inbound.rowCount === 0) throw new TurnAbort('duplicate');

  if (turn.replies.length > 0) {
    await tx.query(
      `INSERT INTO messages (session_id, seq, role, content, in_reply_to, delivery_status, payload, created_at, updated_at)
       SELECT $1, r.seq, 'assistant', r.content, $2, r.status, r.payload, $4, $4
       FROM jsonb_to_recordset($3::jsonb) AS r(seq bigint, content text, status text, payload jsonb)`,
      [
        turn.sessionId,
        turn.inbound.envelopeId,
        json(
          turn.replies.map((r) => ({
            seq: r.seq,
            content: r.content,
            status: r.deliveryStatus,
            payload: r.payload,
          })),
        ),
        turn.at,
      ],
    );
  }

  await tx.query(
    `UPDATE sessions SET last_seq = $2, message_count = message_count + $3, last_activity_at = $7,
       reply_to = COALESCE($4::jsonb, reply_to), expires_at = $5,
       ended_at = CASE WHEN $6::text IS NULL THEN ended_at ELSE COALESCE(ended_at, $7) END,
       end_reason = COALESCE(end_reason, $6::text)
     WHERE id = $1`,
    [
      turn.sessionId,
      turn.lastSeq,
      turn.messageCountDelta,
      turn.replyTo === null || turn.replyTo === undefined ? null : json(turn.replyTo),
      turn.expiresAt,
      turn.end?.reason ?? null,
      turn.at,
    ],
  );

  if (turn.memory.length > 0) {
    await tx.query(
      `INSERT INTO bot_memory (bot, key, value)
       SELECT $1, m.key, COALESCE(m.value, 'null'::jsonb)
       FROM jsonb_to_recordset($2::jsonb) AS m(key text, value jsonb)
       ON CONFLICT (bot, key) DO UPDATE SET value = excluded.value, updated_at = now()`,
      [turn.bot, json(turn.memory.map((m) => ({ key: m.key, value: m.value ?? null })))],
    );
  }

  if (turn.events.length > 0) {
    await tx.query(
      `INSERT INTO session_events (session_id, bot, channel, type, data)
       SELECT $1, $2, $3, e.type, e.data FROM jsonb_to_recordset($4::jsonb) AS e(type text, data jsonb)`,
      [
        turn.sessionId,
        turn.bot,
        turn.channel,
        json(turn.events.map((e) => ({ type: e.type, data: e.data ?? {} }))),
      ],
    );
  }
}

/**
 * Commits a turn in one transaction. `duplicate`: the envelope was already recorded (a replay),
 * nothing written. `conflict`: the session state moved since the turn read it (another writer),
 * nothing written; reload and run the turn again.
 */
export async function commitTurn(db: Db, turn: TurnWrite): Promise<TurnCommitResult> {
  try {
    await db.transaction((tx) => writeTurn(tx, turn));
    return 'committed';
  } catch (err) {
    if (err instanceof TurnAbort) return err.result;
    throw err;
  }
}
