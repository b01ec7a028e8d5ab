import type { WebClient } from '@slack/web-api';
import { type OutboundBatch, SendError, type SendOutcome } from '../../src/delivery/sender.ts';
import type { FileStore } from '../../src/files/store.ts';
import type { Logger } from '../../src/logger.ts';
import { toSendError } from './errors.ts';
import { UploadFailedError, uploadStoredFile } from './files.ts';
import { planReply } from './outbound.ts';
import { SlackReplyToSchema } from './reply-to.ts';

/** Replies half-sent (some pieces out) that this process remembers, so a retry sends only the rest. */
const MAX_PARTIAL_REPLIES = 10_000;

/**
 * Sends replies with `chat.postMessage`, in the conversation and thread the person wrote in. A long
 * reply takes several messages; a retry resumes after the pieces that already went out. The
 * channel message id of a reply is `<channel>:<ts>` of its last piece.
 */
export class SlackSender {
  private readonly partial = new Map<string, { pieces: number; lastId: string | undefined }>();

  constructor(
    private readonly client: WebClient,
    private readonly logger: Logger,
    /** The store's files (SHOW IMAGE, SEND FILE, card images) and how long an upload may take. */
    private readonly media?: { files: FileStore; timeoutMs: number },
  ) {}

  /** A stored card image's address Slack can fetch: a signed link, when it is absolute (PUBLIC_URL). */
  private imageUrl = (fileId: string): string | undefined => {
    const link = this.media?.files.signedPath(fileId);
    return link?.startsWith('https://') ? link : undefined;
  };

  async send(batch: OutboundBatch): Promise<SendOutcome[]> {
    const parsed = SlackReplyToSchema.safeParse(batch.session.replyTo);
    if (!parsed.success)
      throw new SendError(`session ${batch.session.id} has no Slack conversation to answer`, {
        retryable: false,
      });
    const to = parsed.data;
    const outcomes: SendOutcome[] = [];
    for (const reply of batch.replies) {
      const key = `${batch.session.id}:${reply.seq}`;
      const plan = planReply(reply, to, this.imageUrl);
      if (plan.droppedSuggestions > 0 || plan.droppedAttachments > 0)
        this.logger.warn({
          event: 'slack.reply_trimmed',
          sessionId: batch.session.id,
          seq: reply.seq,
          droppedSuggestions: plan.droppedSuggestions,
          droppedAttachments: plan.droppedAttachments,
        });
      const progress = this.partial.get(key) ?? { pieces: 0, lastId: undefined };
      // The text pieces, then each file: one step each, so a retry resumes after what went out.
      const steps = plan.calls.length + (this.media ? plan.uploads.length : 0);
      for (let i = progress.pieces; i < steps; i++) {
        try {
          const call = plan.calls[i];
          if (call) {
            const result = await this.client.chat.postMessage(call);
            if (result.ts) progress.lastId = `${result.channel ?? to.channel}:${result.ts}`;
          } else {
            const upload = plan.uploads[i - plan.calls.length]!;
            const slackId = await uploadStoredFile(
              this.client,
              this.media!.files,
              upload.fileId,
              to,
              this.media!.timeoutMs,
            );
            if (slackId && !progress.lastId) progress.lastId = `${to.channel}:file:${slackId}`;
          }
        } catch (err) {
          if (i > 0) this.remember(key, progress);
          if (err instanceof UploadFailedError)
            throw new SendError(err.message, { retryable: err.status >= 500, sent: outcomes, cause: err });
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

  private remember(key: string, progress: { pieces: number; lastId: string | undefined }): void {
    if (this.partial.size >= MAX_PARTIAL_REPLIES) {
      const oldest = this.partial.keys().next().value;
      if (oldest !== undefined) this.partial.delete(oldest);
    }
    this.partial.set(key, progress);
  }
}
