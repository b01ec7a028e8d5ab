import type { CardImage, CardInput } from '../cards/card.ts';
import type { Attachment, Channel, Envelope, EnvelopeKind } from '../envelope.ts';
import type { Logger } from '../logger.ts';
import type { AuthLevel, MessagePayload, SessionStateData, Suggestion } from '../store/records.ts';
import type { SessionControl } from './session-control.ts';

/** A file a bot sends: a name in its `media/` folder, an https URL, or a stored file (`ctx.files[i]`, `ctx.file(…)`). */
export type FileRef = string | Attachment | MessageFile;

/** A card as a bot writes it: the image may be a media name or an https URL. */
export type BotCard = Omit<CardInput, 'image'> & { image?: string | CardImage };

export interface ReplyOptions {
  suggestions?: Suggestion[];
  attachments?: Attachment[];
  /** Files sent with the reply (the text is their caption). */
  files?: FileRef[];
  /** A card; `cards`: several, a carousel. A value button comes back as the person's message. */
  card?: BotCard;
  cards?: BotCard[];
}

/** What `ctx.talk` takes: text, or a reply with a card, files and text at once. */
export type ReplyContent = string | ({ text?: string } & ReplyOptions);

/** A file the person sent with this message, in the hub's file store. */
export interface MessageFile {
  id: string;
  name: string;
  /** Sniffed from the bytes. */
  type: string;
  size: number;
}

/** What a bot can know about the session it is answering in. */
export interface SessionInfo {
  id: string;
  bot: string;
  channel: Channel;
  userId: string | null;
  authLevel: AuthLevel;
  createdAt: string;
  /** When this session last saw activity before the current message. */
  lastActivityAt: string;
  /**
   * When this person was last here before the current message: this session's last activity, or
   * on a session's first turn, the end of their previous session with the bot (null if none).
   */
  lastInteractionAt: string | null;
  /** Messages the person has sent in this session, the current one included. */
  messageCount: number;
  /** True on the session's first turn. */
  isNew: boolean;
  /** Inside RUN IN SESSION: the session whose sub-session this is. */
  parentId?: string;
}

/** The handle a bot gets for one turn. Everything it changes is committed with the turn, or not at all. */
export interface BotContext {
  readonly session: SessionInfo;
  readonly envelope: Envelope;
  readonly kind: EnvelopeKind;
  /** What the person wrote (empty for `start` and `end`). */
  readonly text: string;
  /**
   * Sends a reply. Replies go out in the order they are talked. Files named by media name or
   * URL are brought into the file store before the turn commits. An empty (or blank) text with
   * no file or card is no reply at all: channels refuse empty texts.
   */
  talk(content: ReplyContent, options?: ReplyOptions): void;
  /** The files the person sent with this message (`GET SESSION "files"` in scripts). */
  readonly files: readonly MessageFile[];
  /** A file of the bot's `media/` folder or an https URL, stored: for `talk({ files })` or a card's image. */
  file(ref: string): Promise<Attachment>;
  /** The bytes of a stored file (the person's upload, a bot's media). */
  readFile(file: { fileId: string } | { id: string }): Promise<Buffer>;
  /** A session variable, kept across messages and days. */
  get<T = unknown>(name: string): T | undefined;
  set(name: string, value: unknown): void;
  /** Context strings, knowledge bases, tools, suggestions and dialog position: change in place. */
  readonly state: SessionStateData;
  /** Memory shared by every session of this bot. */
  readonly memory: {
    get(key: string): Promise<unknown>;
    set(key: string, value: unknown): void;
  };
  /**
   * The person behind the session. Their memory follows them into later sessions and across the
   * channel identities linked to them; a session without a user gets one when it first writes.
   */
  readonly user: {
    readonly id: string | null;
    readonly memory: {
      get(key: string): Promise<unknown>;
      set(key: string, value: unknown): void;
    };
  };
  /** The latest messages of this session's history, oldest first, at most the bot's history limit. */
  history(limit?: number): Promise<HistoryMessage[]>;
  /** Records a session event (analytics, audit). */
  log(type: string, data?: unknown): void;
  /** Ends the session once this turn is committed. */
  end(reason?: string): void;
  /** Adds a row to the history that is not a reply (a tool's result): committed with the turn, never sent. */
  record(note: HistoryNote): void;
  /** The bot's LLM (`llm` in bot.json): context assembly, knowledge, tools and streaming included. */
  readonly llm: BotLlm;
  /**
   * Other sessions and this one's make-up: `send` (SEND TO SESSION), `createSub`, `runIn`, `merge`
   * (sub-sessions), `applyTemplate` (APPLY SESSION TEMPLATE), `debugShow` (DEBUG SHOW).
   */
  readonly sessions: SessionControl;
  /**
   * Hands the session to people once this turn is committed (`TRANSFER SESSION`): to `agentId`
   * (assigned at once), or without one to the waiting queue (`queue`, optional). It does not
   * wait: the turn goes on. While people hold the session the bot gets no turns; `onTransferEnd`
   * runs when it comes back.
   */
  handoff(options?: { agentId?: string | null; queue?: string | null }): void;
  /**
   * `GET AVAILABLE AGENT`: an available agent with free capacity who serves this bot (and the
   * queue), least loaded first; "" when there is none.
   */
  availableAgent(queue?: string | null): Promise<string>;
  readonly logger: Logger;
}

export interface HistoryMessage {
  seq: number;
  role: 'user' | 'assistant' | 'agent' | 'system' | 'tool' | 'note';
  text: string;
  createdAt: string;
}

export interface HistoryNote {
  role: 'tool';
  text: string;
  payload?: MessagePayload;
}

/** What a bot asks its LLM. Without an `llm` block in bot.json, `configured` is false and both calls fail. */
export interface BotLlm {
  readonly configured: boolean;
  /**
   * Answers the person's message (or `prompt`) and talks the answer; on the web it streams while
   * the model writes. Returns the answer.
   */
  reply(options?: { prompt?: string }): Promise<string>;
  /** Asks with the session's context and returns the answer without talking it (`x = LLM "…"`). */
  ask(prompt: string): Promise<string>;
}

export class NoLlmConfiguredError extends Error {
  override name = 'NoLlmConfiguredError';
  constructor() {
    super('no LLM is configured for this bot');
  }
}

/** The LLM of a bot that has none. */
export const NO_LLM: BotLlm = {
  configured: false,
  reply: () => Promise.reject(new NoLlmConfiguredError()),
  ask: () => Promise.reject(new NoLlmConfiguredError()),
};

/**
 * A context that can give its LLM to a context derived from it (a dialog's held-back turn, a
 * sub-session): the LLM sees the derived context's state.
 */
export const BIND_LLM: unique symbol = Symbol('switchboard.bindLlm');
export interface LlmBinder {
  [BIND_LLM](derived: BotContext): BotLlm;
}

/** `parent`'s LLM bound to `derived`; a context that cannot bind (a test's own) gives its own. */
export function llmBoundTo(parent: BotContext, derived: BotContext): BotLlm {
  const bind = (parent as BotContext & Partial<LlmBinder>)[BIND_LLM];
  return bind ? bind.call(parent, derived) : parent.llm;
}

export type Hook = (ctx: BotContext) => void | Promise<void>;

/** A bot written in TypeScript: `config/bots/<name>/handler.ts` default-exports one. */
export interface BotHandler {
  /** The session's first turn, before any message: the greeting. */
  onStart?: Hook;
  onMessage: Hook;
  /** The session is ending (the user or an operator ended it, or it idled out). */
  onEnd?: Hook;
  /**
   * People gave the session back (`ON TRANSFER END`): `ctx.envelope.end.reason` is `released`,
   * `timeout` or `agent_offline`. The person's next message goes to the bot again.
   */
  onTransferEnd?: Hook;
}

/** Typed identity helper for handler modules: `export default defineBot({ ... })`. */
export function defineBot(handler: BotHandler): BotHandler {
  return handler;
}

/** `talk`'s two forms as one: the text, and the options (a reply object's fields merged in). */
export function normalizeTalk(
  content: ReplyContent,
  options?: ReplyOptions,
): { text: string; options: ReplyOptions | undefined } {
  if (typeof content !== 'object' || content === null) return { text: String(content ?? ''), options };
  const { text, ...rest } = content;
  return { text: text === undefined ? '' : String(text), options: { ...rest, ...options } };
}
