import { type OutboundBatch, SendError, type SendOutcome } from '../../../src/delivery/sender.ts';
import { payloadCards } from '../../../src/files/client-view.ts';
import type { FileStore } from '../../../src/files/store.ts';
import type { Logger } from '../../../src/logger.ts';
import type { SessionRecord } from '../../../src/store/records.ts';
import type { RecipientPacer } from '../pacing.ts';
import type { CloudReplyTo } from '../reply-to.ts';
import { toSendError } from './errors.ts';
import { type GraphClient, type GraphMediaClient, GraphRequestError } from './graph.ts';
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

  /** Files of the store already uploaded from this process: `phone:fileId` → media id. */
  private readonly uploaded = new Map<string, string>();

  constructor(
    private readonly graph: GraphClient,
    private readonly pacer: RecipientPacer,
    private readonly logger: Logger,
    /** Sends the store's files (SHOW IMAGE, SEND FILE, card images): uploaded, then sent by id. */
    private readonly media?: { client: GraphMediaClient; files: FileStore },
  ) {}

  /** Uploads the reply's stored files to the Cloud API (once per process): file id → media id. */
  private async uploadFiles(reply: OutboundBatch['replies'][number], phoneNumberId: string) {
    const ids = new Set<string>();
    for (const a of (reply.payload.attachments ?? []) as { fileId?: string }[])
      if (a.fileId) ids.add(a.fileId);
    for (const c of payloadCards(reply.payload.cards))
      if (c.image && 'fileId' in c.image) ids.add(c.image.fileId);
    const map = new Map<string, string>();
    if (!this.media || ids.size === 0) return map;
    for (const id of ids) {
      const key = `${phoneNumberId}:${id}`;
      let mediaId = this.uploaded.get(key);
      if (!mediaId) {
        const file = await this.media.files.get(id);
        if (!file) continue;
        const bytes = await this.media.files.bytes(file);
        try {
          mediaId = await this.media.client.upload(phoneNumberId, {
            bytes,
            type: file.type,
            name: file.name,
          });
        } catch (err) {
          if (err instanceof GraphRequestError) throw toSendError(err, []);
          throw new SendError(String(err), { retryable: true });
        }
        if (this.uploaded.size >= MAX_PARTIAL_REPLIES) this.uploaded.clear();
        this.uploaded.set(key, mediaId);
      }
      map.set(id, mediaId);
    }
    return map;
  }

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
      const plan = planReply(reply, to.waId, await this.uploadFiles(reply, to.phoneNumberId));
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
