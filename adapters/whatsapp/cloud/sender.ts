import { type OutboundBatch, SendError, type SendOutcome } from '../../../src/delivery/sender.ts';
import { payloadCards } from '../../../src/files/client-view.ts';
import type { FileStore } from '../../../src/files/store.ts';
import type { Logger } from '../../../src/logger.ts';
import type { SessionRecord } from '../../../src/store/records.ts';
import type { RecipientPacer } from '../pacing.ts';
import type { CloudReplyTo } from '../reply-to.ts';
import { INVALID_PARAMETER_CODE, MEDIA_ERROR_CODE, toSendError } from './errors.ts';
import { type GraphClient, type GraphMediaClient, GraphRequestError } from './graph.ts';
import { planReply } from './outbound.ts';

/** The customer service window: free-form messages may follow the person's last message for this long. */
export const CUSTOMER_SERVICE_WINDOW_MS = 24 * 3_600_000;
/** Replies half-sent (some pieces out) that this process remembers, so a retry sends only the rest. */
const MAX_PARTIAL_REPLIES = 10_000;
/** Uploaded media ids this process remembers. */
const MAX_UPLOADED_MEDIA = 10_000;
/**
 * Meta keeps an uploaded medium for 30 days, then its id is dead. An id is used for this long
 * after its upload, then the file is uploaded again: well before the id expires.
 */
export const MEDIA_ID_REUSE_MS = 25 * 24 * 3_600_000;

/** Stored files of one reply uploaded to the Cloud API: file id → media id. */
interface UploadedMedia {
  ids: Map<string, string>;
  /** The file ids whose media id came from an earlier upload (not this send's). */
  reused: Set<string>;
}

/**
 * Sends replies through the Cloud API. A reply may take several messages (long text, then the
 * buttons); a retry resumes after the pieces that already went out, so nobody gets a piece twice.
 */
export class CloudSender {
  /** `${sessionId}:${seq}` → pieces of that reply already sent. */
  private readonly partial = new Map<string, { pieces: number; lastId: string | undefined }>();

  /** Files of the store already uploaded from this process: `phone:fileId` → media id, and when. */
  private readonly uploaded = new Map<string, { mediaId: string; at: number }>();

  constructor(
    private readonly graph: GraphClient,
    private readonly pacer: RecipientPacer,
    private readonly logger: Logger,
    /** Sends the store's files (SHOW IMAGE, SEND FILE, card images): uploaded, then sent by id. */
    private readonly media?: { client: GraphMediaClient; files: Pick<FileStore, 'get' | 'bytes'> },
    /** The clock that ages uploaded media ids (ms since the epoch). */
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Uploads the reply's stored files to the Cloud API: file id → media id. A file uploaded from
   * this process within MEDIA_ID_REUSE_MS is sent by the same id; `refused` files are uploaded
   * again whatever their age (the platform no longer took their id).
   */
  private async uploadFiles(
    reply: OutboundBatch['replies'][number],
    phoneNumberId: string,
    /** The batch's replies already sent: a failed upload reports them, so they are not sent again. */
    sent: SendOutcome[],
    refused: ReadonlySet<string> = new Set(),
  ): Promise<UploadedMedia> {
    const ids = new Set<string>();
    for (const a of (reply.payload.attachments ?? []) as { fileId?: string }[])
      if (a.fileId) ids.add(a.fileId);
    for (const c of payloadCards(reply.payload.cards))
      if (c.image && 'fileId' in c.image) ids.add(c.image.fileId);
    const out: UploadedMedia = { ids: new Map(), reused: new Set() };
    if (!this.media || ids.size === 0) return out;
    for (const id of ids) {
      const key = `${phoneNumberId}:${id}`;
      const known = this.uploaded.get(key);
      if (known && !refused.has(id) && this.now() - known.at < MEDIA_ID_REUSE_MS) {
        out.ids.set(id, known.mediaId);
        out.reused.add(id);
        continue;
      }
      this.uploaded.delete(key);
      const file = await this.media.files.get(id);
      if (!file) continue;
      const bytes = await this.media.files.bytes(file);
      let mediaId: string;
      try {
        mediaId = await this.media.client.upload(phoneNumberId, {
          bytes,
          type: file.type,
          name: file.name,
        });
      } catch (err) {
        if (err instanceof GraphRequestError) throw toSendError(err, sent);
        throw new SendError(String(err), { retryable: true, sent });
      }
      if (this.uploaded.size >= MAX_UPLOADED_MEDIA) this.uploaded.clear();
      this.uploaded.set(key, { mediaId, at: this.now() });
      out.ids.set(id, mediaId);
    }
    return out;
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
      let media = await this.uploadFiles(reply, to.phoneNumberId, outcomes);
      let plan = planReply(reply, to.waId, media.ids);
      if (plan.droppedSuggestions > 0 || plan.droppedAttachments > 0)
        this.logger.warn({
          event: 'whatsapp.reply_trimmed',
          sessionId: batch.session.id,
          seq: reply.seq,
          droppedSuggestions: plan.droppedSuggestions,
          droppedAttachments: plan.droppedAttachments,
        });
      const progress = this.partial.get(key) ?? { pieces: 0, lastId: undefined };
      let uploadedAgain = false;
      for (let i = progress.pieces; i < plan.messages.length; i++) {
        await this.pacer.wait(to.waId);
        try {
          progress.lastId =
            (await this.graph.postMessage(to.phoneNumberId, plan.messages[i]!)) ?? progress.lastId;
        } catch (err) {
          // An id uploaded earlier that the platform no longer takes (expired, deleted): uploaded
          // again and this piece sent once more with the new id. Only once, and only for an id
          // of an earlier upload: a file just uploaded and refused is refused for what it is.
          const stale = uploadedAgain ? [] : staleMedia(err, plan.messages[i]!, media);
          if (stale.length > 0) {
            uploadedAgain = true;
            this.logger.warn({
              event: 'whatsapp.media_uploaded_again',
              sessionId: batch.session.id,
              seq: reply.seq,
              files: stale.length,
              err: (err as Error).message,
            });
            if (i > 0) this.remember(key, progress);
            media = await this.uploadFiles(reply, to.phoneNumberId, outcomes, new Set(stale));
            plan = planReply(reply, to.waId, media.ids);
            i--;
            continue;
          }
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

/**
 * The files of `message` whose media id, from an earlier upload, the platform refused in `err`:
 * Meta's media error (131053), or an invalid parameter (100) that names the id. Empty when the
 * error is about something else, or the message carries no media id of an earlier upload.
 */
function staleMedia(err: unknown, message: Record<string, unknown>, media: UploadedMedia): string[] {
  if (!(err instanceof GraphRequestError)) return [];
  const { code, description } = err.details;
  if (code !== MEDIA_ERROR_CODE && code !== INVALID_PARAMETER_CODE) return [];
  const sent = JSON.stringify(message);
  const said = `${err.message} ${description ?? ''}`;
  return [...media.reused].filter((fileId) => {
    const mediaId = media.ids.get(fileId)!;
    return sent.includes(`"${mediaId}"`) && (code === MEDIA_ERROR_CODE || said.includes(mediaId));
  });
}

/** Whether the person wrote within the last 24 hours (free-form messages may reach them). */
export function windowOpen(to: Pick<CloudReplyTo, 'at'>, now = Date.now()): boolean {
  return to.at !== undefined && now - Date.parse(to.at) <= CUSTOMER_SERVICE_WINDOW_MS;
}
