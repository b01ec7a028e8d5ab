import type { Bus, SessionEvent } from '../bus/bus.ts';
import { sessionTopic } from '../bus/bus.ts';
import type { SessionCache } from '../cache/cache.ts';
import { hasExplicitSessions, isLiveChannel } from '../channels/registry.ts';
import type { Bot, BotRegistry } from '../config/bots.ts';
import type { Delivery } from '../delivery/delivery.ts';
import type { Outbox } from '../delivery/outbox.ts';
import { type Channel, type Envelope, type EnvelopeInput, sessionLane } from '../envelope.ts';
import type { EngineHandoff } from '../handoff/engine-side.ts';
import { idleSinceOf } from '../lifecycle/idle-sweep.ts';
import { DEFAULT_RATING_THANKS, parseRating } from '../lifecycle/rating.ts';
import { IDLE_END_REASON } from '../lifecycle/rules.ts';
import { type Logger, lazyChild, NO_BINDINGS } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { handleOptOutWord, optOutWord } from '../outbound/opt-out.ts';
import {
  failHandedOver,
  findWaitingMessage,
  OPERATOR_ORIGIN,
  SESSION_ENDED_ERROR,
} from '../outbound/store.ts';
import { ContactErasedError, SessionResolver } from '../session-resolver.ts';
import type { Db } from '../store/db.ts';
import { getBotMemory, getUserMemory } from '../store/memory.ts';
import { isEnvelopeRecorded, listMessages } from '../store/messages.ts';
import type { SessionSnapshot } from '../store/records.ts';
import { loadSnapshot } from '../store/sessions.ts';
import { loadChild, sessionForSend } from '../store/sub-sessions.ts';
import { chainable, chainTurns, type TurnWrite } from '../store/turns.ts';
import {
  type Context,
  currentTrace,
  inLazySpan,
  type Link,
  linkedContext,
  spanIn,
  tracingEnabled,
  withContext,
} from '../telemetry/tracing.ts';
import { cleanWriteText } from './clean-write.ts';
import { GroupCommitter } from './group-commit.ts';
import { isOutboundTarget, outgoingRows } from './outbound.ts';
import type { SessionBotInfo } from './session-control.ts';
import { type LlmProvider, TurnDraft, type TurnReads } from './turn.ts';

/**
 * The turn's trace context on the rows its senders deliver (`payload.trace`): the platform send,
 * in whichever worker and however much later, continues the trace. Stamped when the turn is
 * computed, in its own context: a held turn is committed later, in the context of another.
 */
function stampTrace(write: TurnWrite, trace: Context): void {
  const carried = currentTrace(trace);
  if (!carried) return;
  for (const row of outgoingRows(write)) row.payload = { ...row.payload, trace: carried };
}

/** Another writer moved the session this many times in a row: give up and let the queue retry. */
export const MAX_CONFLICT_RETRIES = 5;

/**
 * `held`: computed, not yet committed (see `handle`'s `mayHold`). `erased`: accepted before its
 * person was erased, dropped (see `run`).
 */
export type TurnOutcome = 'committed' | 'duplicate' | 'no_session' | 'held' | 'erased';

interface RunOptions {
  trustCached?: boolean;
  shareLater?: boolean;
  mayHold?: boolean;
  trace?: Context;
  /** The session's last activity, for the engine's own idle-out `end` (`endIdleSession`). */
  idleOut?: string;
}

/** A turn computed and held back, to be committed with its lane's next turns in one write. */
interface HeldTurn {
  envelope: Envelope;
  write: TurnWrite;
  /** The session once it is committed: the next turn of the lane is computed from it. */
  next: SessionSnapshot;
  /** The turn's span (tracing on): the commit that writes it links to it. */
  span?: Link;
}

import type { BotMedia } from '../files/bot-media.ts';
import type { FileStore } from '../files/store.ts';

export interface EngineOptions {
  db: Db;
  cache: SessionCache;
  bus: Bus;
  bots: BotRegistry;
  delivery: Delivery;
  outbox: Outbox;
  metrics: Metrics;
  logger: Logger;
  /** Gives bots their LLM (`ctx.llm`); absent, bots have none. */
  llm?: LlmProvider;
  /**
   * Queues a reply a turn sends to another session (SEND TO SESSION: an outbound envelope, see
   * src/engine/outbound.ts); only queues, never waits for that session. Absent, such sends fail the turn.
   */
  send?: (envelope: EnvelopeInput) => Promise<unknown>;
  /** Human handoff (`TRANSFER SESSION`, agents); absent, a handoff is recorded but nobody is told. */
  handoff?: EngineHandoff;
  /** The file store and the bots' media (`SHOW IMAGE`, `ctx.talk({ files })`); absent, bots cannot send files. */
  files?: FileStore;
  media?: BotMedia;
}

export class StateConflictError extends Error {
  override name = 'StateConflictError';
}

/**
 * The session engine: one envelope in, one committed turn out. Safe to call again with the
 * same envelope (at-least-once queues do): a recorded envelope is a no-op, and a turn that
 * lost a race with another writer is recomputed from the newer state.
 */
export class SessionEngine {
  private readonly committer: GroupCommitter;
  private readonly sessions: SessionResolver;
  /** Turns held back, by lane, in order (see `handle`'s `mayHold`). */
  private readonly held = new Map<string, HeldTurn[]>();
  /** `botReads`, by bot (a reloaded bot is another object) and channel. */
  private readonly readsByBot = new WeakMap<Bot, Map<Channel, { reads: TurnReads; info: SessionBotInfo }>>();

  constructor(private readonly o: EngineOptions) {
    this.committer = new GroupCommitter(o.db, o.logger);
    this.sessions = new SessionResolver({
      db: o.db,
      cache: o.cache,
      bots: o.bots,
      logger: o.logger,
      endIdle: (idle, next) => this.endIdleSession(idle, next),
    });
  }

  /**
   * `checkDuplicate: false` skips the up-front look for an already recorded envelope: for
   * envelopes the queue knows are new. The commit refuses a duplicate either way; the look only
   * spares running the bot again.
   */
  /**
   * `mayHold` (the queue's `DeliveryInfo.mayHold`: this process handles the lane's next envelope
   * right after this one, and acknowledges none of them before): a person's message whose turn
   * writes only its session's state and history may be held back (`'held'`) instead of
   * committed; the lane's next turn is computed from it, and the held turns are committed in the
   * same write as the first turn that is not held — one state and one session update for them
   * all. Their notices go out after that commit, in order. When that write fails (the state
   * moved, an envelope was recorded meanwhile) the held envelopes are handled again one by one.
   */
  async handle(
    envelope: Envelope,
    options: {
      checkDuplicate?: boolean;
      trustCachedState?: boolean;
      shareStateLater?: boolean;
      mayHold?: boolean;
      /** The turn's trace context (tracing on: src/telemetry/envelope-spans.ts), handed down. */
      trace?: Context;
    } = {},
  ): Promise<TurnOutcome> {
    const started = performance.now();
    const lane = sessionLane(envelope);
    const shareLater = options.shareStateLater ?? false;
    // Turns are held only within one run of a lane's chunk: a lane's first envelope finds none,
    // unless that run ended in a failure before them (then they are not durable, and redelivered).
    // (Each `has` spares an await of an async call that has nothing to do: most turns hold nothing.)
    if (!options.trustCachedState && this.held.has(lane)) await this.dropHeld(lane);
    let outcome: TurnOutcome;
    try {
      outcome = await this.run(envelope, options.checkDuplicate ?? true, {
        trustCached: options.trustCachedState ?? false,
        shareLater,
        mayHold: options.mayHold ?? false,
        trace: options.trace,
      });
      // A turn that ended before its commit (nothing written) leaves no held turns behind it.
      if (outcome !== 'held' && this.held.has(lane)) await this.releaseHeld(lane, shareLater, options.trace);
    } catch (err) {
      if (this.held.has(lane)) await this.dropHeld(lane);
      throw err;
    }
    const seconds = (performance.now() - started) / 1000;
    this.o.metrics.turnSeconds.observe({ channel: envelope.channel, outcome }, seconds);
    return outcome;
  }

  /**
   * An operator's message (`POST /api/admin/messages`, a broadcast's recipient) whose session
   * ended while it waited in the lane (the person's own END, an idle-out, an operator's DELETE):
   * it goes where it would go if it were sent now, as `OutboundService.sessionFor` picks — the
   * key's open session (the person wrote again), else, where sessions are keyed by the person, a
   * new one at the ended one's address. The envelope is in the key's lane, so it stays in order.
   * Where there is none to be had (web and API sessions are never opened from outside) the
   * message is settled as failed, so that its status and its broadcast's counts settle. A
   * message no longer waiting (its person erased, or settled) is dropped as before.
   */
  private async operatorTarget(
    envelope: Envelope,
    logger: Logger,
  ): Promise<{ envelope: Envelope; snapshot: SessionSnapshot } | undefined> {
    const { db } = this.o;
    const outbound = envelope.outbound!;
    const message = await findWaitingMessage(db, outbound.origin.id);
    if (!message) return undefined;
    const ended = outbound.sessionId ? await loadSnapshot(db, outbound.sessionId) : undefined;
    const replyTo = envelope.replyTo ?? ended?.session.replyTo ?? message.replyTo;
    const snapshot = await this.sessions.findOpen(
      { ...envelope, ...(replyTo !== undefined && replyTo !== null ? { replyTo } : {}) },
      false,
      { create: true, logger },
    );
    if (!snapshot) {
      if (await failHandedOver(db, message.id, SESSION_ENDED_ERROR))
        logger.info({ event: 'outbound.failed', envelopeId: envelope.id, error: SESSION_ENDED_ERROR });
      return undefined;
    }
    logger.info({
      event: 'outbound.session_renewed',
      envelopeId: envelope.id,
      endedSessionId: outbound.sessionId,
      sessionId: snapshot.session.id,
    });
    return { envelope: { ...envelope, outbound: { ...outbound, sessionId: snapshot.session.id } }, snapshot };
  }

  /**
   * One envelope's turn (`runTurn`). An envelope accepted before its person was erased, which
   * would make them a new session (`ContactErasedError`), is dropped instead: nothing is recorded
   * or sent, and the queue acknowledges it.
   */
  private async run(
    envelope: Envelope,
    checkDuplicate: boolean,
    options: RunOptions = {},
  ): Promise<TurnOutcome> {
    try {
      return await this.runTurn(envelope, checkDuplicate, options);
    } catch (err) {
      if (!(err instanceof ContactErasedError)) throw err;
      await this.dropErased(envelope, options.trace);
      return 'erased';
    }
  }

  /**
   * What is left of an envelope of an erased person: the files the channel already stored for it,
   * which no session claimed (a download finished after the erasure, an email's attachments). The
   * line names no one: no envelope id (a WhatsApp message id encodes the phone number), no key.
   */
  private async dropErased(envelope: Envelope, trace: Context | undefined): Promise<void> {
    const fileIds = envelope.attachments.flatMap((a) => (a.fileId ? [a.fileId] : []));
    const files = fileIds.length > 0 && this.o.files ? await this.o.files.removeUnclaimed(fileIds) : 0;
    this.loggerFor(trace, 'info').info({
      event: 'erasure.envelope_dropped',
      bot: envelope.bot,
      channel: envelope.channel,
      kind: envelope.kind,
      files,
    });
  }

  /**
   * `trustCached`: this process's copy of the session is current (see `DeliveryInfo.followsInLane`).
   * `shareLater`: this process takes the session's next turn at once, so the new state need not
   * reach the shared cache before then. `trace`: the turn's trace context (tracing on), handed
   * down to what the turn does rather than made active (see src/telemetry/tracing.ts `inPassedSpan`).
   */
  private async runTurn(
    envelope: Envelope,
    checkDuplicate: boolean,
    { trustCached = false, shareLater = false, mayHold = false, trace, idleOut }: RunOptions = {},
  ): Promise<TurnOutcome> {
    const { db, cache } = this.o;
    // With tracing on, the turn's lines carry its trace_id and span_id.
    const logger = trace ? lazyChild(this.o.logger, NO_BINDINGS, trace) : this.o.logger;
    const turnSpan = spanIn(trace);
    const lane = sessionLane(envelope);
    // Only a person's message may join the turns held before it; anything else follows them.
    const joins = envelope.kind === 'message' && !envelope.outbound;
    if (!joins && this.held.has(lane)) await this.releaseHeld(lane, true, trace);
    for (let attempt = 0; attempt <= MAX_CONFLICT_RETRIES; attempt++) {
      if ((checkDuplicate || attempt > 0) && (await isEnvelopeRecorded(db, envelope.id))) {
        logger.debug({ event: 'turn.duplicate', envelopeId: envelope.id });
        return 'duplicate';
      }
      // After a conflict the cached state is known to be behind.
      const trusted = trustCached && attempt === 0;
      // A reply for a named session never makes one: that session is open, or the reply is dropped
      // (an operator's message excepted: see `operatorTarget`).
      let snapshot =
        envelope.outbound?.sessionId || envelope.kind === 'transfer_end'
          ? await this.sessions.findOpen(envelope, trusted, { create: false, logger })
          : (trusted && this.heldSession(lane, envelope)) ||
            (await this.sessions.resolve(envelope, trusted, logger));
      if (envelope.kind === 'transfer_end' && snapshot?.state.handoff?.id !== envelope.end?.handoffId) {
        // A late or repeated end of a handoff the session is no longer in: nothing to do.
        logger.info({ event: 'handoff.end_stale', envelopeId: envelope.id, sessionId: snapshot?.session.id });
        return 'duplicate';
      }
      if (envelope.kind === 'outbound' && (!snapshot || !isOutboundTarget(envelope, snapshot.session))) {
        const target =
          envelope.outbound?.origin.type === OPERATOR_ORIGIN
            ? await this.operatorTarget(envelope, logger)
            : undefined;
        if (!target) {
          logger.warn({
            event: 'outbound.no_session',
            envelopeId: envelope.id,
            sessionId: envelope.outbound?.sessionId,
          });
          return 'no_session';
        }
        ({ envelope, snapshot } = target);
      }
      const idleSince = idleSinceOf(envelope);
      if (idleSince !== undefined && !this.stillIdle(snapshot, idleSince)) {
        // The sweep saw the session idle, but it is gone, or something happened in it since.
        logger.debug({ event: 'session.idle_end_skipped', envelopeId: envelope.id });
        return 'duplicate';
      }
      if (!snapshot) {
        logger.warn({
          event: 'turn.no_session',
          envelopeId: envelope.id,
          channel: envelope.channel,
          bot: envelope.bot,
        });
        await this.publish({
          type: 'turn.completed',
          sessionId: envelope.from.id,
          bot: envelope.bot,
          channel: envelope.channel,
          envelopeId: envelope.id,
          replies: [],
          ended: true,
        });
        return 'no_session';
      }
      turnSpan?.setAttribute('switchboard.session.id', snapshot.session.id);
      if (attempt === 0 && envelope.kind === 'message') this.signalTyping(snapshot, envelope, trace);
      if (attempt === 0 && envelope.kind === 'start') await this.sessions.afterPreviousEnd(snapshot.session);
      const draft = new TurnDraft(snapshot, envelope, idleOut);
      // The resolver hands a message to an ended session only when it answers its rating ask.
      const ratingScore =
        envelope.kind === 'message' && snapshot.session.endedAt ? parseRating(envelope.text) : undefined;
      if (ratingScore !== undefined) {
        const ask = this.o.bots.rules(snapshot.session.bot, snapshot.session.channel).askRating;
        draft.answerRating(ratingScore, ask?.thanks ?? DEFAULT_RATING_THANKS);
      }
      // An outbound envelope is a reply already written: recorded and sent, the bot does not run.
      const heldByPeople = envelope.kind === 'message' && Boolean(snapshot.state.handoff);
      // Nor does it while people hold the session: the message is recorded, and agents are told.
      // The dialog is a span of its own only when it does traced work (an LLM request, a tool
      // call): a dialog that only walks its script is the turn's own time. Only the dialog of a bot
      // that has an LLM runs with the turn's context active, for the LLM's spans to find it
      // (AsyncLocalStorage: every promise of the process pays once a context was active).
      // (With tracing off, no span's options are built: this runs for every message.)
      if (envelope.kind !== 'outbound' && !heldByPeople && ratingScore === undefined)
        await (trace && this.o.llm && (this.o.llm.configured?.(snapshot.session.bot) ?? true)
          ? inLazySpan(
              'switchboard.dialog',
              { parent: trace, attributes: { 'switchboard.bot': snapshot.session.bot } },
              () => this.runBot(draft, trace),
            )
          : this.runBot(draft, trace));
      this.askForRating(draft);
      if (draft.pending.length > 0) await draft.settle();
      // The accepts of what the turn sends to other sessions are the turn's children.
      if (draft.work.sends.length > 0) await withContext(trace, () => this.sendOnward(draft));
      const at = new Date();
      const write = cleanWriteText(
        draft.toWrite({
          at,
          replyStatus: this.o.delivery.initialStatus(snapshot.session.channel),
          expiresAt:
            snapshot.session.authLevel === 'anonymous'
              ? new Date(
                  at.getTime() +
                    this.o.bots.rules(snapshot.session.bot, snapshot.session.channel).anonymousRetentionMs,
                )
              : null,
        }),
        logger,
      );
      // Only a sender reads it (a channel without one, the api's, never sends its rows).
      if (trace && this.o.delivery.hasSender(snapshot.session.channel)) stampTrace(write, trace);
      const held = this.held.get(lane);
      const chains =
        joins &&
        attempt === 0 &&
        !heldByPeople &&
        !snapshot.state.handoff &&
        draft.work.sends.length === 0 &&
        chainable(write) &&
        (held === undefined ||
          (held[0]!.write.sessionId === write.sessionId &&
            held[held.length - 1]!.next.state.version === write.expectedVersion));
      if (chains) {
        const turn: HeldTurn = {
          envelope,
          write,
          next: draft.committedSnapshot(write),
          span: turnSpan ? { context: turnSpan.spanContext() } : undefined,
        };
        if (mayHold) {
          if (held) held.push(turn);
          else this.held.set(lane, [turn]);
          // Where the lane's next turn finds its session (this process's copy only).
          await cache.set(turn.next, { localOnly: true }).catch(() => undefined);
          return 'held';
        }
        if (held) {
          // The last of them: one write for the held turns and this one.
          this.held.delete(lane);
          const turns = [...held, turn];
          if (await this.commitHeld(turns, shareLater, held.length, trace)) return 'committed';
          // The held ones were handled again; this one was computed from their state: again too.
          continue;
        }
      } else if (held) {
        // This turn was computed from the held ones' state: they are committed first.
        await this.releaseHeld(lane, true, trace);
      }
      if (write.handoff?.open) await this.o.handoff?.beforeCommit(write);
      // The commit's span is the group commit's (src/engine/group-commit.ts): one per statement.
      const result = await this.committer.commit(write, undefined, trace);
      turnSpan?.setAttribute('switchboard.commit.result', result);
      if (result === 'duplicate') return 'duplicate';
      if (result === 'conflict') {
        logger.debug({
          event: 'turn.conflict',
          envelopeId: envelope.id,
          sessionId: snapshot.session.id,
          attempt,
        });
        await cache.delete(snapshot.session.id).catch(() => undefined);
        continue;
      }
      await this.afterCommit(envelope, draft.committedSnapshot(write), write, shareLater, false, trace);
      if (this.o.handoff && (write.handoff || snapshot.state.handoff || envelope.outbound?.agentId))
        await this.o.handoff
          .afterCommit(envelope, snapshot.session, write, snapshot.state.handoff ?? null)
          .catch((err: Error) =>
            logger.warn({ event: 'handoff.after_commit_failed', envelopeId: envelope.id, err: err.message }),
          );
      return 'committed';
    }
    throw new StateConflictError(`session state kept moving under envelope ${envelope.id}`);
  }

  /** `cached`: `next` is in this process's cache already, and a later turn's replaces it. */
  private async afterCommit(
    envelope: Envelope,
    next: SessionSnapshot,
    write: TurnWrite,
    shareLater: boolean,
    cached = false,
    trace?: Context,
  ) {
    const replies = outgoingRows(write);
    const { cache, metrics, delivery } = this.o;
    const { session } = next;
    if (cached) {
      // Nothing to write.
    } else if (session.endedAt) {
      await cache.delete(session.id).catch(() => undefined);
      await cache.deleteSessionId(sessionLane(envelope)).catch(() => undefined);
    } else {
      await cache.set(next, { localOnly: shareLater }).catch((err: Error) => {
        this.loggerFor(trace, 'warn').warn({
          event: 'cache.write_failed',
          sessionId: session.id,
          err: err.message,
        });
        return cache.delete(session.id).catch(() => undefined);
      });
    }
    const createdAt = write.at.toISOString();
    // Not awaited: the turn is committed, and notices keep their order on the connection anyway.
    void this.publish(
      {
        type: 'turn.completed',
        sessionId: session.id,
        bot: session.bot,
        channel: session.channel,
        envelopeId: envelope.id,
        replies: replies.map((r) => ({ seq: r.seq, text: r.content, payload: r.payload, createdAt })),
        ...(session.endedAt
          ? {
              ended: true as const,
              ...(write.end
                ? { endReason: write.end.reason }
                : // A rating after the sweep's end: the token still waits for the person's next message.
                  write.ratingAnswer && hasExplicitSessions(session.channel)
                  ? { endReason: IDLE_END_REASON }
                  : {}),
            }
          : {}),
      },
      trace,
    );
    if (replies.length > 0) {
      if (delivery.hasSender(session.channel)) this.o.outbox.notify(session.id);
      else metrics.messagesOut.inc({ channel: session.channel }, replies.length);
    }
    this.loggerFor(trace, 'debug').debug({
      event: 'turn.committed',
      envelopeId: envelope.id,
      sessionId: session.id,
      replies: replies.length,
    });
  }

  /**
   * A session that ends in this turn asks its person for a rating when its bot says so
   * (`sessions.askRating`), on channels where the person's next message comes back on the same
   * key (a token session's client has closed it). Not when the person never wrote, nor when the
   * end is an idle-out their new message caused: they are already talking about something else.
   */
  private askForRating(draft: TurnDraft): void {
    if (!draft.endReason || draft.ratingAnswer) return;
    const { session } = draft.snapshot;
    const { envelope } = draft;
    // A token session's client keeps its token only after the idle sweep's end (any other end
    // closes it): only then can its answer come back.
    if (hasExplicitSessions(session.channel) && !(envelope.kind === 'end' && envelope.end?.idleSince)) return;
    const ask = this.o.bots.rules(session.bot, session.channel).askRating;
    if (!ask) return;
    if (session.messageCount === 0 && envelope.kind !== 'message') return;
    if (envelope.kind === 'end' && envelope.end?.reason === IDLE_END_REASON && !envelope.end.idleSince)
      return;
    draft.askRating(ask.question, new Date(Date.now() + ask.windowMs));
  }

  /**
   * The session as the lane's held turns leave it, for a person's message that follows them in
   * this process: what the resolver would read back from this process's cache (the held turns
   * put it there), without the lookups. Undefined when nothing is held, or when the resolver
   * has more to do (an idle session to end).
   */
  private heldSession(lane: string, envelope: Envelope): SessionSnapshot | undefined {
    if (envelope.kind !== 'message' || envelope.outbound) return undefined;
    const held = this.held.get(lane);
    if (!held) return undefined;
    const next = held[held.length - 1]!.next;
    return this.sessions.takes(next, envelope) ? next : undefined;
  }

  /** Commits the turns held for a lane, if any (see `handle`); `trace`: the lane's current turn's. */
  private async releaseHeld(lane: string, shareLater: boolean, trace?: Context): Promise<void> {
    const turns = this.held.get(lane);
    if (!turns) return;
    this.held.delete(lane);
    await this.commitHeld(turns, shareLater, turns.length, trace);
  }

  /**
   * Commits consecutive turns of one session in one write, then tells of each in order. When the
   * write is refused (the state moved, or an envelope was recorded meanwhile: nothing was
   * written) the envelopes of the first `replay` of them are handled again one by one, from the
   * stored state (the caller handles the rest). True when the write committed.
   */
  private async commitHeld(
    turns: HeldTurn[],
    shareLater: boolean,
    replay = turns.length,
    trace?: Context,
  ): Promise<boolean> {
    // The commit runs in the context of the lane's current turn; it links to the held ones' spans.
    const result = await this.committer.commit(
      chainTurns(turns.map((t) => t.write)),
      tracingEnabled() ? turns.flatMap((t) => (t.span ? [t.span] : [])) : undefined,
      trace,
    );
    // The lane's current turn is the last of them (unless they are released by another turn).
    if (replay < turns.length) spanIn(trace)?.setAttribute('switchboard.commit.result', result);
    if (result === 'committed') {
      const last = turns.length - 1;
      // The earlier turns' sessions went into this process's cache when they were held; the
      // last one's replaces them (and goes to the shared cache).
      for (const [i, t] of turns.entries())
        await this.afterCommit(
          t.envelope,
          t.next,
          t.write,
          i < last || shareLater,
          i < last,
          // Each held turn's lines carry its own trace (the lane's current turn's is `trace`).
          t.span ? linkedContext(t.span) : trace,
        );
      return true;
    }
    const sessionId = turns[0]!.write.sessionId;
    this.loggerFor(trace, 'debug').debug({
      event: 'turn.held_refused',
      sessionId,
      turns: turns.length,
      result,
    });
    await this.o.cache.delete(sessionId).catch(() => undefined);
    // Each again in its own turn's context: its replies carry its own trace.
    for (const t of turns.slice(0, replay)) {
      const own = linkedContext(t.span);
      await this.run(t.envelope, true, own ? { trace: own } : {});
    }
    return false;
  }

  /** Forgets a lane's held turns without committing them (their envelopes will be redelivered). */
  private async dropHeld(lane: string): Promise<void> {
    const turns = this.held.get(lane);
    if (!turns) return;
    this.held.delete(lane);
    // This process's copy of the session is one of theirs, never committed.
    await this.o.cache.delete(turns[0]!.write.sessionId).catch(() => undefined);
  }

  /** Whether the session is still open and has seen nothing since `idleSince`. */
  private stillIdle(snapshot: SessionSnapshot | undefined, idleSince: string): snapshot is SessionSnapshot {
    if (!snapshot || snapshot.session.endedAt) return false;
    return Date.parse(snapshot.session.lastActivityAt) === Date.parse(idleSince);
  }

  /**
   * Queues what the turn sends to other sessions, before the turn commits: a crash in between
   * replays the turn, whose sends have the same ids and are recognised as duplicates.
   */
  private async sendOnward(draft: TurnDraft): Promise<void> {
    const { sends } = draft.work;
    if (sends.length === 0) return;
    if (!this.o.send) throw new Error('this engine cannot send to other sessions');
    for (const envelope of sends) await this.o.send(envelope);
  }

  private signalTyping(snapshot: SessionSnapshot, envelope: Envelope, trace: Context | undefined): void {
    // Only live channels' clients follow a turn on the bus; the others hear of the finished turn.
    if (isLiveChannel(snapshot.session.channel)) {
      void this.publish(
        { type: 'turn.started', sessionId: snapshot.session.id, envelopeId: envelope.id },
        trace,
      );
    }
    // A sender's platform requests (a typing indicator) are the turn's children; without a
    // sender nothing is traced, and the context is not made active.
    const parent = this.o.delivery.hasSender(snapshot.session.channel) ? trace : undefined;
    withContext(parent, () => this.o.delivery.typing(snapshot.session));
  }

  /** `trace`: the turn's (tracing on), for the failure's log line. */
  private async publish(message: SessionEvent, trace?: Context): Promise<void> {
    await this.o.bus.publish(sessionTopic(message.sessionId), message).catch((err: Error) => {
      // The turn is committed; a missed notification only delays clients until they read history.
      this.loggerFor(trace, 'warn').warn({
        event: 'bus.publish_failed',
        sessionId: message.sessionId,
        err: err.message,
      });
    });
  }

  /**
   * The worker's logger or, given a turn's trace (tracing on), a child whose lines carry its
   * `trace_id` and `span_id` — made only for a line of a level that is written: most turns write none.
   */
  private loggerFor(trace: Context | undefined, level: 'debug' | 'info' | 'warn' | 'error'): Logger {
    return trace && this.o.logger.isLevelEnabled(level)
      ? lazyChild(this.o.logger, NO_BINDINGS, trace)
      : this.o.logger;
  }

  private async runBot(draft: TurnDraft, trace: Context | undefined): Promise<void> {
    const { bots, db, logger, metrics } = this.o;
    const { session } = draft.snapshot;
    const bot = bots.has(session.bot) ? bots.get(session.bot) : undefined;
    if (!bot) {
      logger.error({ event: 'turn.unknown_bot', bot: session.bot, sessionId: session.id });
      return;
    }
    const turnLogger = lazyChild(logger, { sessionId: session.id, bot: bot.name }, trace);
    if (draft.envelope.noReply === true) {
      // Auto-replies, bounces, our own mail: recorded in the history, never answered (no mail loops).
      turnLogger.info({ event: 'turn.no_reply', envelopeId: draft.envelope.id });
      return;
    }
    const { rateLimited } = draft.envelope;
    if (rateLimited) {
      // Over the session's message limit: recorded, not answered; told once a minute at most.
      turnLogger.info({
        event: 'turn.rate_limited',
        envelopeId: draft.envelope.id,
        notice: rateLimited.notice,
      });
      if (rateLimited.notice) draft.notice(bots.rules(bot.name, session.channel).rateLimitNotice);
      return;
    }
    // Files the channel could not take (too large, a refused type): the person is told, the bot runs on.
    for (const r of draft.envelope.refusedAttachments ?? []) if (r.message) draft.notice(r.message);
    if (
      draft.envelope.kind === 'message' &&
      optOutWord(bot.settings.outbound, draft.envelope.text) &&
      (await handleOptOutWord(db, bot.settings.outbound, draft))
    )
      return;
    const { reads, info } = this.botReads(bot, session.channel);
    const ctx = draft.context(turnLogger, reads, this.o.llm, info);
    const { kind } = draft.envelope;
    const hooks: (() => void | Promise<void>)[] = [];
    if (kind === 'end') {
      if (bot.handler.onEnd) hooks.push(() => bot.handler.onEnd!(ctx));
    } else if (kind === 'transfer_end') {
      if (bot.handler.onTransferEnd) hooks.push(() => bot.handler.onTransferEnd!(ctx));
    } else {
      if (draft.isNewSession)
        hooks.push(
          bot.handler.onStart ? () => bot.handler.onStart!(ctx) : () => ctx.talk(bot.settings.greeting),
        );
      if (kind === 'message') hooks.push(() => bot.handler.onMessage(ctx));
    }
    for (const hook of hooks) {
      const checkpoint = draft.checkpoint();
      try {
        await hook();
        // The files and cards the hook's replies send (`ctx.talk`) are stored in the background: one
        // that fails (a media file not there, a host that refuses, an invalid card) is the hook's
        // failure too. Settled after the turn, it failed the whole turn on every retry, and a host
        // refusing connections (transient) held the person's later messages back for good.
        if (draft.pending.length > 0) await draft.settle();
      } catch (err) {
        const error = err as Error;
        metrics.botErrors.inc({ bot: bot.name });
        turnLogger.error({
          event: 'turn.bot_error',
          envelopeId: draft.envelope.id,
          err: error.message,
          stack: error.stack,
        });
        checkpoint.rollback();
        ctx.log('error', { message: error.message });
        ctx.talk(bot.settings.apology);
        return;
      }
    }
  }

  /**
   * What a turn of `bot` on `channel` reads from the store, and what its sessions need to know
   * of the bot: the same for every turn, so made once (a turn made a dozen closures for them).
   */
  private botReads(bot: Bot, channel: Channel): { reads: TurnReads; info: SessionBotInfo } {
    let byChannel = this.readsByBot.get(bot);
    if (!byChannel) {
      byChannel = new Map();
      this.readsByBot.set(bot, byChannel);
    }
    let made = byChannel.get(channel);
    if (made) return made;
    const { bots, db } = this.o;
    const historyLimit = bots.rules(bot.name, channel).historyMessages;
    const reads: TurnReads = {
      botMemory: (key) => getBotMemory(db, bot.name, key),
      userMemory: (userId, key) => getUserMemory(db, userId, key),
      history: async (sessionId, throughSeq, limit = historyLimit) =>
        limit <= 0
          ? []
          : (await listMessages(db, sessionId, { beforeSeq: throughSeq + 1, limit })).map((m) => ({
              seq: m.seq,
              role: m.role,
              text: m.content,
              createdAt: m.createdAt,
            })),
      sessions: {
        target: (id) => sessionForSend(db, id),
        child: (parentId, id) => loadChild(db, parentId, id),
      },
      availableAgent: async (queue) => (await this.o.handoff?.availableAgent(bot.name, queue)) ?? '',
      ...(this.o.media ? { media: (botName, ref) => this.o.media!.resolve(botName, ref) } : {}),
      ...(this.o.files
        ? {
            readFile: async (id) => {
              const file = await this.o.files!.get(id);
              if (!file) throw new Error(`there is no file ${id}`);
              return this.o.files!.bytes(file);
            },
          }
        : {}),
    };
    const info: SessionBotInfo = {
      templates: bot.templates ?? new Map(),
      debug: bot.settings.debug,
      maxKnowledgeBases: bot.settings.sessions.maxKnowledgeBases,
    };
    made = { reads, info };
    byChannel.set(channel, made);
    return made;
  }

  /**
   * Ends an idle session with an `end` turn of its own, as if the end had been queued just before
   * this message. Its id is the session's end id, so a replay (a crash after the end committed)
   * finds it recorded and does not end anything twice.
   */
  private async endIdleSession(idle: SessionSnapshot, next: Envelope): Promise<void> {
    const { session } = idle;
    this.o.logger.info({
      event: 'session.idle_out',
      sessionId: session.id,
      bot: session.bot,
      channel: session.channel,
      idleMs: Date.parse(next.receivedAt) - Date.parse(session.lastActivityAt),
    });
    await this.run(
      {
        id: `${session.channel}:${session.id}:end`,
        kind: 'end',
        channel: next.channel,
        bot: next.bot,
        from: next.from,
        ...(next.thread ? { thread: next.thread } : {}),
        text: '',
        attachments: [],
        meta: {},
        end: { reason: IDLE_END_REASON },
        receivedAt: next.receivedAt,
      },
      true,
      // An idle-out ends a session like any end: its `session.idle` event, in the end's own
      // commit, tells the two apart in the statistics.
      { idleOut: session.lastActivityAt },
    );
  }
}
