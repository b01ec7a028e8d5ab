import type { SessionCache } from '../cache/cache.ts';
import { channels } from '../channels/registry.ts';
import type { BotRegistry } from '../config/bots.ts';
import type { ErasureDeps } from '../erasure.ts';
import type { Logger } from '../logger.ts';
import { msAgo } from '../store/clock.ts';
import type { Db, Queryable } from '../store/db.ts';
import { ERASED_CONTACT_KEEP_MS, pruneErasedContacts } from '../store/erased-contacts.ts';
import { json } from '../store/records.ts';
import { pruneDoneEventsOf } from '../webhooks/store.ts';
import { expireIdentifiedUsers, rememberLastSeen } from './identified-retention.ts';
import {
  deleteOrphanOutbound,
  deleteOutboundOfExpired,
  deleteSettledOutbound,
} from './outbound-retention.ts';

/** Any fixed number: the one process that holds it runs the expiry job; the others skip that round. */
export const EXPIRY_LOCK_KEY = 7_340_219;
/** Rows removed per statement, so that a large backlog never holds long locks. */
export const EXPIRY_BATCH_ROWS = 500;
/**
 * Agents' events are read only to resume a console's stream (`Last-Event-ID`, the browser's
 * reconnect): a day covers a console that was away overnight (AGENT_EVENTS_KEEP_HOURS).
 */
export const AGENT_EVENTS_KEEP_MS = 24 * 3_600_000;
/** DEAD_LETTER_KEEP_DAYS's default: how long the queues' dead letters are kept. */
export const DEAD_LETTER_KEEP_MS = 14 * 86_400_000;
/**
 * How long an envelope may wait in its lane before it is set aside as a dead letter, at most (ten
 * tries with backoff take minutes; a dependency that is away stops the expiry job too): with the
 * dead letters' bound, after this long an operator's message never recorded can be sent no more.
 */
export const LANE_WAIT_MS = 86_400_000;

export interface ExpiryDeps {
  db: Db;
  bots: BotRegistry;
  cache: SessionCache;
  logger: Logger;
  /** Agents' events older than this are removed (default AGENT_EVENTS_KEEP_MS). */
  agentEventsKeepMs?: number;
  /**
   * DEAD_LETTER_KEEP_DAYS (default DEAD_LETTER_KEEP_MS): an operator's message queued this long
   * (plus LANE_WAIT_MS) and never recorded can no longer be sent, its envelope being in no lane or
   * dead letter any more; retention then treats it as settled.
   */
  deadLetterKeepMs?: number;
  /**
   * IDENTIFIED_USER_RETENTION_DAYS: identified users away this long, with no open session, are
   * erased (src/lifecycle/identified-retention.ts), with what erasure needs besides the database,
   * cache and logger. Absent (the default): they are kept.
   */
  identifiedUsers?: {
    retentionMs: number;
    erasure: Omit<ErasureDeps, 'db' | 'cache' | 'logger'>;
  };
}

export interface ExpiryReport {
  /** False when another process held the job's lock: it is running there. */
  ran: boolean;
  sessions: number;
  messages: number;
  /** Users made for an anonymous session's memory, gone with their last session. */
  users: number;
  /** Operators' and broadcasts' messages (`outbound_messages`) removed. */
  outbound: number;
  /** Event webhook events past `keepMessagesDays` removed. */
  webhookEvents: number;
  /** Ended sessions whose variables and summary were cleared under `keepMessagesDays`. */
  clearedStates: number;
  /** Identified users erased under IDENTIFIED_USER_RETENTION_DAYS. */
  identifiedUsers: number;
}

const NOT_RUN: ExpiryReport = {
  ran: false,
  sessions: 0,
  messages: 0,
  users: 0,
  outbound: 0,
  webhookEvents: 0,
  clearedStates: 0,
  identifiedUsers: 0,
};

interface ExpiredRow {
  id: string;
  bot: string;
  channel: string;
  native_key: string;
  user_id: string | null;
  last_activity_at: Date | string;
  created_at: Date | string;
  ended_at: Date | string | null;
  message_count: number;
}

/** Groups of bots that share a retention, so each group is one query. */
function groupBy<T>(items: readonly string[], key: (item: string) => T): Map<T, string[]> {
  const groups = new Map<T, string[]>();
  for (const item of items) {
    const k = key(item);
    groups.set(k, [...(groups.get(k) ?? []), item]);
  }
  return groups;
}

/**
 * Removes anonymous sessions whose last activity is older than their bot's anonymous retention,
 * with their messages, state and events (cascade), the operators' messages they recorded and
 * what their channels keep of them (`storage.expire`); authenticated sessions are never removed
 * here. Then, under each bot's `keepMessagesDays`, deletes older messages with the operators'
 * messages and webhook events that copy them, and clears the variables and summary of sessions
 * that ended before it. Every removal is recorded as a `session.expired` event that outlives the
 * session (session_id NULL), and the removed sessions leave the cache. With `identifiedUsers`,
 * last, identified users away longer than it are erased (src/lifecycle/identified-retention.ts).
 * Safe to run in many workers at once: one holds the lock and works, the others return `ran: false`.
 */
export async function runExpiry(deps: ExpiryDeps): Promise<ExpiryReport> {
  const release = await deps.db.holdLock(EXPIRY_LOCK_KEY);
  if (!release) return NOT_RUN;
  try {
    const started = Date.now();
    const lostAfterMs = (deps.deadLetterKeepMs ?? DEAD_LETTER_KEEP_MS) + LANE_WAIT_MS;
    // Every bound is computed in its statement on the database's clock (see store/clock.ts).
    const expired = await expireAnonymousSessions(deps, lostAfterMs);
    const sessions = expired.sessions;
    // Before the history rows of that age go: they tell a sent message from one still in its lane.
    const outbound = expired.outbound + (await deleteOldOutbound(deps, lostAfterMs));
    const messages = await deleteOldMessages(deps);
    const webhookEvents = await deleteOldWebhookEvents(deps);
    const clearedStates = await clearOldEndedStates(deps);
    const users = await deleteOrphanUsers(deps.db);
    const files = await deleteOldFiles(deps);
    const channelValues = await pruneChannelValues(deps.db);
    const agentEvents = await deleteOldAgentEvents(deps.db, deps.agentEventsKeepMs ?? AGENT_EVENTS_KEEP_MS);
    const erasedContacts = await pruneErasedContacts(deps.db, ERASED_CONTACT_KEEP_MS);
    // Last: the longest step (an erasure per user), and what it removes is not needed above.
    const identifiedUsers = deps.identifiedUsers
      ? await expireIdentifiedUsers({
          ...deps.identifiedUsers.erasure,
          db: deps.db,
          cache: deps.cache,
          logger: deps.logger,
          retentionMs: deps.identifiedUsers.retentionMs,
        })
      : 0;
    deps.logger.info({
      event: 'expiry.done',
      sessions,
      messages,
      users,
      outbound,
      webhookEvents,
      clearedStates,
      files,
      channelValues,
      agentEvents,
      erasedContacts,
      identifiedUsers,
      ms: Date.now() - started,
    });
    return { ran: true, sessions, messages, users, outbound, webhookEvents, clearedStates, identifiedUsers };
  } finally {
    await release();
  }
}

/** The bots grouped by their anonymous retention; bots no longer configured keep the hub's default. */
function retentionGroups(bots: BotRegistry): { ms: number; group: string[]; others: boolean }[] {
  const names = bots.names();
  // Retention is per bot, not per channel.
  const retention = (bot: string) => bots.rules(bot).anonymousRetentionMs;
  const groups = [...groupBy(names, retention)].map(([ms, group]) => ({ ms, group, others: false }));
  groups.push({ ms: bots.defaultRules().anonymousRetentionMs, group: names, others: true });
  return groups;
}

async function expireAnonymousSessions(
  deps: ExpiryDeps,
  lostAfterMs: number,
): Promise<{ sessions: number; outbound: number }> {
  const { db, bots } = deps;
  let sessions = 0;
  let outbound = 0;
  for (const { ms, group, others } of retentionGroups(bots)) {
    for (;;) {
      const removed = await db.transaction(async (tx) => {
        const { rows } = await tx.query<ExpiredRow>(
          `SELECT id, bot, channel, native_key, user_id, last_activity_at, created_at, ended_at, message_count
           FROM sessions
           WHERE auth_level = 'anonymous' AND last_activity_at < ${msAgo('$1')}
             AND (CASE WHEN $3::boolean THEN NOT (bot = ANY($2::text[])) ELSE bot = ANY($2::text[]) END)
           LIMIT $4 FOR UPDATE SKIP LOCKED`,
          [ms, group, others, EXPIRY_BATCH_ROWS],
        );
        if (rows.length === 0) return { rows, outbound: 0 };
        const ids = rows.map((r) => r.id);
        // What the sessions hold outside their cascade goes first: it is found through their rows.
        const sent = await deleteOutboundOfExpired(tx, ids, lostAfterMs);
        const envelopeIds = await envelopesOf(tx, ids);
        await expireChannelRows(tx, rows, envelopeIds);
        // The inbox's copies of those envelopes, kept a day to deduplicate (an operator's message
        // recorded in an old session does not renew it, so its copy may be that fresh).
        await tx.query('DELETE FROM inbox WHERE envelope_id = ANY($1::text[]) AND processed_at IS NOT NULL', [
          envelopeIds,
        ]);
        // Their activity outlives them: identified-user retention counts from it.
        await rememberLastSeen(
          tx,
          rows.map((r) => ({
            userId: r.user_id,
            channel: r.channel,
            nativeKey: r.native_key,
            lastActivityAt: r.last_activity_at,
          })),
        );
        await tx.query('DELETE FROM sessions WHERE id = ANY($1::uuid[])', [ids]);
        await recordExpired(tx, rows);
        return { rows, outbound: sent };
      });
      sessions += removed.rows.length;
      outbound += removed.outbound;
      await forget(deps, removed.rows);
      if (removed.rows.length < EXPIRY_BATCH_ROWS) break;
    }
    // Messages that no session holds (never recorded in one, or their session is gone) go after
    // the same retention.
    for (;;) {
      const n = await deleteOrphanOutbound(db, { names: group, others }, ms, lostAfterMs, EXPIRY_BATCH_ROWS);
      outbound += n;
      if (n < EXPIRY_BATCH_ROWS) break;
    }
  }
  return { sessions, outbound };
}

/** The envelopes that became the sessions' messages (what the person sent, an operator's message). */
async function envelopesOf(tx: Queryable, sessionIds: string[]): Promise<string[]> {
  const { rows } = await tx.query<{ envelope_id: string }>(
    'SELECT envelope_id FROM messages WHERE session_id = ANY($1::uuid[]) AND envelope_id IS NOT NULL',
    [sessionIds],
  );
  return rows.map((r) => r.envelope_id);
}

/**
 * What channels keep in their own tables about expiring sessions (mail with addresses and
 * subjects, …): each channel's `storage.expire`, given the sessions and the envelopes that became
 * their messages, in the transaction that removes the sessions.
 */
async function expireChannelRows(tx: Queryable, rows: ExpiredRow[], envelopeIds: string[]): Promise<void> {
  const hooks = channels.all().flatMap((d) => (d.storage?.expire ? [d.storage.expire] : []));
  const sessionIds = rows.map((r) => r.id);
  const sessions = rows.map((r) => ({ id: r.id, bot: r.bot, channel: r.channel, nativeKey: r.native_key }));
  for (const expire of hooks) await expire(tx, { sessionIds, sessions, envelopeIds });
}

async function recordExpired(tx: Queryable, rows: ExpiredRow[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `INSERT INTO session_events (session_id, bot, channel, type, data)
     SELECT NULL, e.bot, e.channel, 'session.expired', e.data
     FROM jsonb_to_recordset($1::jsonb) AS e(bot text, channel text, data jsonb)`,
    [
      json(
        rows.map((r) => ({
          bot: r.bot,
          channel: r.channel,
          data: {
            sessionId: r.id,
            createdAt: new Date(r.created_at).toISOString(),
            endedAt: r.ended_at ? new Date(r.ended_at).toISOString() : null,
            messageCount: r.message_count,
          },
        })),
      ),
    ],
  );
}

/** The cache may hold a removed session and its key's mapping; neither may outlive the row. */
async function forget(deps: ExpiryDeps, rows: ExpiredRow[]): Promise<void> {
  for (const r of rows) {
    await deps.cache.delete(r.id).catch(() => undefined);
    await deps.cache.deleteSessionId(`${r.bot}|${r.channel}|${r.native_key}`).catch(() => undefined);
  }
}

async function deleteOldMessages(deps: ExpiryDeps): Promise<number> {
  const { db, bots } = deps;
  const keep = (bot: string) => bots.rules(bot).keepMessagesMs;
  let total = 0;
  for (const [ms, group] of groupBy(bots.names(), keep)) {
    if (ms === null) continue;
    for (;;) {
      // Replies not yet delivered stay until they are: retention never drops a message unsent.
      const { rowCount } = await db.query(
        `DELETE FROM messages WHERE ctid IN (
           SELECT m.ctid FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE s.bot = ANY($1::text[]) AND m.created_at < ${msAgo('$2')} AND m.delivery_status <> 'queued'
           LIMIT $3)`,
        [group, ms, EXPIRY_BATCH_ROWS],
      );
      total += rowCount;
      if (rowCount < EXPIRY_BATCH_ROWS) break;
    }
  }
  return total;
}

/** Operators' and broadcasts' messages older than their bot's `keepMessagesDays`, once settled. */
async function deleteOldOutbound(deps: ExpiryDeps, lostAfterMs: number): Promise<number> {
  const { db, bots } = deps;
  let total = 0;
  for (const [ms, group] of groupBy(bots.names(), (bot) => bots.rules(bot).keepMessagesMs)) {
    if (ms === null) continue;
    for (;;) {
      const n = await deleteSettledOutbound(db, group, ms, lostAfterMs, EXPIRY_BATCH_ROWS);
      total += n;
      if (n < EXPIRY_BATCH_ROWS) break;
    }
  }
  return total;
}

/**
 * Event webhook events (`message.received` and `message.sent` carry the text) older than their
 * bot's `keepMessagesDays`, delivered or dead-lettered; a pending one is delivered or
 * dead-lettered first.
 */
async function deleteOldWebhookEvents(deps: ExpiryDeps): Promise<number> {
  const { db, bots } = deps;
  let total = 0;
  for (const [ms, group] of groupBy(bots.names(), (bot) => bots.rules(bot).keepMessagesMs)) {
    if (ms === null) continue;
    for (;;) {
      const n = await pruneDoneEventsOf(db, group, ms, EXPIRY_BATCH_ROWS);
      total += n;
      if (n < EXPIRY_BATCH_ROWS) break;
    }
  }
  return total;
}

/**
 * What a session keeps copied out of its messages (variables a script set from them, the LLM's
 * summary, a script's locals and context) goes with the messages under `keepMessagesDays` once
 * the session has ended and was last active before that bound: an ended session's state is never
 * read to run a turn again. An open session keeps its state (the dialog runs on it). The version
 * moves, as with any write, so no copy of the old state can be written back.
 */
async function clearOldEndedStates(deps: ExpiryDeps): Promise<number> {
  const { db, bots } = deps;
  let total = 0;
  for (const [ms, group] of groupBy(bots.names(), (bot) => bots.rules(bot).keepMessagesMs)) {
    if (ms === null) continue;
    for (;;) {
      const { rows } = await db.query<{ session_id: string }>(
        `UPDATE session_state st
            SET variables = '{}', context = '{}', suggestions = '[]', dialog = NULL, summary = NULL,
                version = st.version + 1, updated_at = now()
          WHERE st.session_id IN (
            SELECT st2.session_id FROM session_state st2 JOIN sessions s ON s.id = st2.session_id
            WHERE s.bot = ANY($1::text[]) AND s.ended_at IS NOT NULL AND s.last_activity_at < ${msAgo('$2')}
              AND (st2.variables <> '{}' OR st2.context <> '{}' OR st2.suggestions <> '[]'
                   OR st2.dialog IS NOT NULL OR st2.summary IS NOT NULL)
            LIMIT $3)
          RETURNING st.session_id`,
        [group, ms, EXPIRY_BATCH_ROWS],
      );
      for (const r of rows) await deps.cache.delete(r.session_id).catch(() => undefined);
      total += rows.length;
      if (rows.length < EXPIRY_BATCH_ROWS) break;
    }
  }
  return total;
}

/**
 * A user that nobody can reach any more: no session, no channel identity, never signed in (an
 * anonymous session's memory owner). Removed with its memory once its last session expired.
 */
async function deleteOrphanUsers(db: Db): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await db.query(
      `DELETE FROM users WHERE id IN (
         SELECT u.id FROM users u
         WHERE u.external_id IS NULL
           AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id)
           AND NOT EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id)
         LIMIT $1)`,
      [EXPIRY_BATCH_ROWS],
    );
    total += rowCount;
    if (rowCount < EXPIRY_BATCH_ROWS) return total;
  }
}

/** Uploads and downloads that no recorded message claimed are dropped after this long. */
export const UNCLAIMED_FILE_MS = 86_400_000;

/**
 * Files go with their session (cascade; the bytes with their last reference, by trigger). Here:
 * files older than their bot's `keepMessagesDays` (they went with their messages), uploads no
 * message claimed within a day, and the chunks of uploads that died half-way.
 */
async function deleteOldFiles(deps: ExpiryDeps): Promise<number> {
  const { db, bots } = deps;
  let total = 0;
  for (const [ms, group] of groupBy(bots.names(), (bot) => bots.rules(bot).keepMessagesMs)) {
    if (ms === null) continue;
    const { rowCount } = await db.query(
      `DELETE FROM files WHERE bot = ANY($1::text[]) AND created_at < ${msAgo('$2')}`,
      [group, ms],
    );
    total += rowCount;
  }
  const { rowCount } = await db.query(
    `DELETE FROM files WHERE session_id IS NULL AND created_at < ${msAgo('$1')}`,
    [UNCLAIMED_FILE_MS],
  );
  await db.query(
    `DELETE FROM file_chunks c WHERE c.created_at < ${msAgo('$1')}
       AND NOT EXISTS (SELECT 1 FROM file_blobs b WHERE b.blob_id = c.blob_id)`,
    [UNCLAIMED_FILE_MS],
  );
  return total + rowCount;
}

/**
 * What channels keep in their keyed store (`channel_values`: WhatsApp's numbered choices,
 * Telegram's long button values, …) past its age bound, or for a session that has ended. A
 * removed session's values went with it (cascade).
 */
async function pruneChannelValues(db: Db): Promise<number> {
  let total = 0;
  for (const sql of [
    `DELETE FROM channel_values WHERE ctid IN (
       SELECT ctid FROM channel_values WHERE expires_at <= now() LIMIT $1)`,
    `DELETE FROM channel_values WHERE ctid IN (
       SELECT v.ctid FROM channel_values v JOIN sessions s ON s.id = v.session_id
       WHERE s.ended_at IS NOT NULL AND s.ended_at <= now() LIMIT $1)`,
  ])
    for (;;) {
      const { rowCount } = await db.query(sql, [EXPIRY_BATCH_ROWS]);
      total += rowCount;
      if (rowCount < EXPIRY_BATCH_ROWS) break;
    }
  return total;
}

/**
 * Agents' event stream (`agent_events`) grows with every handoff while its session lives; it is
 * read only to replay what a reconnecting console missed, so events older than `keepMs` go.
 */
async function deleteOldAgentEvents(db: Db, keepMs: number): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await db.query(
      `DELETE FROM agent_events WHERE id IN (
         SELECT id FROM agent_events WHERE created_at < ${msAgo('$1')} LIMIT $2)`,
      [keepMs, EXPIRY_BATCH_ROWS],
    );
    total += rowCount;
    if (rowCount < EXPIRY_BATCH_ROWS) return total;
  }
}
