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

export interface UserErasure {
  sessions: ErasedSession[];
  messages: number;
  identities: number;
  memory: number;
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
 * Every session of a user: those that name the user, and every session of each of the user's
 * channel identities (their key is the identity, or the identity and a thread), whichever bot.
 */
async function sessionsOfUser(tx: Queryable, userId: string): Promise<ErasedSession[]> {
  const { rows } = await tx.query<{ id: string; bot: string; channel: string; native_key: string }>(
    `SELECT s.id, s.bot, s.channel, s.native_key FROM sessions s
     WHERE s.user_id = $1
        OR EXISTS (SELECT 1 FROM user_identities i
                   WHERE i.user_id = $1 AND i.channel = s.channel
                     AND (s.native_key = i.native_id OR starts_with(s.native_key, i.native_id || '#')))
     ORDER BY s.created_at
     FOR UPDATE OF s`,
    [userId],
  );
  return rows.map((r) => ({ id: r.id, bot: r.bot, channel: r.channel, nativeKey: r.native_key }));
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

/**
 * Erases a user from PostgreSQL in one transaction: their sessions (messages, state and events
 * go with them by cascade), the inbox rows queued for those sessions' lanes, what channels keep of them,
 * the outbound messages to them, memory,
 * identities and the user row; remembers their channel contacts as erased (src/store/erased-contacts.ts:
 * what was queued for them before now is dropped); records a `user.erased` event that names no
 * one. Undefined when there is no such user.
 */
export async function eraseUserRows(db: Db, userId: string): Promise<UserErasure | undefined> {
  return db.transaction(async (tx) => {
    const user = await tx.query('SELECT id FROM users WHERE id = $1 FOR UPDATE', [userId]);
    if (user.rows.length === 0) return undefined;
    const sessions = await sessionsOfUser(tx, userId);
    const ids = sessions.map((s) => s.id);
    const lanes = sessions.map(laneOf);
    const counted = await tx.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM messages WHERE session_id = ANY($1::uuid[])',
      [ids],
    );
    await eraseChannelRows(tx, sessions);
    const handoffs = await tx.query<{ id: string }>(
      'SELECT id FROM handoffs WHERE session_id = ANY($1::uuid[])',
      [ids],
    );
    const webhookLanes = await tx.query<{ endpoint: string; key: string }>(
      `SELECT DISTINCT endpoint, lane AS key FROM webhook_outbox WHERE session_id = ANY($1::uuid[])`,
      [ids],
    );
    // Messages the business sent or scheduled them, broadcasts' included (their text and address);
    // a scheduled one's job goes too. An opt-out stays: it says not to write.
    const outbound = await tx.query<{ id: string }>(
      `DELETE FROM outbound_messages o WHERE o.session_id = ANY($1::uuid[])
         OR EXISTS (SELECT 1 FROM user_identities i
                    WHERE i.user_id = $2 AND i.channel = o.channel
                      AND (o.native_key = i.native_id OR starts_with(o.native_key, i.native_id || '#')))
       RETURNING o.id`,
      [ids, userId],
    );
    await tx.query('DELETE FROM inbox WHERE lane = ANY($1::text[])', [lanes]);
    await tx.query('DELETE FROM sessions WHERE id = ANY($1::uuid[])', [ids]);
    await forgetAuditedSessions(tx, ids);
    const memory = await tx.query('DELETE FROM user_memory WHERE user_id = $1', [userId]);
    const identities = await tx.query<{ channel: string; native_id: string }>(
      'DELETE FROM user_identities WHERE user_id = $1 RETURNING channel, native_id',
      [userId],
    );
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
    await recordErasedContacts(tx, [
      ...identities.rows.map((i) => ({ channel: i.channel, nativeId: i.native_id })),
      ...sessions.flatMap(contactOf),
    ]);
    return {
      sessions,
      messages: counted.rows[0]?.n ?? 0,
      identities: identities.rowCount,
      memory: memory.rowCount,
      scheduled: {
        handoffIds: handoffs.rows.map((r) => r.id),
        outboundMessageIds: outbound.rows.map((r) => r.id),
        webhookLanes: webhookLanes.rows,
      },
    };
  });
}
