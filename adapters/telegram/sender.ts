import { InputFile } from 'grammy';
import type { AdapterStore } from '../../src/channels/host-services.ts';
import { type OutboundBatch, SendError, type SendOutcome } from '../../src/delivery/sender.ts';
import type { FileStore } from '../../src/files/store.ts';
import type { Logger } from '../../src/logger.ts';
import type { SessionRecord } from '../../src/store/records.ts';
import { type BotApi, botApiFailure } from './bot-api.ts';
import { toSendError } from './errors.ts';
import { CALLBACK_VALUE_KEY, CALLBACK_VALUE_TTL_MS, planCalls, type TelegramCall } from './outbound.ts';
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
    /** The store's files (SHOW IMAGE, SEND FILE, card images), and where long button values are kept. */
    private readonly media?: { files: FileStore; store: AdapterStore },
  ) {}

  /** One call of a plan: text with `sendMessage`, a file with `sendPhoto`/`sendDocument` (multipart). */
  private async call(call: TelegramCall): Promise<{ chat: { id: number }; message_id: number } | undefined> {
    if (call.method === 'sendMessage') {
      const { method: _, ...args } = call;
      return this.api.raw.sendMessage(args);
    }
    const { method, file, ...args } = call;
    let input: InputFile | string;
    if ('url' in file) input = file.url;
    else {
      const stored = await this.media?.files.get(file.fileId);
      if (!stored) return undefined;
      // Streamed from the store into the multipart body: never a path (InputFile reads strings as one).
      input = new InputFile(this.media!.files.stream(stored), file.name ?? stored.name);
    }
    return method === 'sendPhoto'
      ? this.api.raw.sendPhoto({ ...args, photo: input })
      : this.api.raw.sendDocument({ ...args, document: input });
  }

  async send(batch: OutboundBatch): Promise<SendOutcome[]> {
    const to = this.route(batch.session);
    const outcomes: SendOutcome[] = [];
    for (const reply of batch.replies) {
      const key = `${batch.session.id}:${reply.seq}`;
      const plan = planCalls(reply, to, batch.session.id);
      // A button value longer than callback_data's 64 bytes goes as a key; the value is kept first,
      // as the session's (it goes with the session: its end, its removal, an erasure).
      for (const { key: valueKey, value } of plan.longValues)
        await this.media?.store.set(`${CALLBACK_VALUE_KEY}${valueKey}`, value, {
          sessionId: batch.session.id,
          ttlMs: CALLBACK_VALUE_TTL_MS,
        });
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
          const sent = await this.call(plan.calls[i]!);
          if (sent) progress.lastId = `${sent.chat.id}:${sent.message_id}`;
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
