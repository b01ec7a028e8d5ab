import type { SessionCache } from './cache/cache.ts';
import { channels, hasExplicitSessions } from './channels/registry.ts';
import type { BotRegistry } from './config/bots.ts';
import { type Envelope, nativeSessionKey, sessionLane } from './envelope.ts';
import { parseRating } from './lifecycle/rating.ts';
import { isIdle } from './lifecycle/rules.ts';
import type { Logger } from './logger.ts';
import type { Db } from './store/db.ts';
import { erasedSinceAccepted } from './store/erased-contacts.ts';
import { recordEvent } from './store/events.ts';
import type { SessionSnapshot } from './store/records.ts';
import {
  type ContactSession,
  createContactSession,
  createSession,
  findOpenSnapshotByKey,
  findRatingAsk,
  lastInteraction,
  loadSnapshot,
} from './store/sessions.ts';
import { isUniqueViolation } from './store/turns.ts';
import { userForIdentity } from './store/users.ts';

/**
 * Whether the envelope's sender is a person we can recognise again (a user record at first
 * contact): the channel's declaration, unless the channel could not verify this one sender
 * (forged mail), who is then nobody we know.
 */
function identifies(envelope: Envelope): boolean {
  return (channels.get(envelope.channel)?.identified ?? false) && envelope.identityVerified !== false;
}
type SessionKey = Pick<ContactSession, 'bot' | 'channel' | 'nativeKey'>;

/**
 * A renewed session's start waits at most this long for its predecessor's end (normally a few
 * milliseconds: the end was queued first, in the predecessor's lane); then it goes ahead anyway.
 */
export const PREVIOUS_END_WAIT_MS = 10_000;
const PREVIOUS_END_POLL_MS = 20;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The envelope was accepted before its sender was erased (src/store/erased-contacts.ts): it opens
 * no session. Thrown where the resolver would make one; the engine drops the envelope.
 */
export class ContactErasedError extends Error {
  override name = 'ContactErasedError';
  constructor() {
    super('the sender was erased after this envelope was accepted');
  }
}

export interface SessionResolverOptions {
  db: Db;
  cache: SessionCache;
  bots: BotRegistry;
  logger: Logger;
  /**
   * Ends an idle session before a message opens its successor: the engine runs its `end` turn
   * (its `ON SESSION END`), as if the end had been queued just before the message.
   */
  endIdle(idle: SessionSnapshot, next: Envelope): Promise<void>;
}

/**
 * Which session an envelope belongs to: the open one for its key `(bot, channel, from.id[,
 * thread])`, from the cache when it knows it; created at first contact where the channel's
 * sessions are keyed (a user record for an identified person); after an idle-out, a new one.
 */
export class SessionResolver {
  constructor(private readonly o: SessionResolverOptions) {}

  /**
   * The open session this envelope belongs to, created on first contact where the channel allows
   * it. A message to a session that has been idle too long first ends that session (its
   * `ON SESSION END` runs) and then goes to a new one for the same person.
   */
  async resolve(
    envelope: Envelope,
    trustCached: boolean,
    /** The turn's logger (its lines carry the turn's trace ids). */
    logger: Logger = this.o.logger,
  ): Promise<SessionSnapshot | undefined> {
    // An end never makes a session just to end it.
    const open = await this.findOpen(envelope, trustCached, {
      logger,
      create: envelope.kind !== 'end',
      // A rating with no open session on its key may answer an ended session's rating ask.
      rating: envelope.kind === 'message' && parseRating(envelope.text) !== undefined,
    });
    if (!open || this.takes(open, envelope)) return open;
    await this.o.endIdle(open, envelope);
    return this.findOpen(envelope, false, { logger });
  }

  /**
   * Whether `resolve` gives `envelope` to `open`, the open session of its key (true), or ends it
   * as idle first (false). The engine asks it of the session its lane's held turns left, which
   * it already holds (see `SessionEngine.handle`'s `mayHold`).
   */
  takes(open: SessionSnapshot, envelope: Envelope): boolean {
    if (open.session.endedAt || hasExplicitSessions(envelope.channel)) return true;
    if (envelope.kind !== 'message') return true;
    // A conversation with agents (waiting or held) is not the bot's to idle out: the person
    // answers the agent, however long they took (see idle-sweep.ts).
    if (open.state.handoff) return true;
    const rules = this.o.bots.rules(envelope.bot, envelope.channel);
    return !isIdle(open.session.lastActivityAt, new Date(envelope.receivedAt), rules);
  }

  /** The open session for the envelope's key, from the cache when it knows it. */
  async findOpen(
    envelope: Envelope,
    trustCached = false,
    {
      create = true,
      rating = false,
      logger = this.o.logger,
    }: { create?: boolean; rating?: boolean; logger?: Logger } = {},
  ): Promise<SessionSnapshot | undefined> {
    const { db, cache } = this.o;
    const lane = sessionLane(envelope);
    const cachedId = await cache.getSessionId(lane).catch(() => undefined);
    if (cachedId) {
      const snapshot =
        (await cache.get(cachedId, { trustLocal: trustCached }).catch(() => undefined)) ??
        (await loadSnapshot(db, cachedId));
      if (snapshot && !snapshot.session.endedAt) return snapshot;
      await cache.deleteSessionId(lane).catch(() => undefined);
    }
    const key = { bot: envelope.bot, channel: envelope.channel, nativeKey: nativeSessionKey(envelope) };
    let snapshot = await findOpenSnapshotByKey(db, key);
    if (!snapshot && rating) {
      // Not remembered as the lane's session: the next message that is not a rating opens a new one.
      const asked = await findRatingAsk(db, key, new Date(envelope.receivedAt));
      if (asked) return asked;
    }
    if (!snapshot) {
      if (!create || hasExplicitSessions(envelope.channel)) return undefined;
      snapshot = await this.createForContact(envelope, key, logger);
    }
    await cache.setSessionId(lane, snapshot.session.id).catch(() => undefined);
    return snapshot;
  }

  /**
   * A new session for a person's first message, in one statement; step by step when that lost a
   * race. `ContactErasedError` for an envelope accepted before its person was erased.
   */
  private async createForContact(
    envelope: Envelope,
    key: SessionKey,
    logger: Logger,
  ): Promise<SessionSnapshot> {
    const { db } = this.o;
    // Queued before its person was erased, it must not bring them back. Looked up only here: an
    // erasure leaves its person no session, so such an envelope always comes to make one.
    if (await erasedSinceAccepted(db, envelope)) throw new ContactErasedError();
    const meta = { ...envelope.meta, ...(envelope.from.name ? { name: envelope.from.name } : {}) };
    const identity = identifies(envelope)
      ? { nativeId: envelope.from.id, name: envelope.from.name, email: envelope.from.email }
      : null;
    let made: { snapshot: SessionSnapshot; created: boolean } | undefined;
    try {
      made = {
        snapshot: await createContactSession(db, { ...key, identity, replyTo: envelope.replyTo, meta }),
        created: true,
      };
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      // Another process made this person's user or this session a moment ago.
      logger.debug({ event: 'session.create_raced', bot: key.bot, channel: key.channel });
      made = await this.createStepByStep(key, identity, envelope.replyTo, meta);
    }
    if (made.created) {
      logger.info({
        event: 'session.created',
        sessionId: made.snapshot.session.id,
        bot: key.bot,
        channel: key.channel,
      });
    }
    return made.snapshot;
  }

  /** The same as `createContactSession`, a step at a time: each step tolerates another process's. */
  private async createStepByStep(
    key: SessionKey,
    identity: ContactSession['identity'],
    replyTo: unknown,
    meta: Record<string, unknown>,
  ): Promise<{ snapshot: SessionSnapshot; created: boolean }> {
    const { db } = this.o;
    const userId = identity ? await userForIdentity(db, { channel: key.channel, ...identity }) : null;
    const lastInteractionAt = await lastInteraction(db, { ...key, userId });
    const created = await createSession(db, {
      ...key,
      userId,
      replyTo,
      meta: { ...meta, ...(lastInteractionAt ? { lastInteractionAt } : {}) },
    });
    if (created.created) {
      await recordEvent(db, {
        sessionId: created.snapshot.session.id,
        bot: key.bot,
        channel: key.channel,
        type: 'session.start',
      });
    }
    return created;
  }

  /**
   * A session renewed after an idle-out starts only once its predecessor's end is committed: the
   * two are in different lanes, and a start that reads what the end handler wrote (a summary in
   * the person's memory) must see it.
   */
  async afterPreviousEnd(session: SessionSnapshot['session']): Promise<void> {
    const previous = session.meta.previousSessionId;
    if (typeof previous !== 'string' || !UUID.test(previous)) return;
    const deadline = Date.now() + PREVIOUS_END_WAIT_MS;
    for (;;) {
      const { rows } = await this.o.db.query<{ ended: boolean }>(
        'SELECT ended_at IS NOT NULL AS ended FROM sessions WHERE id = $1',
        [previous],
      );
      if (rows.length === 0 || rows[0]!.ended) return;
      if (Date.now() > deadline) {
        this.o.logger.warn({ event: 'session.previous_end_late', sessionId: session.id, previous });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, PREVIOUS_END_POLL_MS));
    }
  }
}
