import { createHash } from 'node:crypto';
import type { Db, Queryable } from '../store/db.ts';

/**
 * The id of the event that reports one fact: a name-based UUID (version 5, RFC 9562) of `name`
 * in the namespace `namespace` (a uuid: the broadcast's id). The same fact always gets the same
 * id, whoever writes it and however often.
 */
export function factEventId(namespace: string, name: string): string {
  const hash = createHash('sha1')
    .update(Buffer.from(namespace.replace(/-/g, ''), 'hex'))
    .update(name)
    .digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** One event on its way to one endpoint (a `webhook_outbox` row). */
export interface OutboxEvent {
  id: string;
  eventId: string;
  endpoint: string;
  bot: string;
  /** The session the event is about; null for a session-less event (a broadcast's). */
  sessionId: string | null;
  /** A session-less event's ordering key (`broadcast:<id>`); null for a session's event. */
  orderingKey: string | null;
  /** What orders it: its session id, or its ordering key. */
  lane: string;
  type: string;
  data: unknown;
  createdAt: Date;
  state: 'pending' | 'delivered' | 'dead';
  attempts: number;
  nextAttemptAt: Date | null;
  lastError: string | null;
}

/**
 * One endpoint's ordered stream of events: a session's (`key` = the session id) or a session-less
 * one's (`key` = the ordering key, `broadcast:<id>`). Lanes never wait for each other.
 */
export interface Lane {
  endpoint: string;
  key: string;
}

interface Row {
  id: string;
  event_id: string;
  endpoint: string;
  bot: string;
  session_id: string | null;
  ordering_key: string | null;
  lane: string;
  type: string;
  data: unknown;
  created_at: Date | string;
  state: OutboxEvent['state'];
  attempts: number;
  next_attempt_at: Date | string | null;
  last_error: string | null;
}

const toEvent = (r: Row): OutboxEvent => ({
  id: String(r.id),
  eventId: r.event_id,
  endpoint: r.endpoint,
  bot: r.bot,
  sessionId: r.session_id,
  orderingKey: r.ordering_key,
  lane: r.lane,
  type: r.type,
  data: r.data,
  createdAt: new Date(r.created_at),
  state: r.state,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at === null ? null : new Date(r.next_attempt_at),
  lastError: r.last_error,
});

/** Makes `webhook_endpoints` the configured set: what the triggers fan events out to. */
export async function syncEndpoints(
  db: Db,
  endpoints: readonly { endpoint: string; bot: string; url: string; events: readonly string[] }[],
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query('LOCK TABLE webhook_endpoints IN EXCLUSIVE MODE');
    await tx.query('DELETE FROM webhook_endpoints WHERE NOT (endpoint = ANY ($1::text[]))', [
      endpoints.map((e) => e.endpoint),
    ]);
    for (const e of endpoints)
      await tx.query(
        `INSERT INTO webhook_endpoints (endpoint, bot, url, events) VALUES ($1, $2, $3, $4::text[])
         ON CONFLICT (endpoint) DO UPDATE SET bot = excluded.bot, url = excluded.url, events = excluded.events`,
        [e.endpoint, e.bot, e.url, [...e.events]],
      );
  });
}

/**
 * Lanes with a fresh event (never tried) and no event waiting for a retry: the loop's work. A
 * lane whose head waits for a retry is the scheduler's (its job wakes the lane), until that retry
 * is long overdue (`overdueLanes`).
 */
export async function freshLanes(q: Queryable, limit: number): Promise<Lane[]> {
  const { rows } = await q.query<{ endpoint: string; lane: string }>(
    `SELECT o.endpoint, o.lane FROM webhook_outbox o
     WHERE o.state = 'pending' AND o.attempts = 0
       AND NOT EXISTS (SELECT 1 FROM webhook_outbox r WHERE r.endpoint = o.endpoint
         AND r.lane = o.lane AND r.state = 'pending' AND r.attempts > 0)
       AND NOT EXISTS (SELECT 1 FROM webhook_lanes l WHERE l.endpoint = o.endpoint
         AND l.lane = o.lane AND l.leased_until > now())
     GROUP BY o.endpoint, o.lane ORDER BY min(o.id) LIMIT $1`,
    [limit],
  );
  return rows.map((r) => ({ endpoint: r.endpoint, key: r.lane }));
}

/** A lane whose retry is overdue (see `overdueLanes`), and since when it was due. */
export interface OverdueLane extends Lane {
  dueAt: Date;
}

/**
 * Lanes with an event waiting for a retry that was due more than `overdueMs` ago, that no process
 * holds a live lease on: the scheduler job that should have woken them is gone (set aside, lost
 * with Redis's data, or never written). Most overdue first. The loop drains them as woken; the
 * lease (`leaseLane`) still decides who sends, so a job that does wake such a lane meanwhile waits
 * for it, and neither sends an event the other has sent.
 */
export async function overdueLanes(q: Queryable, overdueMs: number, limit: number): Promise<OverdueLane[]> {
  const { rows } = await q.query<{ endpoint: string; lane: string; due_at: Date | string }>(
    `SELECT o.endpoint, o.lane, min(o.next_attempt_at) AS due_at FROM webhook_outbox o
     WHERE o.state = 'pending' AND o.attempts > 0
       AND o.next_attempt_at < now() - $1 * interval '1 millisecond'
       AND NOT EXISTS (SELECT 1 FROM webhook_lanes l WHERE l.endpoint = o.endpoint
         AND l.lane = o.lane AND l.leased_until > now())
     GROUP BY o.endpoint, o.lane ORDER BY min(o.next_attempt_at) LIMIT $2`,
    [overdueMs, limit],
  );
  return rows.map((r) => ({ endpoint: r.endpoint, key: r.lane, dueAt: new Date(r.due_at) }));
}

/** Takes (or renews) the lane for `owner` for `ms`; false when another process holds it. */
export async function leaseLane(q: Queryable, lane: Lane, owner: string, ms: number): Promise<boolean> {
  const { rows } = await q.query(
    `INSERT INTO webhook_lanes (endpoint, lane, owner, leased_until)
     VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
     ON CONFLICT (endpoint, lane) DO UPDATE SET owner = excluded.owner, leased_until = excluded.leased_until
     WHERE webhook_lanes.owner = excluded.owner OR webhook_lanes.leased_until <= now()
     RETURNING 1`,
    [lane.endpoint, lane.key, owner, ms],
  );
  return rows.length === 1;
}

export async function releaseLane(q: Queryable, lane: Lane, owner: string): Promise<void> {
  await q.query('DELETE FROM webhook_lanes WHERE endpoint = $1 AND lane = $2 AND owner = $3', [
    lane.endpoint,
    lane.key,
    owner,
  ]);
}

/** The lane's oldest pending event: the only one that may be sent next. */
export async function laneHead(q: Queryable, lane: Lane): Promise<OutboxEvent | undefined> {
  const { rows } = await q.query<Row>(
    `SELECT * FROM webhook_outbox WHERE endpoint = $1 AND lane = $2 AND state = 'pending'
     ORDER BY id LIMIT 1`,
    [lane.endpoint, lane.key],
  );
  return rows[0] && toEvent(rows[0]);
}

export async function markDelivered(q: Queryable, id: string, attempts: number): Promise<void> {
  await q.query(
    `UPDATE webhook_outbox SET state = 'delivered', attempts = $2, done_at = now(), last_error = NULL
     WHERE id = $1`,
    [id, attempts],
  );
}

export async function markRetry(
  q: Queryable,
  id: string,
  attempts: number,
  at: Date,
  error: string,
): Promise<void> {
  await q.query(
    'UPDATE webhook_outbox SET attempts = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1',
    [id, attempts, at, error],
  );
}

export async function markDead(q: Queryable, id: string, attempts: number, error: string): Promise<void> {
  await q.query(
    `UPDATE webhook_outbox SET state = 'dead', attempts = $2, last_error = $3, done_at = now(), next_attempt_at = NULL
     WHERE id = $1`,
    [id, attempts, error],
  );
}

/** Dead-lettered events, newest first (`switchboard webhooks failed`). */
export async function deadEvents(q: Queryable, limit = 100): Promise<OutboxEvent[]> {
  const { rows } = await q.query<Row>(
    `SELECT * FROM webhook_outbox WHERE state = 'dead' ORDER BY done_at DESC, id DESC LIMIT $1`,
    [limit],
  );
  return rows.map(toEvent);
}

/**
 * Puts dead-lettered events back in their lanes as fresh (`switchboard webhooks replay`): all of
 * them, or those with these event ids. Returns how many.
 */
export async function replayDead(q: Queryable, eventIds?: readonly string[]): Promise<number> {
  const { rows } = await q.query(
    `UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = NULL, done_at = NULL
     WHERE state = 'dead' AND ($1::uuid[] IS NULL OR event_id = ANY ($1::uuid[])) RETURNING 1`,
    [eventIds ? [...eventIds] : null],
  );
  return rows.length;
}

/** Forgets delivered events older than `olderThanMs` (they hold message text); returns how many. */
export async function pruneDelivered(q: Queryable, olderThanMs: number): Promise<number> {
  const { rows } = await q.query(
    `DELETE FROM webhook_outbox WHERE state = 'delivered' AND done_at < now() - $1 * interval '1 millisecond'
     RETURNING 1`,
    [olderThanMs],
  );
  return rows.length;
}

/**
 * Forgets dead-lettered events older than `olderThanMs` since they were (they hold message text;
 * `switchboard webhooks failed|replay` work on those still kept); returns how many.
 */
export async function pruneDead(q: Queryable, olderThanMs: number): Promise<number> {
  const { rowCount } = await q.query(
    `DELETE FROM webhook_outbox WHERE state = 'dead' AND done_at < now() - $1 * interval '1 millisecond'`,
    [olderThanMs],
  );
  return rowCount;
}

/**
 * Forgets the events of `bots` that happened more than `olderThanMs` ago and are done with
 * (delivered or dead-lettered): their copies of message text go with the messages under the
 * bots' `keepMessagesDays`. A pending event is never dropped: it is delivered, or dead-lettered
 * at WEBHOOK_MAX_AGE_SECONDS. At most `limit` at a time; returns how many.
 */
export async function pruneDoneEventsOf(
  q: Queryable,
  bots: readonly string[],
  olderThanMs: number,
  limit: number,
): Promise<number> {
  const { rowCount } = await q.query(
    `DELETE FROM webhook_outbox WHERE id IN (
       SELECT id FROM webhook_outbox WHERE bot = ANY($1::text[]) AND state IN ('delivered', 'dead')
         AND created_at < now() - $2 * interval '1 millisecond' LIMIT $3)`,
    [[...bots], olderThanMs, limit],
  );
  return rowCount;
}

/**
 * Forgets lane leases that ran out more than `graceMs` ago: a lease is deleted by its owner when
 * its lane is done, and one whose owner stopped (a crash, a SIGKILL) is taken over only when its
 * lane gets an event again, so leases of lanes that never do were left for good. An expired lease
 * binds nobody (`leaseLane` takes it over), so forgetting it changes nothing else. Returns how many.
 */
export async function pruneExpiredLeases(q: Queryable, graceMs: number): Promise<number> {
  const { rows } = await q.query(
    `DELETE FROM webhook_lanes WHERE leased_until < now() - $1 * interval '1 millisecond' RETURNING 1`,
    [graceMs],
  );
  return rows.length;
}

/**
 * Writes a session-less event (`session_id` null) for every endpoint of `bot` subscribed to
 * `type`, ordered by `key` (per key per endpoint). In `q`'s transaction when `q` is one.
 * `eventId`: the event's id, for an event that may be written again for the same fact (see
 * `factEventId`); written once per endpoint, a second write with that id changes nothing.
 */
export async function emitKeyed(
  q: Queryable,
  event: { bot: string; key: string; type: string; data: unknown; eventId?: string },
): Promise<void> {
  if (event.eventId !== undefined) {
    await q.query('SELECT webhook_emit_keyed_once($1::uuid, $2, $3, $4, $5::jsonb)', [
      event.eventId,
      event.bot,
      event.key,
      event.type,
      JSON.stringify(event.data),
    ]);
    return;
  }
  await q.query('SELECT webhook_emit_keyed($1, $2, $3, $4::jsonb)', [
    event.bot,
    event.key,
    event.type,
    JSON.stringify(event.data),
  ]);
}

/** The event types of `types` that at least one endpoint of `bot` subscribes to. */
export async function subscribedTypes(
  q: Queryable,
  bot: string,
  types: readonly string[],
): Promise<Set<string>> {
  const { rows } = await q.query<{ type: string }>(
    `SELECT DISTINCT t AS type FROM webhook_endpoints, unnest(events) t WHERE bot = $1 AND t = ANY ($2::text[])`,
    [bot, [...types]],
  );
  return new Set(rows.map((r) => r.type));
}
