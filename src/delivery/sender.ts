import type { MessagePayload, SessionRecord } from '../store/records.ts';

export interface OutboundReply {
  seq: number;
  text: string;
  payload: MessagePayload;
}

/** The replies one turn produced for one session, to be sent in order. */
export interface OutboundBatch {
  session: SessionRecord;
  /** The envelope these replies answer. */
  inReplyTo: string;
  replies: OutboundReply[];
}

export interface SendOutcome {
  seq: number;
  /** The platform's id for the sent message (a wamid, an activity id, a Message-ID). */
  channelMessageId?: string;
  /** `delivered` when the platform confirms delivery in its answer; `sent` otherwise. */
  status?: 'sent' | 'delivered';
}

/**
 * A send that did not (fully) succeed. `sent` lists the replies that did go out before it
 * failed, so a retry sends only the rest. `retryable: false` means retrying cannot help
 * (bad recipient, outside the platform's messaging window).
 */
export class SendError extends Error {
  override name = 'SendError';
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly sent: SendOutcome[];

  constructor(
    message: string,
    options: { retryable: boolean; retryAfterMs?: number; sent?: SendOutcome[]; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.sent = options.sent ?? [];
  }
}

/** One channel's way out. Throws SendError; any other error counts as retryable. */
export interface ChannelSender {
  send(batch: OutboundBatch): Promise<SendOutcome[]>;
  /**
   * The platform's pacing per recipient: at most `count` messages to one person in any
   * `windowMs`, across every worker. Delivery then sends one reply at a time and waits rather
   * than exceed it. The recipient is the session's native identity unless `recipient` says.
   */
  recipientLimit?: { count: number; windowMs: number; recipient?: (session: SessionRecord) => string };
  /** Shows "typing…" to the person while the engine works. Best effort: failures are only logged. */
  typing?(session: SessionRecord): Promise<void>;
}
