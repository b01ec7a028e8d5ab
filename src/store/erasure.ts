import { channels, hasExplicitSessions } from '../channels/registry.ts';
import { type Channel, identityOfNativeKey, sessionLane } from '../envelope.ts';
import { forgetAuditedSessions } from './audit.ts';
import type { Db, Queryable } from './db.ts';
import { type Contact, recordErasedContacts } from './erased-contacts.ts';
import { recordEvent } from './events.ts';

/** A session that an erasure removed: what the caches and queues key it by. */
export interface ErasedSession {
  id: string;
  bot: string;
  channel: string;
  nativeKey: string;
}

/** The session's queue lane and cache key: `bot|channel|native_key`. */
export const laneOf = (s: ErasedSession): string =>
  sessionLane({ bot: s.bot, channel: s.channel as Channel, ...identityOfNativeKey(s.nativeKey) });

/**
 * An erased session that had been handed to agents (its latest handoff): agents' consoles may show
 * it, and are told it is gone. `agentId`: the agent holding it when it was erased, if any.
 */
export interface ErasedConversation {
  sessionId: string;
  bot: string;
  agentId: string | null;
  queue: string | null;
}

/** What an erasure of sessions removed, whoever they were erased for. */
export interface SessionsErasure {
  sessions: ErasedSession[];
  messages: number;
  /** Channel identities removed (a user's erasure), and USER MEMORY entries. */
  identities: number;
  memory: number;
  conversations: ErasedConversation[];
  /** What scheduled jobs may name of theirs (a job's id or payload): the erasure removes those jobs. */
  scheduled: {
    handoffIds: string[];
    outboundMessageIds: string[];
    /** Webhook lanes (endpoint, session id) whose retry a job may be waiting for. */
    webhookLanes: { endpoint: string; key: string }[];
  };
}

/** Erasure events are about a person, not one bot or channel: they carry these in place of both. */
export const ANY = '*';

/**
 * The event webhook that tells receivers a session is gone (src/webhooks/events.ts). Ordered by a
 * key of its own, not the session's id: the session's outbox rows go with it, this one stays.
 */
export const SESSION_ERASED_EVENT = 'session.erased';
export const erasureOrderingKey = (sessionId: string): string => `erasure:${sessionId}`;

/**
 * Sessions whose ids `seed` selects (a condition on `s`), with their sub-sessions at any depth
 * (which would otherwise go with their parent by cascade, unseen by what is cleared after the
 * commit), locked, oldest first.
 */
async function sessionsWithChildren(
  tx: Queryable,
  seed: string,
  params: readonly unknown[],
): Promise<ErasedSession[]> {
  const { rows } = await tx.query<{ id: string; bot: string; channel: string; native_key: string }>(
    `WITH RECURSIVE erased (id) AS (
       SELECT s.id FROM sessions s WHERE ${seed}
       UNION SELECT c.id FROM sessions c JOIN erased e ON c.parent_id = e.id)
     SELECT s.id, s.bot, s.channel, s.native_key FROM sessions s
     WHERE s.id IN (SELECT id FROM erased)
     ORDER BY s.created_at, s.id
     FOR UPDATE OF s`,
    params,
  );
  return rows.map((r) => ({ id: r.id, bot: r.bot, channel: r.channel, nativeKey: r.native_key }));
}

/**
 * A user's channel identities, and on channels that keep unverified messages apart (email's
 * `unverified:<address>`) the native id such messages claiming to be from them have: those
 * sessions are never linked to anyone and may be theirs, so they go with them.
 */
async function contactsOfUser(tx: Queryable, userId: string): Promise<Contact[]> {
  const { rows } = await tx.query<{ channel: string; native_id: string }>(
    'SELECT channel, native_id FROM user_identities WHERE user_id = $1',
    [userId],
  );
  return rows.flatMap(({ channel, native_id: nativeId }) => {
    const unverified = channels.get(channel)?.nativeId.unverified;
    return [{ channel, nativeId }, ...(unverified ? [{ channel, nativeId: unverified(nativeId) }] : [])];
  });
}

/** `unnest` parameters for contacts: their channels, then their native ids. */
const contactParams = (contacts: readonly Contact[]) => [
  contacts.map((c) => c.channel),
  contacts.map((c) => c.nativeId),
];

/**
 * Every session of a user: those that name the user, and every session of each of their contacts
 * (`contactsOfUser`: the key is the contact, or the contact and a thread), whichever bot.
 */
function sessionsOfUser(
  tx: Queryable,
  userId: string,
  contacts: readonly Contact[],
): Promise<ErasedSession[]> {
  return sessionsWithChildren(
    tx,
    `s.user_id = $1
     OR EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS i (channel, native_id)
                WHERE i.channel = s.channel
                  AND (s.native_key = i.native_id OR starts_with(s.native_key, i.native_id || '#')))`,
    [userId, ...contactParams(contacts)],
  );
}

/**
 * What the channels keep in their own tables about these sessions (mail with addresses, subjects
 * and attachment bytes, …): each channel's `storage.erase`, given the sessions and the envelopes
 * they received: those that became messages, and those still waiting in the inbox of their lanes
 * (a mail the channel recorded, not yet processed, names its envelope and nothing else of ours).
 */
async function eraseChannelRows(tx: Queryable, sessions: ErasedSession[]): Promise<void> {
  const hooks = channels.all().flatMap((d) => (d.storage?.erase ? [d.storage.erase] : []));
  if (hooks.length === 0) return;
  const sessionIds = sessions.map((s) => s.id);
  const { rows } = await tx.query<{ envelope_id: string }>(
    `SELECT envelope_id FROM messages WHERE session_id = ANY($1::uuid[]) AND envelope_id IS NOT NULL
     UNION SELECT envelope_id FROM inbox WHERE lane = ANY($2::text[])`,
    [sessionIds, sessions.map(laneOf)],
  );
  const envelopeIds = rows.map((r) => r.envelope_id);
  for (const erase of hooks) await erase(tx, { sessionIds, sessions, envelopeIds });
}

/**
 * Who a session on a channel whose first message opens a session was with (the identity part of
 * its key); none for a web or API session, which no envelope opens.
 */
function contactOf(s: ErasedSession): Contact[] {
  if (hasExplicitSessions(s.channel)) return [];
  return [{ channel: s.channel, nativeId: identityOfNativeKey(s.nativeKey).from.id }];
}

/** Each session's latest handoff, if it had one (what an agent's console may be showing). */
async function conversationsOf(tx: Queryable, ids: string[]): Promise<ErasedConversation[]> {
  const { rows } = await tx.query<{
    session_id: string;
    bot: string;
    agent_id: string | null;
    queue: string | null;
  }>(
    `SELECT DISTINCT ON (session_id) session_id, bot,
       CASE WHEN state = 'assigned' THEN agent_id END AS agent_id, queue
     FROM handoffs WHERE session_id = ANY($1::uuid[])
     ORDER BY session_id, (state <> 'ended') DESC, requested_at DESC`,
    [ids],
  );
  return rows.map((r) => ({ sessionId: r.session_id, bot: r.bot, agentId: r.agent_id, queue: r.queue }));
}

/**
 * The part every erasure shares, in its transaction: the sessions (messages, state, events,
 * handoffs, files and webhook outbox rows go with them by cascade), the inbox rows queued for
 * their lanes, what channels keep of them, the outbound messages to them (by session, and to
 * `outboundTo`'s contacts), a `session.erased` event webhook per session for each endpoint that
 * takes it. Users and identities are the caller's.
 */
async function eraseSessionsIn(
  tx: Queryable,
  sessions: ErasedSession[],
  outboundTo: readonly Contact[],
): Promise<Omit<SessionsErasure, 'identities' | 'memory'>> {
  const ids = sessions.map((s) => s.id);
  const counted = await tx.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM messages WHERE session_id = ANY($1::uuid[])',
    [ids],
  );
  await eraseChannelRows(tx, sessions);
  const handoffs = await tx.query<{ id: string }>(
    'SELECT id FROM handoffs WHERE session_id = ANY($1::uuid[])',
    [ids],
  );
  const conversations = await conversationsOf(tx, ids);
  const webhookLanes = await tx.query<{ endpoint: string; key: string }>(
    `SELECT DISTINCT endpoint, lane AS key FROM webhook_outbox WHERE session_id = ANY($1::uuid[])`,
    [ids],
  );
  // Messages the business sent or scheduled them, broadcasts' included (their text and address);
  // a scheduled one's job goes too. An opt-out stays: it says not to write.
  const outbound = await tx.query<{ id: string }>(
    `DELETE FROM outbound_messages o WHERE o.session_id = ANY($1::uuid[])
       OR EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS i (channel, native_id)
                  WHERE i.channel = o.channel
                    AND (o.native_key = i.native_id OR starts_with(o.native_key, i.native_id || '#')))
     RETURNING o.id`,
    [ids, ...contactParams(outboundTo)],
  );
  await tx.query('DELETE FROM inbox WHERE lane = ANY($1::text[])', [sessions.map(laneOf)]);
  // Receivers of the sessions' events are told to delete what they hold of them. Keyed, not the
  // session's: the session's own outbox rows (their text among them) go with it just below.
  await tx.query(
    `SELECT webhook_emit_keyed(s.bot, s.key, $5, jsonb_build_object('session_id', s.id, 'channel', s.channel))
     FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS s (id, bot, channel, key)`,
    [
      ids,
      sessions.map((s) => s.bot),
      sessions.map((s) => s.channel),
      ids.map(erasureOrderingKey),
      SESSION_ERASED_EVENT,
    ],
  );
  await tx.query('DELETE FROM sessions WHERE id = ANY($1::uuid[])', [ids]);
  await forgetAuditedSessions(tx, ids);
  return {
    sessions,
    messages: counted.rows[0]?.n ?? 0,
    conversations,
    scheduled: {
      handoffIds: handoffs.rows.map((r) => r.id),
      outboundMessageIds: outbound.rows.map((r) => r.id),
      webhookLanes: webhookLanes.rows,
    },
  };
}

/**
 * What another owner of an erasure (identified-user retention) adds to its transaction: whether
 * to go on, asked under the user's lock (undefined is returned otherwise, nothing erased), and
 * what to record with it.
 */
export interface ErasureHooks {
  proceed?(tx: Queryable): Promise<boolean>;
  record?(tx: Queryable): Promise<void>;
}

/**
 * Erases a user from PostgreSQL in one transaction: their sessions (those naming them, and those
 * of their channel identities, unverified mail from their addresses included) with everything
 * `eraseSessionsIn` removes, the outbound messages to their identities, memory, identities and
 * the user row; remembers their channel contacts as erased (src/store/erased-contacts.ts: what was
 * queued for them before now is dropped); records a `user.erased` event that names no one.
 * Undefined when there is no such user.
 */
export async function eraseUserRows(
  db: Db,
  userId: string,
  hooks: ErasureHooks = {},
): Promise<SessionsErasure | undefined> {
  return db.transaction(async (tx) => {
    const user = await tx.query('SELECT id FROM users WHERE id = $1 FOR UPDATE', [userId]);
    if (user.rows.length === 0) return undefined;
    if (hooks.proceed && !(await hooks.proceed(tx))) return undefined;
    const contacts = await contactsOfUser(tx, userId);
    const sessions = await sessionsOfUser(tx, userId, contacts);
    const erased = await eraseSessionsIn(tx, sessions, contacts);
    const memory = await tx.query('DELETE FROM user_memory WHERE user_id = $1', [userId]);
    const identities = await tx.query('DELETE FROM user_identities WHERE user_id = $1', [userId]);
    await tx.query('DELETE FROM users WHERE id = $1', [userId]);
    await recordEvent(tx, {
      sessionId: null,
      bot: ANY,
      channel: ANY,
      type: 'user.erased',
      data: { userId, sessions: sessions.length },
    });
    // Last, so that its time is the erasure's end: what is still queued for them from before it
    // is dropped, not made a new contact.
    await recordErasedContacts(tx, [...contacts, ...sessions.flatMap(contactOf)]);
    await hooks.record?.(tx);
    return { ...erased, identities: identities.rowCount, memory: memory.rowCount };
  });
}

/**
 * Erases one session from PostgreSQL in one transaction, whoever it was with (an anonymous web or
 * API visitor has no user to erase): it and its sub-sessions, with everything `eraseSessionsIn`
 * removes. Its user stays when anything else can reach them (another session, a channel identity,
 * a sign-in); one that nothing can reach any more (an anonymous visitor's memory owner) goes with
 * its memory. Remembers the sessions' channel contacts as erased, as a user's erasure does, and
 * records a `session.erased` event that names no one. Undefined when there is no such session.
 */
export async function eraseSessionRows(db: Db, sessionId: string): Promise<SessionsErasure | undefined> {
  return db.transaction(async (tx) => {
    const sessions = await sessionsWithChildren(tx, 's.id = $1', [sessionId]);
    if (sessions.length === 0) return undefined;
    const ids = sessions.map((s) => s.id);
    const owners = await tx.query<{ user_id: string }>(
      'SELECT DISTINCT user_id FROM sessions WHERE id = ANY($1::uuid[]) AND user_id IS NOT NULL',
      [ids],
    );
    const erased = await eraseSessionsIn(tx, sessions, []);
    const orphans = await tx.query<{ id: string }>(
      `SELECT u.id FROM users u
       WHERE u.id = ANY($1::uuid[]) AND u.external_id IS NULL
         AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id)
         AND NOT EXISTS (SELECT 1 FROM user_identities i WHERE i.user_id = u.id)
       FOR UPDATE OF u`,
      [owners.rows.map((r) => r.user_id)],
    );
    const orphanIds = orphans.rows.map((r) => r.id);
    const memory = await tx.query('DELETE FROM user_memory WHERE user_id = ANY($1::uuid[])', [orphanIds]);
    await tx.query('DELETE FROM users WHERE id = ANY($1::uuid[])', [orphanIds]);
    await recordEvent(tx, {
      sessionId: null,
      bot: ANY,
      channel: ANY,
      type: 'session.erased',
      data: { sessionId, sessions: sessions.length },
    });
    await recordErasedContacts(tx, sessions.flatMap(contactOf));
    return { ...erased, identities: 0, memory: memory.rowCount };
  });
}
