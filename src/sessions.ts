import { hashToken, newToken, TOKEN_PATTERN, tokenMatches } from './auth/token.ts';
import type { BotRegistry } from './config/bots.ts';
import { type Channel, identityOfNativeKey } from './envelope.ts';
import { IDLE_END_REASON } from './lifecycle/rules.ts';
import type { AcceptResult, Ingress } from './ports.ts';
import type { Db } from './store/db.ts';
import { recordEvent } from './store/events.ts';
import type { SessionRecord } from './store/records.ts';
import { createSession, findSessionByTokenHash, revokeToken } from './store/sessions.ts';

/**
 * The session a bearer token opens, or undefined. Unknown, malformed, expired and ended are all
 * the same undefined, so a caller learns nothing about tokens it does not hold. The stored hash
 * is compared in constant time. One ended session still opens: one the idle sweep ended (its
 * `endedAt` is set); the token holder's next message renews it (`sessionForMessage`).
 */
export async function sessionForToken(db: Db, token: string): Promise<SessionRecord | undefined> {
  if (!TOKEN_PATTERN.test(token)) return undefined;
  const session = await findSessionByTokenHash(db, hashToken(token));
  if (!session || !tokenMatches(token, session.tokenHash)) return undefined;
  // A session the idle sweep ended keeps its token: the next message starts its successor.
  if (session.endedAt && session.endReason !== IDLE_END_REASON) return undefined;
  if (session.expiresAt && Date.parse(session.expiresAt) <= Date.now()) return undefined;
  const { tokenHash: _hash, endReason: _reason, ...record } = session;
  return record;
}

export interface OpenedSession {
  session: SessionRecord;
  /** Shown to the client once; only its hash is stored. */
  token: string;
}

/**
 * Opens a session that a client holds by token (the REST API, the web widget): creates it,
 * and queues its `start` envelope so the bot's greeting comes first in its history.
 */
export async function openTokenSession(
  deps: { db: Db; ingress: Ingress; bots: BotRegistry },
  /** `channel`: one whose sessions are explicit (the REST API, the web widget). */
  input: { bot: string; channel: Channel; meta?: Record<string, unknown> },
): Promise<OpenedSession> {
  const token = newToken();
  const { snapshot } = await createSession(deps.db, {
    bot: input.bot,
    channel: input.channel,
    tokenHash: hashToken(token),
    expiresAt: new Date(Date.now() + deps.bots.rules(input.bot, input.channel).anonymousRetentionMs),
    meta: input.meta ?? {},
  });
  const { session } = snapshot;
  await recordEvent(deps.db, {
    sessionId: session.id,
    bot: input.bot,
    channel: input.channel,
    type: 'session.start',
  });
  await queueSessionStart(deps.ingress, session);
  return { session, token };
}

/** Queues a token session's `start` turn: the bot's greeting, first in its history. */
export async function queueSessionStart(ingress: Ingress, session: SessionRecord): Promise<void> {
  await ingress.accept({
    id: `${session.channel}:${session.id}:start`,
    kind: 'start',
    channel: session.channel,
    bot: session.bot,
    from: { id: session.nativeKey },
    text: '',
    meta: {},
    receivedAt: new Date().toISOString(),
  });
}

/**
 * Queues the end of a session after whatever it already has queued, so the bot's end handler
 * runs in the engine and connected clients are told; its token (if any) dies at once. Works for
 * every channel: the envelope carries the identity and thread the session's key was made of, so
 * it lands in the session's own lane.
 */
export async function endSessionThroughQueue(
  deps: { db: Db; ingress: Ingress },
  session: Pick<SessionRecord, 'id' | 'bot' | 'channel' | 'nativeKey'>,
  reason: string,
): Promise<AcceptResult> {
  await revokeToken(deps.db, session.id);
  return deps.ingress.accept({
    id: `${session.channel}:${session.id}:end`,
    kind: 'end',
    channel: session.channel,
    bot: session.bot,
    ...identityOfNativeKey(session.nativeKey),
    text: '',
    meta: {},
    end: { reason },
    receivedAt: new Date().toISOString(),
  });
}

/** A token session's end (`DELETE /api/session`): its key is its id. */
export const endTokenSession = endSessionThroughQueue;
