import type { Attachment, Channel, Envelope, EnvelopeKind } from '../envelope.ts';
import type { Logger } from '../logger.ts';
import type { AuthLevel, SessionStateData, Suggestion } from '../store/records.ts';

export interface ReplyOptions {
  suggestions?: Suggestion[];
  attachments?: Attachment[];
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
  /** Messages the person has sent in this session, the current one included. */
  messageCount: number;
  /** True on the session's first turn. */
  isNew: boolean;
}

/** The handle a bot gets for one turn. Everything it changes is committed with the turn, or not at all. */
export interface BotContext {
  readonly session: SessionInfo;
  readonly envelope: Envelope;
  readonly kind: EnvelopeKind;
  /** What the person wrote (empty for `start` and `end`). */
  readonly text: string;
  /** Sends a reply. Replies go out in the order they are talked. */
  talk(text: string, options?: ReplyOptions): void;
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
  /** Records a session event (analytics, audit). */
  log(type: string, data?: unknown): void;
  /** Ends the session once this turn is committed. */
  end(reason?: string): void;
  readonly logger: Logger;
}

export type Hook = (ctx: BotContext) => void | Promise<void>;

/** A bot written in TypeScript: `config/bots/<name>/handler.ts` default-exports one. */
export interface BotHandler {
  /** The session's first turn, before any message: the greeting. */
  onStart?: Hook;
  onMessage: Hook;
  /** The session is ending (the user or an operator ended it, or it idled out). */
  onEnd?: Hook;
}

/** Typed identity helper for handler modules: `export default defineBot({ ... })`. */
export function defineBot(handler: BotHandler): BotHandler {
  return handler;
}
