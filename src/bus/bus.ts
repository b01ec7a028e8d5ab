/**
 * Pub/sub between the processes of one hub: a worker tells the gateways that a turn finished,
 * so `POST /api/chat` can answer and a web socket can be fed wherever it is connected.
 * Delivery is best-effort: anything published is also in PostgreSQL.
 */
export interface Bus {
  publish(topic: string, message: unknown): Promise<void>;
  /** Returns the function that ends the subscription. */
  subscribe(topic: string, handler: (message: unknown) => void): Promise<() => Promise<void>>;
  /**
   * Calls `listener` each time this process's subscriptions were lost (its pub/sub connection
   * dropped: Redis restarted, the network, Redis cutting a subscriber that read too slowly) and
   * are back: whatever was published meanwhile never arrived here, and a listener that was fed
   * by it reads it again from PostgreSQL. Returns the function that stops calling it.
   */
  onResubscribed(listener: () => void): () => void;
  close(): Promise<void>;
}

/** Published when the engine starts on a person's message: channels show "typing…". */
export interface TurnStarted {
  type: 'turn.started';
  sessionId: string;
  envelopeId: string;
}

/** Published when a session's turn is committed; carries what a gateway needs to push it on. */
export interface TurnCompleted {
  type: 'turn.completed';
  sessionId: string;
  bot: string;
  channel: string;
  envelopeId: string;
  replies: { seq: number; text: string; payload: Record<string, unknown>; createdAt: string }[];
  /** The session is not open after this turn: the turn ended it, or there was no open session for it. */
  ended?: true;
  /** Why this turn ended the session (`idle`: a newer session took its place and its token). */
  endReason?: string;
}

/**
 * A streamed part of a reply while the bot is still producing it (an LLM streaming tokens), so
 * that the web widget can show the reply growing. `index` counts from 0 per envelope; `text` is
 * the new part only. Best-effort: the committed reply in `turn.completed` is the truth.
 */
export interface TurnChunk {
  type: 'turn.chunk';
  sessionId: string;
  envelopeId: string;
  index: number;
  text: string;
}

/**
 * Published when a session's token was replaced (a sign-in): every client still holding another
 * token is disconnected, wherever it is connected. `tokenHash` (base64url SHA-256, never the
 * token) lets the holder of the new token stay.
 */
export interface TokenReplaced {
  type: 'token.replaced';
  sessionId: string;
  tokenHash: string;
}

/**
 * Published while a person at the business types an answer (the agent console), so that live
 * channels show "typing…" as they do while the bot works. Best-effort, like the bot's.
 */
export interface AgentTyping {
  type: 'agent.typing';
  sessionId: string;
}

/**
 * Published when a session was erased with its person (`DELETE /api/users/{id}`): a client still
 * connected to it is told that it ended, wherever it is connected, rather than writing into a
 * session that is gone.
 */
export interface SessionErased {
  type: 'session.erased';
  sessionId: string;
}

/** What is published on a session's topic. */
export type SessionEvent =
  | TurnStarted
  | TurnCompleted
  | TurnChunk
  | TokenReplaced
  | AgentTyping
  | SessionErased;

export const sessionTopic = (sessionId: string) => `session:${sessionId}`;
