import { randomUUID } from 'node:crypto';
import { type Card, CardSchema, cardsAsText } from '../cards/card.ts';
import { deepCopy } from '../clone.ts';
import type { Attachment, Envelope } from '../envelope.ts';
import { errorMessage } from '../errors.ts';
import { idleSinceOf } from '../lifecycle/idle-sweep.ts';
import { RATING_SUGGESTIONS } from '../lifecycle/rating.ts';
import type { Logger } from '../logger.ts';
import { own, setOwn } from '../own.ts';
import type { DeliveryStatus, MessagePayload, SessionSnapshot, SessionStateData } from '../store/records.ts';
import type { TurnWrite } from '../store/turns.ts';
import {
  BIND_LLM,
  type BotCard,
  type BotContext,
  type BotLlm,
  type FileRef,
  type HistoryMessage,
  type HistoryNote,
  type LlmBinder,
  NO_LLM,
  normalizeTalk,
  type ReplyContent,
  type ReplyOptions,
  type SessionInfo,
} from './bot.ts';
import { EFFECT_KEYS, EffectKeys, type EffectKeysHolder } from './effect-keys.ts';
import { outboundRow } from './outbound.ts';
import { type SessionBotInfo, SessionControl, type SessionReads, SessionWork } from './session-control.ts';

const INBOUND_TEXT: Record<Envelope['kind'], string | undefined> = {
  message: undefined,
  start: 'session started',
  end: 'session ended',
  outbound: undefined,
  transfer_end: 'transfer ended',
};

export interface DraftReply {
  text: string;
  payload: MessagePayload;
}

/** A history row that is not a reply; `after` is how many replies were talked before it (its place). */
export interface DraftNote {
  role: HistoryNote['role'];
  text: string;
  payload: MessagePayload;
  after: number;
}

/** What a turn reads from the store on demand. */
export interface TurnReads {
  /** Other sessions (SEND TO SESSION) and sub-sessions; absent, the turn knows of none. */
  sessions?: SessionReads;
  botMemory(key: string): Promise<unknown>;
  userMemory(userId: string, key: string): Promise<unknown>;
  /** The latest messages up to `throughSeq`, oldest first; `limit` defaults to the bot's history limit. */
  history(sessionId: string, throughSeq: number, limit?: number): Promise<HistoryMessage[]>;
  /** `GET AVAILABLE AGENT`: an agent's id, or "". */
  availableAgent?(queue: string | null): Promise<string>;
  /** A bot's media file or an https URL, brought into the file store (absent: no file store). */
  media?(bot: string, ref: string): Promise<Attachment>;
  /** A stored file's bytes. */
  readFile?(fileId: string): Promise<Buffer>;
}

/** What a turn asked of `ctx.handoff`: the session goes to people once the turn is committed. */
export interface HandoffRequest {
  agentId: string | null;
  queue: string | null;
}

/** A bot without templates, debug off: what a turn assumes when the engine tells it nothing. */
const NO_BOT_INFO: SessionBotInfo = { templates: new Map(), debug: false, maxKnowledgeBases: 10 };
const NO_SESSIONS: SessionReads = { target: async () => undefined, child: async () => undefined };

/**
 * Gives a turn's BotContext its LLM (the hub's LLM service); without one, bots have none.
 * `configured`: whether a bot has an LLM at all (unknown: it may).
 */
export type LlmProvider = ((ctx: BotContext) => BotLlm) & { configured?: (bot: string) => boolean };

/**
 * One turn in the making: a private copy of the session's state that the bot changes, the
 * replies it talks, and the memory and events it writes. Nothing leaves the draft until the
 * engine commits it.
 */
export class TurnDraft {
  readonly replies: DraftReply[] = [];
  /** Files and card images being stored for replies: settled before the turn is written. */
  readonly pending: Promise<void>[] = [];
  readonly notes: DraftNote[] = [];
  readonly memoryWrites = new Map<string, unknown>();
  readonly userMemoryWrites = new Map<string, unknown>();
  readonly events: { type: string; data: unknown }[] = [];
  /** Replies for other sessions and sub-session changes (ctx.sessions), written with the turn. */
  readonly work = new SessionWork();
  /** Keys of what this computation of the turn does outside the hub (HTTP tool calls): the same in the next one. */
  readonly effectKeys: EffectKeys;
  state: SessionStateData;
  endReason: string | undefined;
  handoffRequest: HandoffRequest | undefined;
  /** The hub asks for a rating as the session ends (`sessions.askRating`). */
  ratingAsk: { nativeKey: string; until: Date } | undefined;
  /** This message answers the ended session's rating ask. */
  ratingAnswer: { score: number } | undefined;
  /** The last `committedSnapshot` (the engine asks for it when it holds the turn and after the commit). */
  private committed: { write: TurnWrite; snapshot: SessionSnapshot } | undefined;

  /**
   * `idleOut`: the session's last activity, when this `end` is the engine's idle-out before a
   * person's new message (src/engine/engine.ts `endIdleSession`); the sweep's end says it itself
   * (`end.idleSince`).
   */
  constructor(
    readonly snapshot: SessionSnapshot,
    readonly envelope: Envelope,
    idleOut?: string,
  ) {
    this.state = deepCopy(stateData(snapshot));
    this.effectKeys = new EffectKeys(snapshot.session.id, envelope.id);
    if (envelope.kind === 'end') {
      this.endReason = envelope.end?.reason ?? 'ended';
      // An idle end says so first, in the end's own commit: written after it (by the sweep, which
      // had queued the end; by the engine, after the end's turn), the event raced the end's turn,
      // was written for an end the engine then skipped (the session active again), or was lost
      // to a crash between the two.
      const idleSince = idleSinceOf(envelope) ?? idleOut;
      if (idleSince !== undefined)
        this.events.push({ type: 'session.idle', data: { lastActivityAt: idleSince } });
    }
    // The session is the bot's again from this turn on.
    if (envelope.kind === 'transfer_end') this.state.handoff = null;
  }

  /** Waits for the files the replies send to be stored. */
  async settle(): Promise<void> {
    while (this.pending.length > 0) await Promise.all(this.pending.splice(0));
  }

  /** A reply from the hub itself rather than the bot (a rate-limit notice). */
  notice(text: string): void {
    this.replies.push({ text, payload: { notice: true } });
  }

  /**
   * The hub's rating ask, after whatever the end said: the question with the five stars, and the
   * window in which a rating on the session's key answers it. Not part of any checkpoint: the
   * engine adds it once the bot is done.
   */
  askRating(question: string, until: Date): void {
    this.replies.push({
      text: question,
      payload: { suggestions: RATING_SUGGESTIONS.map((s) => ({ ...s })) },
    });
    this.ratingAsk = { nativeKey: this.snapshot.session.nativeKey, until };
  }

  /** The person's answer to the ask: the session's `rating` event and the hub's thanks. */
  answerRating(score: number, thanks: string): void {
    this.ratingAnswer = { score };
    this.events.push({ type: 'rating', data: { score, source: 'askRating' } });
    this.replies.push({ text: thanks, payload: {} });
  }

  get isNewSession(): boolean {
    return this.snapshot.session.lastSeq === 0;
  }

  /**
   * Marks what the turn holds now; `rollback` returns to it. The engine checkpoints before each
   * bot hook, so a hook that fails half-way leaves nothing behind, while what earlier hooks did
   * (the greeting) stays.
   */
  checkpoint(): { rollback: () => void } {
    const state = deepCopy(this.state);
    const replies = this.replies.length;
    const notes = this.notes.length;
    // Most turns write no memory: nothing to copy then.
    const memory = this.memoryWrites.size > 0 ? new Map(this.memoryWrites) : undefined;
    const userMemory = this.userMemoryWrites.size > 0 ? new Map(this.userMemoryWrites) : undefined;
    const events = this.events.length;
    const endReason = this.endReason;
    const work = this.work.copy();
    const handoffRequest = this.handoffRequest;
    const pending = this.pending.length;
    return {
      rollback: () => {
        // Files still being stored for replies that are gone: not waited for.
        this.pending.length = Math.min(this.pending.length, pending);
        this.work.replaceWith(work);
        this.state = deepCopy(state);
        this.replies.length = replies;
        this.notes.length = notes;
        this.memoryWrites.clear();
        if (memory) for (const [k, v] of memory) this.memoryWrites.set(k, v);
        this.userMemoryWrites.clear();
        if (userMemory) for (const [k, v] of userMemory) this.userMemoryWrites.set(k, v);
        this.events.length = events;
        this.endReason = endReason;
        this.handoffRequest = handoffRequest;
      },
    };
  }

  context(
    logger: Logger,
    reads: TurnReads,
    llm?: LlmProvider,
    bot: SessionBotInfo = NO_BOT_INFO,
  ): BotContext {
    return new DraftContext(this, logger, reads, llm, bot);
  }

  /**
   * Replies and notes as the rows the turn writes, in the order the bot made them, numbered after
   * the inbound message.
   */
  private sequence(inboundSeq: number, replyStatus: DeliveryStatus) {
    const replies: TurnWrite['replies'] = [];
    const notes: NonNullable<TurnWrite['notes']> = [];
    let seq = inboundSeq;
    for (let i = 0; i <= this.replies.length; i++) {
      if (this.notes.length > 0)
        for (const note of this.notes)
          if (note.after === i)
            notes.push({ seq: ++seq, role: note.role, content: note.text, payload: note.payload });
      const reply = this.replies[i];
      if (reply)
        replies.push({
          seq: ++seq,
          content: reply.text,
          payload: reply.payload,
          deliveryStatus: replyStatus,
        });
    }
    return { replies, notes, lastSeq: seq };
  }

  toWrite(options: { at: Date; replyStatus: DeliveryStatus; expiresAt: Date | null }): TurnWrite {
    const { session, state } = this.snapshot;
    const inboundSeq = session.lastSeq + 1;
    const env = this.envelope;
    const inboundPayload: MessagePayload = {};
    const { replies, notes, lastSeq } = this.sequence(inboundSeq, options.replyStatus);
    const children = this.work.childWrites();
    if (env.attachments.length > 0) inboundPayload.attachments = env.attachments;
    if (env.from.name) inboundPayload.from = { name: env.from.name };
    if (env.rateLimited) inboundPayload.refused = 'rate_limited';
    if (env.refusedAttachments) inboundPayload.refusedAttachments = env.refusedAttachments;
    // When the adapter had it: the dashboard's response time runs from here to the turn's commit.
    if (env.kind === 'message') inboundPayload.receivedAt = env.receivedAt;
    const handoff = this.handoffWrite(options.at);
    return {
      sessionId: session.id,
      at: options.at,
      bot: session.bot,
      channel: session.channel,
      expectedVersion: state.version,
      state: handoff.state,
      ...(handoff.write ? { handoff: handoff.write } : {}),
      inbound: outboundRow(env, inboundSeq, options.replyStatus) ?? {
        seq: inboundSeq,
        role: env.kind === 'message' ? 'user' : 'system',
        content: INBOUND_TEXT[env.kind] ?? env.text,
        envelopeId: env.id,
        payload: inboundPayload,
      },
      replies,
      notes,
      lastSeq,
      messageCountDelta: env.kind === 'message' ? 1 : 0,
      replyTo: env.replyTo ?? null,
      expiresAt: options.expiresAt,
      // An end, or a reply someone else sent, is not the person's doing; nor is a rating after the end.
      touchesActivity: env.kind !== 'end' && env.kind !== 'outbound' && !this.ratingAnswer,
      ...(this.endReason ? { end: { reason: this.endReason } } : {}),
      ...claimedFiles(env.attachments, replies),
      memory: [...this.memoryWrites].map(([key, value]) => ({ key, value })),
      userMemory: [...this.userMemoryWrites].map(([key, value]) => ({ key, value })),
      // A session without a user gets one the first time something is remembered about its person.
      userId: session.userId ?? (this.userMemoryWrites.size > 0 ? randomUUID() : null),
      assignsUser: session.userId === null && this.userMemoryWrites.size > 0,
      // A session that ends says so in its events (the statistics count ends by reason).
      events: this.endReason
        ? [...this.events, { type: 'session.end', data: { reason: this.endReason } }]
        : this.events,
      ...(children.length > 0 ? { children } : {}),
      ...(this.ratingAsk ? { ratingAsk: this.ratingAsk } : {}),
      ...(this.ratingAnswer ? { ratingAnswer: this.ratingAnswer } : {}),
    };
  }

  /**
   * The turn's part in a handoff: `ctx.handoff` opens one (a new `handoffs` row, and the state
   * says so), unless the session is in one already or ends; a session that ends in a handoff
   * closes it.
   */
  private handoffWrite(at: Date): { state: SessionStateData; write?: TurnWrite['handoff'] } {
    const { session } = this.snapshot;
    const request = this.handoffRequest;
    if (request && !this.state.handoff && !this.endReason) {
      const id = randomUUID();
      return {
        state: { ...this.state, handoff: { id, queue: request.queue, requestedAt: at.toISOString() } },
        write: {
          open: {
            id,
            sessionId: session.id,
            bot: session.bot,
            channel: session.channel,
            queue: request.queue,
            agentId: request.agentId,
            at,
          },
        },
      };
    }
    if (this.endReason && this.state.handoff)
      return { state: { ...this.state, handoff: null }, write: { closeReason: 'session_ended' } };
    return { state: this.state };
  }

  /** The session as it stands once `write` is committed: what goes back into the cache. */
  committedSnapshot(write: TurnWrite): SessionSnapshot {
    if (this.committed?.write === write) return this.committed.snapshot;
    const now = write.at;
    const { session, state } = this.snapshot;
    // Every field written out (not a spread of the session and then the changes): this runs for
    // every turn, and the spread was a measurable part of it.
    const snapshot: SessionSnapshot = {
      session: {
        id: session.id,
        bot: session.bot,
        channel: session.channel,
        nativeKey: session.nativeKey,
        userId: write.userId === undefined ? session.userId : write.userId,
        authLevel: session.authLevel,
        replyTo: write.replyTo ?? session.replyTo,
        meta: session.meta,
        createdAt: session.createdAt,
        lastActivityAt: write.touchesActivity === false ? session.lastActivityAt : now.toISOString(),
        expiresAt: write.expiresAt ? write.expiresAt.toISOString() : null,
        endedAt: write.end ? (session.endedAt ?? now.toISOString()) : session.endedAt,
        messageCount: session.messageCount + write.messageCountDelta,
        lastSeq: write.lastSeq,
      },
      state: { ...write.state, version: state.version + 1 },
    };
    this.committed = { write, snapshot };
    return snapshot;
  }
}

/**
 * The BotContext of a turn in the making. A class rather than an object literal with a closure
 * per method and getters: one is made for every turn.
 */
class DraftContext implements BotContext, LlmBinder, EffectKeysHolder {
  readonly session: SessionInfo;
  readonly envelope: Envelope;
  readonly kind: Envelope['kind'];
  readonly text: string;
  private userView: BotContext['user'] | undefined;
  private memoryView: BotContext['memory'] | undefined;
  private filesList: BotContext['files'] | undefined;
  private sessionControl: SessionControl | undefined;

  constructor(
    private readonly draft: TurnDraft,
    readonly logger: Logger,
    private readonly reads: TurnReads,
    private readonly llmProvider: LlmProvider | undefined,
    private readonly bot: SessionBotInfo,
  ) {
    const { session } = draft.snapshot;
    const isNew = draft.isNewSession;
    this.envelope = draft.envelope;
    this.kind = draft.envelope.kind;
    this.text = draft.envelope.kind === 'message' ? draft.envelope.text : '';
    this.session = {
      id: session.id,
      bot: session.bot,
      channel: session.channel,
      userId: session.userId,
      authLevel: session.authLevel,
      createdAt: session.createdAt,
      lastActivityAt: session.lastActivityAt,
      lastInteractionAt: isNew
        ? typeof session.meta.lastInteractionAt === 'string'
          ? session.meta.lastInteractionAt
          : null
        : session.lastActivityAt,
      messageCount: session.messageCount + (draft.envelope.kind === 'message' ? 1 : 0),
      isNew,
    };
    // Bound one by one, not in a loop over the names: a loop's keyed loads and stores over
    // several classes went megamorphic, and this runs for every turn.
    this.talk = this.talk.bind(this);
    this.file = this.file.bind(this);
    this.readFile = this.readFile.bind(this);
    this.get = this.get.bind(this);
    this.set = this.set.bind(this);
    this.history = this.history.bind(this);
    this.log = this.log.bind(this);
    this.end = this.end.bind(this);
    this.record = this.record.bind(this);
    this.handoff = this.handoff.bind(this);
    this.availableAgent = this.availableAgent.bind(this);
  }

  /** Made the first time a bot uses it: most turns read and write no memory. */
  get memory(): BotContext['memory'] {
    this.memoryView ??= new DraftMemory(this.draft, this.reads);
    return this.memoryView;
  }

  get user(): BotContext['user'] {
    const { userId } = this.draft.snapshot.session;
    this.userView ??= { id: userId, memory: new DraftUserMemory(this.draft, this.reads, userId) };
    return this.userView;
  }

  get state(): SessionStateData {
    return this.draft.state;
  }

  talk(content: ReplyContent, more?: ReplyOptions): void {
    const { draft } = this;
    const { text, options } = normalizeTalk(content, more);
    const textOnly =
      !options?.attachments?.length && !options?.files?.length && !options?.card && !options?.cards?.length;
    // Nothing to say is not a message (as TALK "" in a script): WhatsApp, Teams and Slack refuse an
    // empty text, and `"greeting": ""` (or an empty defaultReply) means the bot says nothing.
    if (textOnly && text.trim() === '') return;
    const payload: MessagePayload = {};
    if (options?.suggestions?.length) payload.suggestions = options.suggestions;
    const reply = { text, payload };
    draft.replies.push(reply);
    if (textOnly) return;
    const attachments: (Attachment | Promise<Attachment>)[] = [...(options.attachments ?? [])];
    const storeFile = (r: string) => this.file(r).catch(failedPart(`file "${r}"`));
    for (const ref of options.files ?? []) attachments.push(fileAttachment(ref, storeFile));
    const cards = [...(options.card ? [options.card] : []), ...(options.cards ?? [])];
    const stored = (async () => {
      const files = await Promise.all(attachments);
      if (files.length) payload.attachments = files;
      if (cards.length)
        payload.cards = await Promise.all(
          cards.map((c, i) =>
            storedCard(c, (r) => this.file(r)).catch(failedPart(`card ${i + 1}${titled(c)}`)),
          ),
        );
      if (reply.text.trim() === '') {
        // Channels that show only text get the cards as numbered text, or the files' names.
        reply.text = cards.length
          ? cardsAsText(payload.cards as Card[])
          : files.map((f) => f.name ?? f.type).join(', ');
        payload.textIsFallback = true;
      }
    })();
    // Awaited when the bot's hook returns (its failure is the hook's: the apology); until then a
    // failure must not count as unhandled (the hook may still be waiting on an LLM).
    stored.catch(() => undefined);
    draft.pending.push(stored);
  }

  get files(): BotContext['files'] {
    this.filesList ??= this.envelope.attachments.flatMap((a) =>
      a.fileId ? [{ id: a.fileId, name: a.name ?? 'file', type: a.type, size: a.size ?? 0 }] : [],
    );
    return this.filesList;
  }

  async file(ref: string): Promise<Attachment> {
    if (!this.reads.media) throw new Error('this hub has no file store: files cannot be sent');
    return this.reads.media(this.session.bot, ref);
  }

  async readFile(file: { fileId: string } | { id: string }): Promise<Buffer> {
    if (!this.reads.readFile) throw new Error('this hub has no file store');
    return this.reads.readFile('fileId' in file ? file.fileId : file.id);
  }

  get<T>(name: string): T | undefined {
    return own(this.draft.state.variables, name) as T | undefined;
  }

  set(name: string, value: unknown): void {
    if (value === undefined) delete this.draft.state.variables[name];
    else setOwn(this.draft.state.variables, name, value);
  }

  history(limit?: number): Promise<HistoryMessage[]> {
    const { session } = this.draft.snapshot;
    return this.reads.history(session.id, session.lastSeq, limit);
  }

  log(type: string, data?: unknown): void {
    this.draft.events.push({ type, data: data ?? {} });
  }

  end(reason?: string): void {
    this.draft.endReason = reason ?? 'ended by bot';
  }

  record(note: HistoryNote): void {
    const { draft } = this;
    draft.notes.push({
      role: note.role,
      text: note.text,
      payload: note.payload ?? {},
      after: draft.replies.length,
    });
  }

  handoff(options?: { agentId?: string | null; queue?: string | null }): void {
    this.draft.handoffRequest = { agentId: options?.agentId || null, queue: options?.queue || null };
  }

  async availableAgent(queue?: string | null): Promise<string> {
    return this.reads.availableAgent ? this.reads.availableAgent(queue ?? null) : '';
  }

  get llm(): BotLlm {
    return this[BIND_LLM](this);
  }

  /** A context derived from this one (a dialog's held-back turn) gets an LLM bound to itself. */
  [BIND_LLM](derived: BotContext): BotLlm {
    return this.llmProvider ? this.llmProvider(derived) : NO_LLM;
  }

  get [EFFECT_KEYS](): EffectKeys {
    return this.draft.effectKeys;
  }

  get sessions(): SessionControl {
    this.sessionControl ??= new SessionControl(this, this.draft.work, {
      reads: this.reads.sessions ?? NO_SESSIONS,
      bot: this.bot,
      turnId: this.draft.envelope.id,
    });
    return this.sessionControl;
  }
}

/**
 * Bot authors destructure `ctx` (`const { talk, set } = ctx`) and pass its methods on
 * (`items.forEach(ctx.log)`), as they could when it was an object of closures: the classes'
 * methods are bound to the instance in their constructors (a few bound functions a turn, far
 * cheaper than the closures).
 */
/** `ctx.memory`: the turn's own writes first, then the store. */
class DraftMemory {
  constructor(
    private readonly draft: TurnDraft,
    private readonly reads: TurnReads,
  ) {
    this.get = this.get.bind(this);
    this.set = this.set.bind(this);
  }

  async get(key: string): Promise<unknown> {
    return this.draft.memoryWrites.has(key) ? this.draft.memoryWrites.get(key) : this.reads.botMemory(key);
  }

  set(key: string, value: unknown): void {
    this.draft.memoryWrites.set(key, value);
  }
}

/** `ctx.user.memory`: the turn's own writes first, then the store (nothing without a user). */
class DraftUserMemory {
  constructor(
    private readonly draft: TurnDraft,
    private readonly reads: TurnReads,
    private readonly userId: string | null,
  ) {
    this.get = this.get.bind(this);
    this.set = this.set.bind(this);
  }

  async get(key: string): Promise<unknown> {
    if (this.draft.userMemoryWrites.has(key)) return this.draft.userMemoryWrites.get(key);
    return this.userId ? this.reads.userMemory(this.userId, key) : null;
  }

  set(key: string, value: unknown): void {
    this.draft.userMemoryWrites.set(key, value);
  }
}

function stateData(snapshot: SessionSnapshot): SessionStateData {
  const { version: _version, ...data } = snapshot.state;
  return data;
}

/**
 * The stored files a turn's messages carry — attachments and the pictures of reply cards — the
 * commit gives the unclaimed ones to the session. A card's picture is a `files` row of its own
 * (each `BotMedia.resolve` puts a new row; only the bytes are shared by content), so claiming it
 * is safe even for a bot's static media used in every card: unclaimed, the row had no session,
 * the stale-file sweep deleted it under a history still showing the card, and erasing the
 * session left it behind.
 */
function claimedFiles(
  inbound: readonly { fileId?: string }[],
  replies: readonly { payload: MessagePayload }[],
): { claimFiles?: string[] } {
  const ids = new Set<string>();
  const add = (list: unknown) => {
    if (!Array.isArray(list)) return;
    for (const a of list) {
      const id = (a as { fileId?: unknown } | null)?.fileId;
      if (typeof id === 'string') ids.add(id);
    }
  };
  add(inbound);
  for (const r of replies) {
    add(r.payload.attachments);
    if (Array.isArray(r.payload.cards))
      add(r.payload.cards.map((c) => (c as { image?: unknown } | null)?.image));
  }
  return ids.size > 0 ? { claimFiles: [...ids] } : {};
}

/** A file a bot named, as an attachment: stored ones as they are, media names and URLs stored first. */
function fileAttachment(
  ref: FileRef,
  store: (ref: string) => Promise<Attachment>,
): Attachment | Promise<Attachment> {
  if (typeof ref === 'string') return store(ref);
  if ('fileId' in ref || !('id' in ref)) return ref as Attachment;
  return { type: ref.type, name: ref.name, size: ref.size, fileId: ref.id };
}

/** A bot's card with its image stored (a media name or a URL the hub fetched), validated. */
async function storedCard(card: BotCard, store: (ref: string) => Promise<Attachment>): Promise<Card> {
  const { image, ...rest } = card;
  let stored: Card['image'];
  if (typeof image === 'string') {
    const file = await store(image).catch(failedPart(`image "${image}"`));
    stored = { fileId: file.fileId!, name: file.name, type: file.type };
  } else stored = image;
  const parsed = CardSchema.safeParse({ ...rest, ...(stored ? { image: stored } : {}) });
  if (!parsed.success)
    throw new ReplyPartError(
      parsed.error.issues.map((i) => `${i.path.join('.') || 'card'}: ${i.message}`).join('; '),
    );
  return parsed.data;
}

/**
 * A file or card of a reply (`ctx.talk`) that could not be sent: a media file that is not there,
 * a URL that failed, a card that is not valid. The hook that talked fails with it, as with any
 * error of the bot's code: the bot's apology, and what failed in `turn.bot_error`.
 */
export class ReplyPartError extends Error {
  override name = 'ReplyPartError';
}

/** Says which part of the reply failed; the cause's own message follows (no `cause`: not transient). */
const failedPart =
  (what: string) =>
  (err: unknown): never => {
    throw new ReplyPartError(`${what}: ${errorMessage(err)}`);
  };

const titled = (card: BotCard) => (typeof card.title === 'string' && card.title ? ` ("${card.title}")` : '');
