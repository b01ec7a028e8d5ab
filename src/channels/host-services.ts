import type { BotRegistry } from '../config/bots.ts';
import type { Channel } from '../envelope.ts';
import { sessionForMessage } from '../lifecycle/token-renewal.ts';
import type { Logger } from '../logger.ts';
import type { AcceptResult, Ingress } from '../ports.ts';
import { endTokenSession, type OpenedSession, openTokenSession, sessionForToken } from '../sessions.ts';
import type { Db } from '../store/db.ts';
import type { HistoryPage } from '../store/messages.ts';
import { isEnvelopeRecorded, markDeliveredThrough } from '../store/messages.ts';
import { personHistory, personRepliesTo } from '../store/person-history.ts';
import type { MessageRecord, SessionRecord, SessionSnapshot } from '../store/records.ts';
import { isTokenRevoked, loadSnapshot } from '../store/sessions.ts';
import type { ChannelQueryable } from './declaration.ts';

/**
 * Sessions a client holds by token (channels whose sessions are `explicit`), as the REST API and
 * the web widget share them: the adapter never touches the tables behind them.
 */
export interface TokenSessions {
  /** The session the token opens; undefined for unknown, expired and ended alike. */
  forToken(token: string): Promise<SessionRecord | undefined>;
  /** A new session and its token (shown once); its greeting is queued. */
  open(input: { bot: string; channel: Channel; meta?: Record<string, unknown> }): Promise<OpenedSession>;
  /**
   * The session the holder's next message goes to: a new one after an idle-out, same token; the
   * ended one when `text` is a rating that answers its rating ask (`sessions.askRating`).
   */
  forMessage(session: SessionRecord, token: string, text?: string): Promise<SessionRecord>;
  /** Ends the session through its lane (its end handler runs); its token dies at once. */
  end(
    session: Pick<SessionRecord, 'id' | 'bot' | 'channel' | 'nativeKey'>,
    reason: string,
  ): Promise<AcceptResult>;
  /** The session and what its bot keeps (variables, context, …), as the holder may read it. */
  snapshot(sessionId: string): Promise<SessionSnapshot | undefined>;
  /**
   * Whether the session's token was revoked (its end is under way or done), as against replaced
   * by a sign-in: a token that stopped opening its session in the middle of a hello tells which.
   */
  tokenRevoked(sessionId: string): Promise<boolean>;
}

/** The conversation as its person sees it (no tool rows, no agents' notes): `store/person-history.ts`. */
export interface HistoryReader {
  page(sessionId: string, page: HistoryPage): Promise<MessageRecord[]>;
  /** What a turn added for its person, in order; empty while it is not processed. */
  repliesTo(envelopeId: string): Promise<MessageRecord[]>;
  /** Whether the turn of this envelope is processed (its message is in the history). */
  isRecorded(envelopeId: string): Promise<boolean>;
}

export function createTokenSessions(deps: {
  db: Db;
  ingress: Ingress;
  bots: BotRegistry;
  logger: Logger;
}): TokenSessions {
  return {
    forToken: (token) => sessionForToken(deps.db, token),
    open: (input) => openTokenSession(deps, input),
    forMessage: (session, token, text) => sessionForMessage(deps, session, token, new Date(), text),
    end: (session, reason) => endTokenSession(deps, session, reason),
    snapshot: (sessionId) => loadSnapshot(deps.db, sessionId),
    tokenRevoked: (sessionId) => isTokenRevoked(deps.db, sessionId),
  };
}

export function createHistoryReader(db: Db): HistoryReader {
  return {
    page: (sessionId, page) => personHistory(db, sessionId, page),
    repliesTo: (envelopeId) => personRepliesTo(db, envelopeId),
    isRecorded: (envelopeId) => isEnvelopeRecorded(db, envelopeId),
  };
}

/** Replies a live client confirmed it showed, through `seq`: `sent` becomes `delivered`. */
export function createDeliveredThrough(db: Db) {
  return async (sessionId: string, seq: number): Promise<void> => {
    await markDeliveredThrough(db, sessionId, seq);
  };
}

/** What a stored value belongs to, and how long it may live. */
export interface StoredValueOptions {
  /**
   * The session it was stored for: it goes with the session (removed with it: expiry, erasure;
   * and once the session has ended, by the next expiry run), so an erasure reaches it.
   */
  sessionId?: string;
  /** Not read after this long, and then removed by the expiry job. */
  ttlMs?: number;
}

/**
 * An adapter's own storage: a small keyed store (JSON values under keys of its own, table
 * `channel_values`) and SQL on the tables its own migrations made (`ChannelStorage`). Never the
 * core's tables: those are reached through the other host services. A value about a person
 * names its session (`sessionId`), or has an age bound (`ttlMs`), or both: one with neither is
 * kept until the adapter deletes it.
 */
export interface AdapterStore extends ChannelQueryable {
  /** The value stored under `key`, or undefined (never stored, deleted, or past its `ttlMs`). */
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** Stores a JSON value under `key` (replacing what was there, with its session and age bound). */
  set(key: string, value: unknown, options?: StoredValueOptions): Promise<void>;
  delete(key: string): Promise<void>;
}

export function createAdapterStore(db: Db, channel: Channel): AdapterStore {
  return {
    query: (sql, params) => db.query(sql, params),
    async get<T>(key: string) {
      const { rows } = await db.query<{ value: T }>(
        `SELECT value FROM channel_values WHERE channel = $1 AND key = $2
           AND (expires_at IS NULL OR expires_at > now())`,
        [channel, key],
      );
      return rows[0]?.value;
    },
    async set(key, value, options = {}) {
      await db.query(
        `INSERT INTO channel_values (channel, key, value, session_id, expires_at)
         VALUES ($1, $2, $3::jsonb, $4, now() + $5::double precision * interval '1 millisecond')
         ON CONFLICT (channel, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(),
           session_id = EXCLUDED.session_id, expires_at = EXCLUDED.expires_at`,
        [channel, key, JSON.stringify(value), options.sessionId ?? null, options.ttlMs ?? null],
      );
    },
    async delete(key) {
      await db.query('DELETE FROM channel_values WHERE channel = $1 AND key = $2', [channel, key]);
    },
  };
}
