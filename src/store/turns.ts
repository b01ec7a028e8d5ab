import { type Db, prepared, type Queryable } from './db.ts';
import { type NewHandoff, openHandoff } from './handoffs.ts';
import {
  type DeliveryStatus,
  json,
  type MessagePayload,
  type MessageRole,
  type SessionStateData,
} from './records.ts';
import { type ChildWrite, endChildrenOf, PARENT_ENDED_REASON, writeChildren } from './sub-sessions.ts';

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
  /**
   * The envelope's own row. For an `outbound` envelope it is a reply: `deliveryStatus` set (else
   * `received`), and it answers itself (`in_reply_to` = its envelope id), so the outbox sends it alone.
   */
  inbound: {
    seq: number;
    role: MessageRole;
    content: string;
    envelopeId: string;
    payload: MessagePayload;
    deliveryStatus?: DeliveryStatus;
  };
  replies: { seq: number; content: string; payload: MessagePayload; deliveryStatus: DeliveryStatus }[];
  /** History rows that are not replies (a tool's result): recorded with the turn, never delivered. */
  notes?: { seq: number; role: MessageRole; content: string; payload: MessagePayload }[];
  /** The new last sequence number and how many user messages this turn adds. */
  lastSeq: number;
  messageCountDelta: number;
  /** The latest channel reply address; null leaves the stored one. */
  replyTo: unknown;
  expiresAt: Date | null;
  /** False for a turn that is not the person's doing (a session's end): last activity stays. */
  touchesActivity?: boolean;
  /** Set when the turn ends the session. */
  end?: { reason: string };
  memory: { key: string; value: unknown }[];
  /** Writes to the memory of the session's user (`userId`). */
  userMemory?: { key: string; value: unknown }[];
  /** The session's user after this turn (absent: unchanged). */
  userId?: string | null;
  /** `userId` is new: the commit creates the user and gives the session to it. */
  assignsUser?: boolean;
  events: { type: string; data: unknown }[];
  /** Sub-sessions this turn made, changed or merged (src/store/sub-sessions.ts). */
  children?: ChildWrite[];
  /**
   * The turn hands the session to people (`open`: TRANSFER SESSION) or ends its handoff with the
   * session (`closeReason`). Written in the turn's transaction.
   */
  handoff?: { open?: NewHandoff; closeReason?: string };
  /**
   * Files the turn's messages carry that belong to no session yet (a channel's download, a bot's
   * SHOW IMAGE): the commit gives them to this session, so they go with its retention and erasure.
   */
  claimFiles?: string[];
  /**
   * The turn ends the session and asks for a rating (`sessions.askRating`): a rating on the same
   * key until `until` answers this session (`rating_asks`).
   */
  ratingAsk?: { nativeKey: string; until: Date };
  /** The turn is the answer to this (ended) session's rating ask; it fails as a conflict if answered. */
  ratingAnswer?: { score: number };
  /**
   * Later turns of the same session, each computed from the one before, committed in this write
   * (see `chainTurns`): their history rows, each with its own time. Then the write's state, last
   * sequence number, counts, reply address and expiry are the last turn's, `at` the first's, and
   * the state version moves once per turn.
   */
  chained?: ChainedTurn[];
}

/** A turn committed inside an earlier turn's write (`TurnWrite.chained`). */
export interface ChainedTurn {
  at: Date;
  inbound: TurnWrite['inbound'];
  replies: TurnWrite['replies'];
  notes?: TurnWrite['notes'];
}

/**
 * Whether a turn may be chained to the turns before it in one write: a person's message that
 * writes only its session's state and history (nothing that commits alone, no end, no handoff,
 * no memory, no events, no user made).
 */
export function chainable(turn: TurnWrite): boolean {
  return (
    !commitsAlone(turn) &&
    turn.end === undefined &&
    turn.memory.length === 0 &&
    (turn.userMemory?.length ?? 0) === 0 &&
    turn.events.length === 0 &&
    turn.touchesActivity !== false &&
    turn.inbound.role === 'user' &&
    turn.inbound.deliveryStatus === undefined &&
    turn.chained === undefined
  );
}

/**
 * One write for consecutive chainable turns of one session, the first computed from the stored
 * state and each next from the one before: committed together, or not at all.
 */
export function chainTurns(turns: readonly TurnWrite[]): TurnWrite {
  const first = turns[0]!;
  if (turns.length === 1) return first;
  const last = turns[turns.length - 1]!;
  let replyTo: unknown = null;
  for (const t of turns) if (t.replyTo !== null && t.replyTo !== undefined) replyTo = t.replyTo;
  return {
    ...first,
    state: last.state,
    lastSeq: last.lastSeq,
    messageCountDelta: turns.reduce((n, t) => n + t.messageCountDelta, 0),
    replyTo,
    expiresAt: last.expiresAt,
    ...(last.userId === undefined ? {} : { userId: last.userId }),
    chained: turns.slice(1).map((t) => ({
      at: t.at,
      inbound: t.inbound,
      replies: t.replies,
      ...(t.notes ? { notes: t.notes } : {}),
    })),
  };
}

/** The time of a write's last turn: its session's last activity and its state's. */
const lastAt = (turn: TurnWrite) => turn.chained?.[turn.chained.length - 1]?.at ?? turn.at;

/**
 * A turn that makes a user, writes sub-sessions or opens or closes a handoff commits on its own
 * (the batch statement does none of these).
 */
export function commitsAlone(turn: TurnWrite): boolean {
  return (
    turn.assignsUser === true ||
    (turn.children?.length ?? 0) > 0 ||
    turn.handoff !== undefined ||
    (turn.claimFiles?.length ?? 0) > 0 ||
    turn.ratingAsk !== undefined ||
    turn.ratingAnswer !== undefined
  );
}

/** Opens or closes a turn's handoff row, in the turn's transaction. */
async function writeHandoff(tx: Queryable, turn: TurnWrite): Promise<void> {
  const { open, closeReason } = turn.handoff ?? {};
  if (closeReason)
    await tx.query(
      `UPDATE handoffs SET state = 'ended', ended_at = $2, end_reason = $3 WHERE session_id = $1 AND state <> 'ended'`,
      [turn.sessionId, turn.at, closeReason],
    );
  if (open) await openHandoff(tx, open);
}

/** A turn's replies and notes as rows after its inbound message. Notes are never delivered: status `received`. */
function historyRows(turn: Pick<TurnWrite, 'replies' | 'notes'>) {
  return [
    ...turn.replies.map((r) => ({
      seq: r.seq,
      role: 'assistant',
      content: r.content,
      status: r.deliveryStatus,
      payload: r.payload,
    })),
    ...(turn.notes ?? []).map((n) => ({
      seq: n.seq,
      role: n.role,
      content: n.content,
      status: 'received',
      payload: n.payload,
    })),
  ];
}

/** A turn's rating ask (with the end that makes it) or its answer, in the turn's transaction. */
async function writeRating(tx: Queryable, turn: TurnWrite): Promise<void> {
  if (turn.ratingAsk)
    await tx.query(
      `INSERT INTO rating_asks (session_id, bot, channel, native_key, asked_at, open_until)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id) DO NOTHING`,
      [turn.sessionId, turn.bot, turn.channel, turn.ratingAsk.nativeKey, turn.at, turn.ratingAsk.until],
    );
  if (turn.ratingAnswer) {
    const answered = await tx.query(
      'UPDATE rating_asks SET answered_at = $2, score = $3 WHERE session_id = $1 AND answered_at IS NULL',
      [turn.sessionId, turn.at, turn.ratingAnswer.score],
    );
    // Answered a moment ago (two ratings racing): this message is recomputed as a new one.
    if (answered.rowCount === 0) throw new TurnAbort('conflict');
  }
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
       suggestions = $6::jsonb, dialog = $7::jsonb, summary = $9::jsonb, handoff = $10::jsonb,
       version = version + $11, updated_at = now()
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
      json(s.summary ?? null),
      json(s.handoff ?? null),
      1 + (turn.chained?.length ?? 0),
    ],
  );
  if (state.rowCount === 0) throw new TurnAbort('conflict');
  if (turn.handoff) await writeHandoff(tx, turn);

  await writeInbound(tx, turn.sessionId, turn.inbound, turn.at);
  if (turn.children?.length && !(await writeChildren(tx, turn.sessionId, turn.children, turn.at)))
    throw new TurnAbort('conflict');

  await writeHistoryRows(tx, turn.sessionId, turn.inbound.envelopeId, turn, turn.at);
  for (const next of turn.chained ?? []) {
    await writeInbound(tx, turn.sessionId, next.inbound, next.at);
    await writeHistoryRows(tx, turn.sessionId, next.inbound.envelopeId, next, next.at);
  }

  await tx.query(
    `UPDATE sessions SET last_seq = $2, message_count = message_count + $3,
       last_activity_at = CASE WHEN $8::boolean THEN $7 ELSE last_activity_at END,
       reply_to = COALESCE($4::jsonb, reply_to),
       expires_at = CASE WHEN auth_level = 'anonymous' THEN $5::timestamptz END,
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
      lastAt(turn),
      turn.touchesActivity ?? true,
    ],
  );

  if (turn.end) await endChildrenOf(tx, turn.sessionId, turn.at);
  if (turn.ratingAsk || turn.ratingAnswer) await writeRating(tx, turn);

  if (turn.claimFiles?.length)
    await tx.query('UPDATE files SET session_id = $2 WHERE id = ANY($1::uuid[]) AND session_id IS NULL', [
      turn.claimFiles,
      turn.sessionId,
    ]);

  if (turn.memory.length > 0) {
    await tx.query(
      `INSERT INTO bot_memory (bot, key, value)
       SELECT $1, m.key, COALESCE(m.value, 'null'::jsonb)
       FROM jsonb_to_recordset($2::jsonb) AS m(key text, value jsonb)
       ON CONFLICT (bot, key) DO UPDATE SET value = excluded.value, updated_at = now()`,
      [turn.bot, json(turn.memory.map((m) => ({ key: m.key, value: m.value ?? null })))],
    );
  }

  if (turn.userMemory?.length) {
    if (turn.assignsUser) {
      await tx.query('INSERT INTO users (id) VALUES ($1) ON CONFLICT (id) DO NOTHING', [turn.userId]);
      await tx.query('UPDATE sessions SET user_id = COALESCE(user_id, $2) WHERE id = $1', [
        turn.sessionId,
        turn.userId,
      ]);
    }
    await tx.query(
      `INSERT INTO user_memory (user_id, key, value, updated_at)
       SELECT s.user_id, m.key, COALESCE(m.value, 'null'::jsonb), $3
       FROM sessions s, jsonb_to_recordset($2::jsonb) AS m(key text, value jsonb)
       WHERE s.id = $1 AND s.user_id IS NOT NULL
       ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      [turn.sessionId, json(turn.userMemory.map((m) => ({ key: m.key, value: m.value ?? null }))), turn.at],
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
 * A turn's own envelope row (an outbound envelope's, with its delivery status, is a reply to
 * itself). Already recorded: the envelope is a replay, and the whole write is refused as a duplicate.
 */
async function writeInbound(
  tx: Queryable,
  sessionId: string,
  inbound: TurnWrite['inbound'],
  at: Date,
): Promise<void> {
  const recorded = await tx.query(
    `INSERT INTO messages (session_id, seq, role, content, envelope_id, in_reply_to, delivery_status, payload, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $8, $9, $6::jsonb, $7, $7) ON CONFLICT (envelope_id) WHERE envelope_id IS NOT NULL DO NOTHING`,
    [
      sessionId,
      inbound.seq,
      inbound.role,
      inbound.content,
      inbound.envelopeId,
      json(inbound.payload),
      at,
      inbound.deliveryStatus ? inbound.envelopeId : null,
      inbound.deliveryStatus ?? 'received',
    ],
  );
  if (recorded.rowCount === 0) throw new TurnAbort('duplicate');
}

/** A turn's replies and notes, after its inbound message `envelopeId`. */
async function writeHistoryRows(
  tx: Queryable,
  sessionId: string,
  envelopeId: string,
  turn: Pick<TurnWrite, 'replies' | 'notes'>,
  at: Date,
): Promise<void> {
  const rows = historyRows(turn);
  if (rows.length === 0) return;
  await tx.query(
    `INSERT INTO messages (session_id, seq, role, content, in_reply_to, delivery_status, payload, created_at, updated_at)
     SELECT $1, r.seq, r.role, r.content, $2, r.status, r.payload, $4, $4
     FROM jsonb_to_recordset($3::jsonb) AS r(seq bigint, role text, content text, status text, payload jsonb)`,
    [sessionId, envelopeId, json(rows), at],
  );
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

/** A batch statement hit a unique violation (a concurrent writer recorded one of its envelopes). */
export function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: string }).code === '23505';
}

/**
 * The group commit's statement: the turns' state (a turn whose state moved or whose envelope is
 * recorded is left out), their history, their sessions. Parameters: $1 the turns, $2 their
 * history rows. Read as `json`, not `jsonb`: the recordset takes each field from the text once
 * (the jsonb columns parse their own part), where `jsonb` first builds the whole document as
 * jsonb — the same rows for ~15% less of the backend's CPU in parsing them (256 turns and 512
 * history rows: 8.6–9.6 against 6.0–8.6 ms, five pairs).
 */
const BATCH_CORE = `WITH t AS (
       SELECT * FROM json_to_recordset($1::json) AS x(
         i int, session_id uuid, expected bigint, envelope_id text, variables jsonb, context jsonb, kbs jsonb,
         tools jsonb, suggestions jsonb, dialog jsonb, summary jsonb, handoff jsonb, last_seq bigint, count_delta int, reply_to jsonb,
         expires_at timestamptz, end_reason text, at timestamptz, touch boolean, steps int)
     ),
     ok AS (
       UPDATE session_state s SET variables = t.variables, context = t.context, kbs = t.kbs, tools = t.tools,
         suggestions = t.suggestions, dialog = t.dialog, summary = t.summary, handoff = t.handoff,
         version = s.version + t.steps, updated_at = t.at
       FROM t
       WHERE s.session_id = t.session_id AND s.version = t.expected
         AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.envelope_id = t.envelope_id)
       RETURNING t.i, t.session_id, t.last_seq, t.count_delta, t.reply_to, t.expires_at, t.end_reason, t.at, t.touch
     ),
     msg AS (
       INSERT INTO messages (session_id, seq, role, content, envelope_id, in_reply_to, delivery_status, payload, created_at, updated_at)
       SELECT ok.session_id, r.seq, r.role, r.content, r.envelope_id, r.in_reply_to, r.status, r.payload, r.at, r.at
       FROM json_to_recordset($2::json) AS r(i int, seq bigint, role text, content text, envelope_id text,
         in_reply_to text, status text, payload jsonb, at timestamptz)
       JOIN ok ON ok.i = r.i
       RETURNING 1
     ),
     ses AS (
       UPDATE sessions s SET last_seq = ok.last_seq, message_count = s.message_count + ok.count_delta,
         last_activity_at = CASE WHEN ok.touch THEN ok.at ELSE s.last_activity_at END,
         reply_to = COALESCE(ok.reply_to, s.reply_to),
         expires_at = CASE WHEN s.auth_level = 'anonymous' THEN ok.expires_at END,
         ended_at = CASE WHEN ok.end_reason IS NULL THEN s.ended_at ELSE COALESCE(s.ended_at, ok.at) END,
         end_reason = COALESCE(s.end_reason, ok.end_reason)
       FROM ok WHERE s.id = ok.session_id
       RETURNING 1
     )`;

/**
 * What fewer turns write, in the same statement: the children of a session that ends, bot and
 * user memory, events. Parameters $3 memory, $4 events, $5 user memory.
 */
const BATCH_EXTRAS = `kids AS (
       UPDATE sessions c SET ended_at = ok.at, end_reason = '${PARENT_ENDED_REASON}'
       FROM ok WHERE ok.end_reason IS NOT NULL AND c.parent_id = ok.session_id AND c.ended_at IS NULL
       RETURNING 1
     ),
     mem AS (
       INSERT INTO bot_memory (bot, key, value, updated_at)
       SELECT m.bot, m.key, COALESCE(m.value, 'null'::jsonb), ok.at
       FROM jsonb_to_recordset($3::jsonb) AS m(i int, bot text, key text, value jsonb) JOIN ok ON ok.i = m.i
       ON CONFLICT (bot, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
       RETURNING 1
     ),
     umem AS (
       INSERT INTO user_memory (user_id, key, value, updated_at)
       SELECT s.user_id, m.key, COALESCE(m.value, 'null'::jsonb), ok.at
       FROM jsonb_to_recordset($5::jsonb) AS m(i int, session_id uuid, key text, value jsonb)
       JOIN ok ON ok.i = m.i JOIN sessions s ON s.id = m.session_id
       WHERE s.user_id IS NOT NULL
       ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
       RETURNING 1
     ),
     ev AS (
       INSERT INTO session_events (session_id, bot, channel, type, data, created_at)
       SELECT ok.session_id, e.bot, e.channel, e.type, e.data, ok.at
       FROM jsonb_to_recordset($4::jsonb) AS e(i int, bot text, channel text, type text, data jsonb) JOIN ok ON ok.i = e.i
       RETURNING 1
     )`;

const COMMIT_TURN_BATCH = prepared(
  'commit_turn_batch',
  `${BATCH_CORE},
     ${BATCH_EXTRAS}
     SELECT i FROM ok`,
);

/**
 * The same for a batch that ends no session and writes no memory and no events (most batches):
 * without the four parts that would write nothing, whose start-up (each opens its table and its
 * indexes) and empty parameters every statement paid.
 */
const COMMIT_TURN_BATCH_PLAIN = prepared(
  'commit_turn_batch_plain',
  `${BATCH_CORE}
     SELECT i FROM ok`,
);

/** One history row of `COMMIT_TURN_BATCH`'s second parameter. */
interface MessageRow {
  i: number;
  seq: number;
  role: string;
  content: string;
  envelope_id?: string;
  in_reply_to: string | null;
  status: string;
  payload: MessagePayload;
  at: string;
}

/** A turn's inbound row, then its replies and notes (as `historyRows`), for turn `i` of a batch. */
function pushMessageRows(out: MessageRow[], i: number, turn: ChainedTurn): void {
  const at = turn.at.toISOString();
  const { inbound } = turn;
  out.push({
    i,
    seq: inbound.seq,
    role: inbound.role,
    content: inbound.content,
    envelope_id: inbound.envelopeId,
    in_reply_to: inbound.deliveryStatus ? inbound.envelopeId : null,
    status: inbound.deliveryStatus ?? 'received',
    payload: inbound.payload,
    at,
  });
  for (const r of turn.replies)
    out.push({
      i,
      seq: r.seq,
      role: 'assistant',
      content: r.content,
      status: r.deliveryStatus,
      payload: r.payload,
      in_reply_to: inbound.envelopeId,
      at,
    });
  if (turn.notes)
    for (const n of turn.notes)
      out.push({
        i,
        seq: n.seq,
        role: n.role,
        content: n.content,
        status: 'received',
        payload: n.payload,
        in_reply_to: inbound.envelopeId,
        at,
      });
}

/**
 * Several sessions' turns in ONE statement, so one transaction and one fsync: the group commit.
 * Each turn commits or not on its own merits: a turn whose envelope is already recorded or whose
 * state moved is left out (its `duplicate` or `conflict` is reported), the rest commit together.
 * The batch must hold at most one turn per session, no two turns writing the same bot or user
 * memory key, and no turn that assigns its session a new user (those commit alone). A unique violation (a concurrent writer recorded the same envelope between our check and
 * our insert) fails the whole statement: the caller then commits the turns one by one.
 */
export async function commitTurnBatch(db: Db, turns: readonly TurnWrite[]): Promise<TurnCommitResult[]> {
  const rows = turns.map((t, i) => ({
    i,
    session_id: t.sessionId,
    expected: t.expectedVersion,
    envelope_id: t.inbound.envelopeId,
    variables: t.state.variables,
    context: t.state.context,
    kbs: t.state.kbs,
    tools: t.state.tools,
    suggestions: t.state.suggestions,
    dialog: t.state.dialog ?? null,
    summary: t.state.summary ?? null,
    handoff: t.state.handoff ?? null,
    last_seq: t.lastSeq,
    count_delta: t.messageCountDelta,
    // Absent (undefined is left out of the JSON) when the turn keeps the stored address.
    reply_to: t.replyTo === null ? undefined : t.replyTo,
    expires_at: t.expiresAt ? t.expiresAt.toISOString() : null,
    end_reason: t.end?.reason ?? null,
    at: lastAt(t).toISOString(),
    touch: t.touchesActivity ?? true,
    steps: 1 + (t.chained?.length ?? 0),
  }));
  // Built in plain loops: this runs for every turn of every batch.
  const messages: MessageRow[] = [];
  for (let i = 0; i < turns.length; i++) {
    const t = turns[i]!;
    pushMessageRows(messages, i, t);
    if (t.chained) for (const next of t.chained) pushMessageRows(messages, i, next);
  }
  const memory = turns.flatMap((t, i) =>
    t.memory.map((m) => ({ i, bot: t.bot, key: m.key, value: m.value ?? null })),
  );
  const userMemory = turns.flatMap((t, i) =>
    (t.userMemory ?? []).map((m) => ({ i, session_id: t.sessionId, key: m.key, value: m.value ?? null })),
  );
  const events = turns.flatMap((t, i) =>
    t.events.map((e) => ({ i, bot: t.bot, channel: t.channel, type: e.type, data: e.data ?? {} })),
  );
  const plain =
    memory.length === 0 && events.length === 0 && userMemory.length === 0 && turns.every((t) => !t.end);
  const { rows: committed } = await db.query<{ i: number }>(
    plain ? COMMIT_TURN_BATCH_PLAIN : COMMIT_TURN_BATCH,
    plain
      ? [json(rows), json(messages)]
      : [json(rows), json(messages), json(memory), json(events), json(userMemory)],
  );
  const results: TurnCommitResult[] = turns.map(() => 'conflict');
  for (const { i } of committed) results[i] = 'committed';
  const missed = turns.filter((_, i) => results[i] !== 'committed').map((t) => t.inbound.envelopeId);
  if (missed.length > 0) {
    const { rows: recorded } = await db.query<{ envelope_id: string }>(
      'SELECT envelope_id FROM messages WHERE envelope_id = ANY($1::text[])',
      [missed],
    );
    const duplicates = new Set(recorded.map((r) => r.envelope_id));
    turns.forEach((t, i) => {
      if (results[i] !== 'committed' && duplicates.has(t.inbound.envelopeId)) results[i] = 'duplicate';
    });
  }
  return results;
}
