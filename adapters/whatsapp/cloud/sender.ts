import { type OutboundBatch, SendError, type SendOutcome } from '../../../src/delivery/sender.ts';
import type { Logger } from '../../../src/logger.ts';
import type { SessionRecord } from '../../../src/store/records.ts';
import type { RecipientPacer } from '../pacing.ts';
import type { CloudReplyTo } from '../reply-to.ts';
import { toSendError } from './errors.ts';
import { type GraphClient, GraphRequestError } from './graph.ts';
import { planReply } from './outbound.ts';

/** The customer service window: free-form messages may follow the person's last message for this long. */
export const CUSTOMER_SERVICE_WINDOW_MS = 24 * 3_600_000;
/** Replies half-sent (some pieces out) that this process remembers, so a retry sends only the rest. */
const MAX_PARTIAL_REPLIES = 10_000;

/**
 * Sends replies through the Cloud API. A reply may take several messages (long text, then the
 * buttons); a retry resumes after the pieces that already went out, so nobody gets a piece twice.
 */
export class CloudSender {
  /** `${sessionId}:${seq}` → pieces of that reply already sent. */
  private readonly partial = new Map<string, { pieces: number; lastId: string | undefined }>();

  constructor(
    private readonly graph: GraphClient,
    private readonly pacer: RecipientPacer,
    private readonly logger: Logger,
  ) {}

  async send(batch: OutboundBatch, to: CloudReplyTo): Promise<SendOutcome[]> {
    // Template messages may go out at any time; anything else only inside the window.
    if (!windowOpen(to) && batch.replies.some((r) => !r.payload.template)) {
      throw new SendError(
        `outside WhatsApp's 24-hour customer service window: ${to.at ? `the person last wrote at ${to.at}` : 'the person never wrote'}; only a template message can reach them until they write again`,
        { retryable: false },
      );
    }
    const outcomes: SendOutcome[] = [];
    for (const reply of batch.replies) {
      const key = `${batch.session.id}:${reply.seq}`;
      const plan = planReply(reply, to.waId);
      if (plan.droppedSuggestions > 0 || plan.droppedAttachments > 0)
        this.logger.warn({
          event: 'whatsapp.reply_trimmed',
          sessionId: batch.session.id,
          seq: reply.seq,
          droppedSuggestions: plan.droppedSuggestions,
          droppedAttachments: plan.droppedAttachments,
        });
      const progress = this.partial.get(key) ?? { pieces: 0, lastId: undefined };
      for (let i = progress.pieces; i < plan.messages.length; i++) {
        await this.pacer.wait(to.waId);
        try {
          progress.lastId =
            (await this.graph.postMessage(to.phoneNumberId, plan.messages[i]!)) ?? progress.lastId;
        } catch (err) {
          if (i > 0) this.remember(key, progress);
          if (!(err instanceof GraphRequestError))
            throw new SendError(String(err), { retryable: true, sent: outcomes });
          throw toSendError(err, outcomes);
        }
        progress.pieces = i + 1;
      }
      this.partial.delete(key);
      outcomes.push({
        seq: reply.seq,
        status: 'sent',
        ...(progress.lastId ? { channelMessageId: progress.lastId } : {}),
      });
    }
    return outcomes;
  }

  /** Marks the person's last message read and shows "typing…" (up to 25 s, or until we answer). */
  async typing(session: SessionRecord, to: CloudReplyTo): Promise<void> {
    if (!windowOpen(to) || !to.messageId) return;
    await this.graph.postMessage(to.phoneNumberId, {
      status: 'read',
      message_id: to.messageId,
      typing_indicator: { type: 'text' },
    });
    this.logger.debug({ event: 'whatsapp.typing', sessionId: session.id });
  }

  private remember(key: string, progress: { pieces: number; lastId: string | undefined }): void {
    if (this.partial.size >= MAX_PARTIAL_REPLIES) {
      const oldest = this.partial.keys().next().value;
      if (oldest !== undefined) this.partial.delete(oldest);
    }
    this.partial.set(key, progress);
  }
}

/** Whether the person wrote within the last 24 hours (free-form messages may reach them). */
export function windowOpen(to: Pick<CloudReplyTo, 'at'>, now = Date.now()): boolean {
  return to.at !== undefined && now - Date.parse(to.at) <= CUSTOMER_SERVICE_WINDOW_MS;
}
