import type { Attachment, EnvelopeInput, RefusedAttachment } from '../envelope.ts';
import { DEFAULT_FILE_UNAVAILABLE_NOTICE } from '../lifecycle/rules.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { isPermanentFetchFailure } from './fetch-failure.ts';
import { FileRefusedError, type FileStore, tooLarge } from './store.ts';

/** One attachment's bytes as a channel hands them over, streamed. */
export interface FetchedAttachment {
  body: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | ReadableStream<Uint8Array>;
  name?: string;
}

/** A channel's way to fetch one attachment's bytes (undefined: this attachment has none, such as a location). */
export type AttachmentSource = (attachment: Attachment) => Promise<FetchedAttachment | undefined>;

/** The attachment as the channel described it, no longer waiting for its bytes. */
function settled(a: Attachment): Attachment {
  if (a.pending === undefined) return a;
  const { pending: _, ...rest } = a;
  return rest;
}

export interface InboundFilesDeps {
  files: FileStore;
  /** The bot's limits, and what the person is told of a file the platform did not hand over. */
  rules(
    bot: string,
    channel: string,
  ): { maxFileBytes: number; allowedFileTypes: readonly string[]; fileUnavailableNotice?: string };
  logger: Logger;
  /** Counts the platform's failures (`switchboard_inbound_file_failures_total`). */
  metrics?: Pick<Metrics, 'inboundFileFailures'>;
}

/** The bot's `sessions.fileUnavailableNotice` for the file `name` (`{name}` in it replaced). */
export function fileUnavailableText(template: string | undefined, name: string): string {
  return (template ?? DEFAULT_FILE_UNAVAILABLE_NOTICE).replaceAll('{name}', name);
}

export async function* fromWeb(stream: ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> {
  const reader = stream.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        return;
      }
      yield value;
    }
  } finally {
    // A file refused part-way (too large, a type not allowed): the download stops here, and its
    // connection is let go now rather than when the download's time limit ends it.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/** The platform failed to hand the bytes over (the request, or the stream midway). */
class UnavailableError extends Error {
  override name = 'UnavailableError';
  /** Trying again cannot help (see `isPermanentFetchFailure`). */
  readonly permanent: boolean;
  constructor(err: unknown) {
    super(err instanceof Error ? err.message : String(err));
    this.permanent = isPermanentFetchFailure(err);
  }
}

/**
 * A platform failed to hand an attachment over for a reason that may pass (a 5xx, a timeout):
 * thrown instead of going on without the file when the caller asked for `transient: 'retry'`,
 * so the queue tries the message again later.
 */
export class AttachmentRetryError extends Error {
  override name = 'AttachmentRetryError';
  /** How long the queue waits before the retry (see `retryDelayHint`); set by the caller that knows the count. */
  retryAfterMs: number | undefined;
}

/** The source's bytes, with any failure while reading them marked as the platform's. */
async function* fromPlatform(
  body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): AsyncIterable<Uint8Array> {
  try {
    yield* body;
  } catch (err) {
    throw new UnavailableError(err);
  }
}

/**
 * Brings a channel's inbound attachments into the file store: before the envelope is accepted
 * (email, WhatsApp Web), or by the worker just before the turn for attachments queued as
 * `pending` (src/files/pending.ts). Each is fetched (`source`), sniffed and stored within the
 * bot's limits, and gets its `fileId` (type and size from the stored file). One the limits
 * refuse moves to `refusedAttachments` (the person is told); so does one the platform does not
 * hand over (reason `unavailable`, the bot's `fileUnavailableNotice`); the message goes on. Only
 * the store itself failing (its database) throws, so the message is tried again.
 *
 * `transient` says what a failure that may pass (a 5xx, a timeout; not a 404, 403 or a refused
 * redirect, which are refused at once) does: `retry` throws `AttachmentRetryError` (the caller
 * tries again later: the queue for the worker's fetch, the WhatsApp Web session for its own);
 * `refuse` (the last try), or unset, refuses it like a permanent one: the person is told.
 */
export async function storeInboundAttachments<E extends EnvelopeInput>(
  deps: InboundFilesDeps,
  envelope: E,
  source: AttachmentSource,
  options: { maxBytes?: number; transient?: 'retry' | 'refuse' } = {},
): Promise<E> {
  const attachments = envelope.attachments ?? [];
  if (attachments.length === 0) return envelope;
  const rules = deps.rules(envelope.bot, envelope.channel);
  const maxBytes = Math.min(rules.maxFileBytes, options.maxBytes ?? Number.POSITIVE_INFINITY);
  const kept: Attachment[] = [];
  const refused: RefusedAttachment[] = [...(envelope.refusedAttachments ?? [])];
  for (const a of attachments) {
    if (a.fileId) {
      kept.push(a);
      continue;
    }
    try {
      // A file the platform says is larger than the limit is refused unread: no download (which
      // the platform may not even serve, as Telegram's Bot API above 20 MB), the person is told.
      if (a.pending && a.size !== undefined && a.size > maxBytes)
        throw tooLarge(a.name ?? defaultName(a.type), maxBytes);
      // A refusal the source made itself (a size it was told) is the limits', not the platform's.
      const got = await source(a).catch((err: unknown) => {
        throw err instanceof FileRefusedError ? err : new UnavailableError(err);
      });
      if (!got) {
        kept.push(settled(a));
        continue;
      }
      const body = fromPlatform(got.body instanceof ReadableStream ? fromWeb(got.body) : got.body);
      const file = await deps.files.put(body, {
        name: a.name ?? got.name ?? defaultName(a.type),
        bot: envelope.bot,
        maxBytes,
        allowedTypes: rules.allowedFileTypes,
      });
      kept.push({ ...settled(a), type: file.type, name: file.name, size: file.size, fileId: file.id });
    } catch (err) {
      // The store failing (the database away) fails the message, to be tried again; it is no
      // reason to go on without the file.
      if (!(err instanceof FileRefusedError) && !(err instanceof UnavailableError)) throw err;
      if (err instanceof UnavailableError) {
        const name = a.name ?? defaultName(a.type);
        if (!err.permanent && options.transient === 'retry')
          throw new AttachmentRetryError(`"${name}" was not fetched: ${err.message}`);
        // It will not come (a 404, an expired media id, a 403), or the last try failed too: the
        // message goes on without the file, and the person is told to send it again.
        deps.logger.warn({
          event: 'file.inbound_unavailable',
          envelopeId: envelope.id,
          channel: envelope.channel,
          permanent: err.permanent,
          err: err.message,
        });
        deps.metrics?.inboundFileFailures.inc({
          channel: envelope.channel,
          outcome: err.permanent ? 'permanent' : 'gave_up',
        });
        refused.push({
          type: a.type,
          ...(a.name === undefined ? {} : { name: a.name }),
          ...(a.size === undefined ? {} : { size: a.size }),
          reason: 'unavailable',
          message: fileUnavailableText(rules.fileUnavailableNotice, name),
        });
        continue;
      }
      const reason = err.code === 'file_too_large' ? 'too_large' : 'type_refused';
      deps.logger.warn({
        event: 'file.inbound_refused',
        envelopeId: envelope.id,
        reason,
        err: (err as Error).message,
      });
      refused.push({
        type: a.type,
        name: a.name,
        size: a.size,
        reason,
        message: err.message,
      });
    }
  }
  return { ...envelope, attachments: kept, ...(refused.length ? { refusedAttachments: refused } : {}) } as E;
}

function defaultName(type: string): string {
  const kind = type.split('/')[0] || 'file';
  return kind === 'image' ? 'photo' : kind === 'audio' ? 'voice note' : 'file';
}
