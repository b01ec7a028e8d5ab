import { type OutboundBatch, SendError, type SendOutcome } from '../../src/delivery/sender.ts';
import type { Logger } from '../../src/logger.ts';
import type { SessionRecord } from '../../src/store/records.ts';
import { type BotApi, botApiFailure } from './bot-api.ts';
import { toSendError } from './errors.ts';
import { planReply } from './outbound.ts';
import { TelegramReplyToSchema } from './reply-to.ts';

/** Replies half-sent (some pieces out) that this process remembers, so a retry sends only the rest. */
const MAX_PARTIAL_REPLIES = 10_000;

/**
 * Sends replies with `sendMessage`. A long reply takes several messages; a retry resumes after
 * the pieces that already went out, so nobody gets a piece twice. The channel message id of a
 * reply is `<chat id>:<message_id>` of its last piece.
 */
export class TelegramSender {
  private readonly partial = new Map<string, { pieces: number; lastId: string | undefined }>();

  constructor(
    private readonly api: BotApi,
    private readonly logger: Logger,
  ) {}

  async send(batch: OutboundBatch): Promise<SendOutcome[]> {
    const to = this.route(batch.session);
    const outcomes: SendOutcome[] = [];
    for (const reply of batch.replies) {
      const key = `${batch.session.id}:${reply.seq}`;
      const plan = planReply(reply, to);
      if (plan.droppedAttachments > 0)
        this.logger.warn({
          event: 'telegram.reply_trimmed',
          sessionId: batch.session.id,
          seq: reply.seq,
          droppedAttachments: plan.droppedAttachments,
        });
      const progress = this.partial.get(key) ?? { pieces: 0, lastId: undefined };
      for (let i = progress.pieces; i < plan.calls.length; i++) {
        try {
          const sent = await this.api.raw.sendMessage(plan.calls[i]!);
          progress.lastId = `${sent.chat.id}:${sent.message_id}`;
        } catch (err) {
          if (i > 0) this.remember(key, progress);
          const failure = botApiFailure(err);
          if (!failure) throw new SendError(String(err), { retryable: true, sent: outcomes, cause: err });
          throw toSendError(failure, outcomes);
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

  /** Shows "typing…" in the chat (Telegram clears it after 5 s, or when the answer arrives). */
  async typing(session: SessionRecord): Promise<void> {
    const to = TelegramReplyToSchema.safeParse(session.replyTo);
    if (!to.success) return;
    await this.api.raw.sendChatAction({
      chat_id: to.data.chatId,
      action: 'typing',
      ...(to.data.topicId !== undefined ? { message_thread_id: to.data.topicId } : {}),
    });
  }

  private route(session: SessionRecord) {
    const parsed = TelegramReplyToSchema.safeParse(session.replyTo);
    if (!parsed.success)
      throw new SendError(`session ${session.id} has no Telegram chat to answer`, { retryable: false });
    return parsed.data;
  }

  private remember(key: string, progress: { pieces: number; lastId: string | undefined }): void {
    if (this.partial.size >= MAX_PARTIAL_REPLIES) {
      const oldest = this.partial.keys().next().value;
      if (oldest !== undefined) this.partial.delete(oldest);
    }
    this.partial.set(key, progress);
  }
}
