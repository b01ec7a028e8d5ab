import type { BotRegistry } from '../config/bots.ts';
import type { Logger } from '../logger.ts';
import type { Ingress } from '../ports.ts';
import { endSessionThroughQueue, queueSessionStart, sessionForToken } from '../sessions.ts';
import type { Db } from '../store/db.ts';
import { recordEvent } from '../store/events.ts';
import { openHandoffOf } from '../store/handoffs.ts';
import type { SessionRecord } from '../store/records.ts';
import { hasOpenRatingAsk, renewTokenSession } from '../store/sessions.ts';
import { parseRating } from './rating.ts';
import { IDLE_END_REASON, isIdle } from './rules.ts';

export interface RenewalDeps {
  db: Db;
  ingress: Ingress;
  bots: BotRegistry;
  logger: Logger;
}

/**
 * The session a token holder's new message belongs to. A token session idle for longer than its
 * bot allows is replaced: the old session ends through the queue (its `ON SESSION END` runs with
 * reason `idle`), and a new one for the same person — same user, same auth level, same token —
 * starts (`start.bas` again, empty context). The client keeps its token; the session id changes.
 */
export async function sessionForMessage(
  deps: RenewalDeps,
  session: SessionRecord,
  token: string,
  at = new Date(),
  text?: string,
): Promise<SessionRecord> {
  const rules = deps.bots.rules(session.bot, session.channel);
  // Ended by the idle sweep (its end handler has run): only the successor is left to make.
  const endedBySweep = session.endedAt !== null;
  // Unless the message rates the ended conversation, which the sweep's end asked for.
  if (
    endedBySweep &&
    text !== undefined &&
    parseRating(text) !== undefined &&
    (await hasOpenRatingAsk(deps.db, session.id, at))
  )
    return session;
  if (!endedBySweep && !isIdle(session.lastActivityAt, at, rules)) return session;
  // Quiet, but with agents (waiting or held): the message is the person's answer to the agent, in
  // this session (the idle sweep leaves such sessions alone too). Asked only of an idle session.
  if (!endedBySweep && (await openHandoffOf(deps.db, session.id))) return session;
  const renewed = await renewTokenSession(deps.db, session, {
    expiresAt: session.authLevel === 'anonymous' ? new Date(at.getTime() + rules.anonymousRetentionMs) : null,
    meta: { ...session.meta, previousSessionId: session.id, lastInteractionAt: session.lastActivityAt },
  });
  if (!renewed) {
    // Another request renewed it first: the token now opens that session.
    const current = await sessionForToken(deps.db, token);
    if (!current) throw new Error(`session ${session.id} was ended while its token was in use`);
    return current;
  }
  deps.logger.info({
    event: 'session.idle_out',
    sessionId: session.id,
    nextSessionId: renewed.id,
    bot: session.bot,
    channel: session.channel,
    idleMs: at.getTime() - Date.parse(session.lastActivityAt),
  });
  if (!endedBySweep) {
    await recordEvent(deps.db, {
      sessionId: session.id,
      bot: session.bot,
      channel: session.channel,
      type: 'session.idle',
      data: { lastActivityAt: session.lastActivityAt, nextSessionId: renewed.id },
    });
  }
  await recordEvent(deps.db, {
    sessionId: renewed.id,
    bot: renewed.bot,
    channel: renewed.channel,
    type: 'session.start',
    data: { previousSessionId: session.id },
  });
  if (!endedBySweep) await endSessionThroughQueue(deps, session, IDLE_END_REASON);
  await queueSessionStart(deps.ingress, renewed);
  return renewed;
}
