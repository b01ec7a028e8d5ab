import { randomUUID } from 'node:crypto';
import type { Bus } from '../../../src/bus/bus.ts';
import { type OutboundBatch, SendError, type SendOutcome } from '../../../src/delivery/sender.ts';
import type { Logger } from '../../../src/logger.ts';
import type { RecipientPacer } from '../pacing.ts';
import type { WebReplyTo } from '../reply-to.ts';
import { replyTopic, SEND_TOPIC, type SendAnswer, SendAnswerSchema, type SendRequest } from './protocol.ts';

interface Waiting {
  resolve(answer: SendAnswer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Sends replies through the gateway that holds the WhatsApp Web session, from any process: a
 * request on the bus, answered on this process's own topic. No answer in time throws a
 * retryable SendError, so the delivery tries again later and nothing is lost; the gateway
 * recognises the retried piece by its key and does not send it twice.
 */
export class WebSender {
  private readonly topic = replyTopic(randomUUID());
  private readonly waiting = new Map<string, Waiting>();
  private subscription: Promise<() => Promise<void>> | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly timeoutMs: number,
    private readonly pacer: RecipientPacer,
    private readonly logger: Logger,
  ) {}

  async send(batch: OutboundBatch, to: WebReplyTo): Promise<SendOutcome[]> {
    await this.listen();
    const outcomes: SendOutcome[] = [];
    for (const reply of batch.replies) {
      const text = withSuggestions(reply.text, reply.payload.suggestions ?? []);
      if (text.trim() === '') {
        outcomes.push({ seq: reply.seq, status: 'sent' });
        continue;
      }
      if ((reply.payload.attachments?.length ?? 0) > 0)
        this.logger.warn({
          event: 'whatsapp.web_attachments_dropped',
          sessionId: batch.session.id,
          seq: reply.seq,
        });
      await this.pacer.wait(to.chatId);
      let answer: SendAnswer;
      try {
        answer = await this.ask({
          type: 'whatsapp-web.send',
          requestId: randomUUID(),
          key: `${batch.session.id}:${reply.seq}`,
          chatId: to.chatId,
          text,
          replyTopic: this.topic,
        });
      } catch (err) {
        throw new SendError((err as Error).message, { retryable: true, sent: outcomes, cause: err });
      }
      if (!answer.ok) throw new SendError(answer.error, { retryable: answer.retryable, sent: outcomes });
      outcomes.push({ seq: reply.seq, status: 'sent', channelMessageId: answer.messageId });
    }
    return outcomes;
  }

  async close(): Promise<void> {
    for (const [id, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(new Error('WhatsApp Web sender stopped'));
      this.waiting.delete(id);
    }
    const unsubscribe = await this.subscription?.catch(() => undefined);
    this.subscription = undefined;
    await unsubscribe?.().catch(() => undefined);
  }

  private listen(): Promise<unknown> {
    this.subscription ??= this.bus.subscribe(this.topic, (message) => {
      const parsed = SendAnswerSchema.safeParse(message);
      if (!parsed.success) return;
      const w = this.waiting.get(parsed.data.requestId);
      if (!w) return;
      this.waiting.delete(parsed.data.requestId);
      clearTimeout(w.timer);
      w.resolve(parsed.data);
    });
    this.subscription.catch(() => {
      this.subscription = undefined;
    });
    return this.subscription;
  }

  private ask(request: SendRequest): Promise<SendAnswer> {
    return new Promise<SendAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(request.requestId);
        reject(
          new Error(
            `no WhatsApp Web gateway confirmed the send within ${this.timeoutMs} ms (is a gateway with WHATSAPP_WEB=on running and linked?)`,
          ),
        );
      }, this.timeoutMs);
      this.waiting.set(request.requestId, { resolve, reject, timer });
      this.bus.publish(SEND_TOPIC, request).catch((err: Error) => {
        clearTimeout(timer);
        this.waiting.delete(request.requestId);
        reject(err);
      });
    });
  }
}

/** WhatsApp Web has no buttons a linked device can send: suggestions become a list of lines. */
export function withSuggestions(text: string, suggestions: { text: string }[]): string {
  if (suggestions.length === 0) return text;
  const lines = suggestions.map((s) => `• ${s.text}`).join('\n');
  return text.trim() === '' ? lines : `${text}\n\n${lines}`;
}
