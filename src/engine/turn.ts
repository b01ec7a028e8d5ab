import { randomUUID } from 'node:crypto';
import { type Card, CardSchema, cardsAsText } from '../cards/card.ts';
import { deepCopy } from '../clone.ts';
import type { Attachment, Envelope } from '../envelope.ts';
import { RATING_SUGGESTIONS } from '../lifecycle/rating.ts';
import type { Logger } from '../logger.ts';
import { own, setOwn } from '../own.ts';
import type { DeliveryStatus, MessagePayload, SessionSnapshot, SessionStateData } from '../store/records.ts';
import type { TurnWrite } from '../store/turns.ts';
import {
  type BotCard,
  type BotContext,
  type BotLlm,
  type FileRef,
  type HistoryMessage,
  type HistoryNote,
  NO_LLM,
  normalizeTalk,
  type ReplyContent,
  type ReplyOptions,
  type SessionInfo,
} from './bot.ts';
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

/** Gives a turn's BotContext its LLM (the hub's LLM service); without one, bots have none. */
export type LlmProvider = (ctx: BotContext) => BotLlm;

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
  state: SessionStateData;
  endReason: string | undefined;
  handoffRequest: HandoffRequest | undefined;
  /** The hub asks for a rating as the session ends (`sessions.askRating`). */
  ratingAsk: { nativeKey: string; until: Date } | undefined;
  /** This message answers the ended session's rating ask. */
  ratingAnswer: { score: number } | undefined;

  constructor(
    readonly snapshot: SessionSnapshot,
    readonly envelope: Envelope,
  ) {
    this.state = deepCopy(stateData(snapshot));
    if (envelope.kind === 'end') this.endReason = envelope.end?.reason ?? 'ended';
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
    const memory = new Map(this.memoryWrites);
    const userMemory = new Map(this.userMemoryWrites);
    const events = this.events.length;
    const endReason = this.endReason;
    const work = this.work.copy();
    const handoffRequest = this.handoffRequest;
    return {
      rollback: () => {
        this.work.replaceWith(work);
        this.state = deepCopy(state);
        this.replies.length = replies;
        this.notes.length = notes;
        this.memoryWrites.clear();
        for (const [k, v] of memory) this.memoryWrites.set(k, v);
        this.userMemoryWrites.clear();
        for (const [k, v] of userMemory) this.userMemoryWrites.set(k, v);
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
    const { session } = this.snapshot;
    const info: SessionInfo = {
      id: session.id,
      bot: session.bot,
      channel: session.channel,
      userId: session.userId,
      authLevel: session.authLevel,
      createdAt: session.createdAt,
      lastActivityAt: session.lastActivityAt,
      lastInteractionAt: this.isNewSession
        ? typeof session.meta.lastInteractionAt === 'string'
          ? session.meta.lastInteractionAt
          : null
        : session.lastActivityAt,
      messageCount: session.messageCount + (this.envelope.kind === 'message' ? 1 : 0),
      isNew: this.isNewSession,
    };
    const draft = this;
    let sessions: SessionControl | undefined;
    const ctx: BotContext = {
      session: info,
      envelope: this.envelope,
      kind: this.envelope.kind,
      text: this.envelope.kind === 'message' ? this.envelope.text : '',
      logger,
      get state() {
        return draft.state;
      },
      talk(content: ReplyContent, more?: ReplyOptions) {
        const { text, options } = normalizeTalk(content, more);
        const payload: MessagePayload = {};
        if (options?.suggestions?.length) payload.suggestions = options.suggestions;
        const reply = { text, payload };
        draft.replies.push(reply);
        const attachments: (Attachment | Promise<Attachment>)[] = [...(options?.attachments ?? [])];
        for (const ref of options?.files ?? []) attachments.push(fileAttachment(ref, (r) => ctx.file(r)));
        const cards = [...(options?.card ? [options.card] : []), ...(options?.cards ?? [])];
        if (attachments.length === 0 && cards.length === 0) return;
        draft.pending.push(
          (async () => {
            const files = await Promise.all(attachments);
            if (files.length) payload.attachments = files;
            if (cards.length)
              payload.cards = await Promise.all(cards.map((c) => storedCard(c, (r) => ctx.file(r))));
            if (reply.text.trim() === '') {
              // Channels that show only text get the cards as numbered text, or the files' names.
              reply.text = cards.length
                ? cardsAsText(payload.cards as Card[])
                : files.map((f) => f.name ?? f.type).join(', ');
              payload.textIsFallback = true;
            }
          })(),
        );
      },
      files: draft.envelope.attachments.flatMap((a) =>
        a.fileId ? [{ id: a.fileId, name: a.name ?? 'file', type: a.type, size: a.size ?? 0 }] : [],
      ),
      async file(ref: string) {
        if (!reads.media) throw new Error('this hub has no file store: files cannot be sent');
        return reads.media(session.bot, ref);
      },
      async readFile(file) {
        if (!reads.readFile) throw new Error('this hub has no file store');
        return reads.readFile('fileId' in file ? file.fileId : file.id);
      },
      get<T>(name: string) {
        return own(draft.state.variables, name) as T | undefined;
      },
      set(name: string, value: unknown) {
        if (value === undefined) delete draft.state.variables[name];
        else setOwn(draft.state.variables, name, value);
      },
      memory: {
        async get(key: string) {
          return draft.memoryWrites.has(key) ? draft.memoryWrites.get(key) : reads.botMemory(key);
        },
        set(key: string, value: unknown) {
          draft.memoryWrites.set(key, value);
        },
      },
      user: {
        id: session.userId,
        memory: {
          async get(key: string) {
            if (draft.userMemoryWrites.has(key)) return draft.userMemoryWrites.get(key);
            return session.userId ? reads.userMemory(session.userId, key) : null;
          },
          set(key: string, value: unknown) {
            draft.userMemoryWrites.set(key, value);
          },
        },
      },
      history(limit?: number) {
        return reads.history(session.id, session.lastSeq, limit);
      },
      log(type: string, data?: unknown) {
        draft.events.push({ type, data: data ?? {} });
      },
      end(reason?: string) {
        draft.endReason = reason ?? 'ended by bot';
      },
      record(note: HistoryNote) {
        draft.notes.push({
          role: note.role,
          text: note.text,
          payload: note.payload ?? {},
          after: draft.replies.length,
        });
      },
      handoff(options) {
        draft.handoffRequest = { agentId: options?.agentId || null, queue: options?.queue || null };
      },
      async availableAgent(queue) {
        return reads.availableAgent ? reads.availableAgent(queue ?? null) : '';
      },
      // A getter, so that a context derived from this one (a dialog's held-back turn) gets an LLM bound to itself.
      get llm(): BotLlm {
        return llm ? llm(this) : NO_LLM;
      },
      get sessions(): SessionControl {
        sessions ??= new SessionControl(ctx, draft.work, {
          reads: reads.sessions ?? NO_SESSIONS,
          bot,
          turnId: draft.envelope.id,
        });
        return sessions;
      },
    };
    return ctx;
  }

  /** Replies and notes in the order the bot made them, numbered after the inbound message. */
  private sequence(inboundSeq: number) {
    const replies: (DraftReply & { seq: number })[] = [];
    const notes: (DraftNote & { seq: number })[] = [];
    let seq = inboundSeq;
    for (let i = 0; i <= this.replies.length; i++) {
      for (const note of this.notes) if (note.after === i) notes.push({ ...note, seq: ++seq });
      const reply = this.replies[i];
      if (reply) replies.push({ ...reply, seq: ++seq });
    }
    return { replies, notes, lastSeq: seq };
  }

  toWrite(options: { at: Date; replyStatus: DeliveryStatus; expiresAt: Date | null }): TurnWrite {
    const { session, state } = this.snapshot;
    const inboundSeq = session.lastSeq + 1;
    const env = this.envelope;
    const inboundPayload: MessagePayload = {};
    const { replies, notes, lastSeq } = this.sequence(inboundSeq);
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
      replies: replies.map((r) => ({
        seq: r.seq,
        content: r.text,
        payload: r.payload,
        deliveryStatus: options.replyStatus,
      })),
      notes: notes.map((n) => ({ seq: n.seq, role: n.role, content: n.text, payload: n.payload })),
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
    const now = write.at;
    const { session, state } = this.snapshot;
    return {
      session: {
        ...session,
        lastSeq: write.lastSeq,
        messageCount: session.messageCount + write.messageCountDelta,
        lastActivityAt: write.touchesActivity === false ? session.lastActivityAt : now.toISOString(),
        replyTo: write.replyTo ?? session.replyTo,
        expiresAt: write.expiresAt ? write.expiresAt.toISOString() : null,
        endedAt: write.end ? (session.endedAt ?? now.toISOString()) : session.endedAt,
        userId: write.userId === undefined ? session.userId : write.userId,
      },
      state: { ...write.state, version: state.version + 1 },
    };
  }
}

function stateData(snapshot: SessionSnapshot): SessionStateData {
  const { version: _version, ...data } = snapshot.state;
  return data;
}

/** The stored files a turn's messages carry: the commit gives the unclaimed ones to the session. */
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
  for (const r of replies) add(r.payload.attachments);
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
    const file = await store(image);
    stored = { fileId: file.fileId!, name: file.name, type: file.type };
  } else stored = image;
  return CardSchema.parse({ ...rest, ...(stored ? { image: stored } : {}) });
}
