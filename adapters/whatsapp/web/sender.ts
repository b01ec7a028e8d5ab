import { randomUUID } from 'node:crypto';
import type { Bus } from '../../../src/bus/bus.ts';
import { cardChoices, cardsAsText } from '../../../src/cards/card.ts';
import { type OutboundBatch, SendError, type SendOutcome } from '../../../src/delivery/sender.ts';
import { payloadCards } from '../../../src/files/client-view.ts';
import type { Logger } from '../../../src/logger.ts';
import { type Choice, type NumberedChoices, numberedLines } from '../choices.ts';
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
    /** Remembers the numbered choices each reply offered (a "2" then answers with the second). */
    private readonly choices?: NumberedChoices,
  ) {}

  async send(batch: OutboundBatch, to: WebReplyTo): Promise<SendOutcome[]> {
    await this.listen();
    const outcomes: SendOutcome[] = [];
    for (const reply of batch.replies) {
      const plan = planWebReply(reply);
      if (plan.dropped > 0)
        this.logger.warn({
          event: 'whatsapp.web_attachments_dropped',
          sessionId: batch.session.id,
          seq: reply.seq,
          dropped: plan.dropped,
        });
      // Remembered before it is sent: the person can answer as soon as they see the numbers.
      await this.choices?.offered(batch.session, plan.choices);
      let lastId: string | undefined;
      for (const [i, piece] of plan.pieces.entries()) {
        await this.pacer.wait(to.chatId);
        let answer: SendAnswer;
        try {
          answer = await this.ask({
            type: 'whatsapp-web.send',
            requestId: randomUUID(),
            // The text keeps the reply's key; each file has its own, so a retry resends only what is missing.
            key:
              i === 0 && !piece.file
                ? `${batch.session.id}:${reply.seq}`
                : `${batch.session.id}:${reply.seq}:${i}`,
            chatId: to.chatId,
            text: piece.text,
            ...(piece.file ? { file: piece.file } : {}),
            replyTopic: this.topic,
          });
        } catch (err) {
          throw new SendError((err as Error).message, { retryable: true, sent: outcomes, cause: err });
        }
        if (!answer.ok) throw new SendError(answer.error, { retryable: answer.retryable, sent: outcomes });
        lastId = answer.messageId;
      }
      outcomes.push({ seq: reply.seq, status: 'sent', ...(lastId ? { channelMessageId: lastId } : {}) });
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

/** Longest caption a file takes here (the Cloud API's, to be safe); a longer text goes before the file. */
const CAPTION_MAX = 1024;

export interface WebPlan {
  /** Sent in order: the text, then the files (the first with the text as caption when it fits). */
  pieces: { text: string; file?: { fileId: string } }[];
  /** The numbered choices the text offers, in order. */
  choices: Choice[];
  /** Attachments that are not files of the store (a URL of the platform's), left out. */
  dropped: number;
}

/**
 * One reply as WhatsApp Web messages. A linked device can send no buttons: cards and suggestions
 * are numbered text (`1. Buy it`), which a later "1" answers. Cards' pictures and the store's
 * files go as media; a short text rides as the first one's caption (with a card's picture, the
 * numbered text too: the picture is the card), else it goes first, on its own.
 */
export function planWebReply(reply: OutboundBatch['replies'][number]): WebPlan {
  const cards = payloadCards(reply.payload.cards);
  const suggestions = reply.payload.suggestions ?? [];
  const attachments = (reply.payload.attachments ?? []) as { fileId?: string }[];
  const files = attachments.flatMap((a) => (a.fileId ? [{ fileId: a.fileId }] : []));
  const cardChoiceList = cardChoices(cards).map((c) => ({ title: c.text, value: c.value }));
  const suggestionChoices = suggestions
    .filter((s) => s.text.trim() !== '')
    .map((s) => ({ title: s.text, value: s.value ?? s.text }));
  // With cards, a text that only stands in for them is the cards as numbered text already.
  let text = reply.text;
  if (cards.length > 0 && !reply.payload.textIsFallback) text = joinText(text, cardsAsText(cards));
  // A text that only names the files is not sent: the files are.
  if (cards.length === 0 && files.length > 0 && reply.payload.textIsFallback) text = '';
  if (suggestionChoices.length > 0)
    text = joinText(text, numberedLines(suggestionChoices, cardChoiceList.length + 1));
  const choices = [...cardChoiceList, ...suggestionChoices];
  const pieces: WebPlan['pieces'] = [];
  // A card's picture (a file of the store) goes as media too, the cards' numbered text as its caption.
  const cardImages = cards.flatMap((c) =>
    c.image && 'fileId' in c.image ? [{ fileId: c.image.fileId }] : [],
  );
  const media = [...cardImages, ...files];
  const caption =
    media.length > 0 && (cardImages.length > 0 || choices.length === 0) && text.length <= CAPTION_MAX;
  if (text.trim() !== '' && !caption) pieces.push({ text });
  media.forEach((file, i) => {
    pieces.push({ text: i === 0 && caption ? text : '', file });
  });
  return { pieces, choices, dropped: attachments.length - files.length };
}

function joinText(a: string, b: string): string {
  return a.trim() === '' ? b : b.trim() === '' ? a : `${a}\n\n${b}`;
}
