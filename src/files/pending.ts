import type { BotRegistry } from '../config/bots.ts';
import type { Envelope } from '../envelope.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { ChannelAdapter } from '../ports.ts';
import type { Db } from '../store/db.ts';
import { erasedSinceAccepted } from '../store/erased-contacts.ts';
import { isEnvelopeRecorded } from '../store/messages.ts';
import { ATTACHMENT_RETRY_DELAYS_MS, attachmentRetryDelay, fetchFailures } from './fetch-attempts.ts';
import { AttachmentRetryError, storeInboundAttachments } from './inbound.ts';
import type { FileStore } from './store.ts';

export interface PendingAttachmentsDeps {
  adapters: readonly ChannelAdapter[];
  files: FileStore;
  bots: BotRegistry;
  db: Db;
  logger: Logger;
  /** ATTACHMENT_RETRY_ATTEMPTS: how often a message is tried again for a download that may pass. */
  retryAttempts: number;
  /** ATTACHMENT_RETRY_DELAYS_MS: the wait before each retry (the last one repeats). */
  retryDelaysMs?: readonly number[];
  metrics?: Pick<Metrics, 'inboundFileFailures'>;
}

export const hasPendingAttachments = (envelope: Envelope): boolean =>
  envelope.attachments.some((a) => a.pending && !a.fileId);

/**
 * The worker's half of an inbound file: a gateway queues a message whose attachments are still
 * at the platform (`pending`: a media id, a hosted URL) and acknowledges the webhook at once; the
 * worker fetches them through the channel's adapter into the file store, within the bot's limits,
 * just before the turn. The queued envelope is left as it was, so a worker that dies here loses
 * nothing: the redelivered envelope is fetched again (the content is stored once; a file row no
 * message claimed is swept with the stale uploads).
 *
 * A download that failed for a reason that may pass (the platform's 5xx, a timeout, the
 * connection lost) fails the message with a delay hint (`retryDelaysMs`: 1 s, 5 s, 30 s): the
 * queue tries it again in its lane after that long, so the session's order holds (the session's
 * later messages wait behind it; other sessions do not). The failures are counted in PostgreSQL
 * (any worker may take the retry); after `retryAttempts` retries the message goes on without the
 * file and the person is told. A failure that cannot pass (404, 403, an expired media id, a
 * refused redirect) is not retried: the person is told at once.
 *
 * A message accepted before its person was erased is not fetched at all (one lookup, made only
 * for a message with files still at the platform).
 */
export function pendingAttachments(deps: PendingAttachmentsDeps) {
  const byChannel = new Map(deps.adapters.map((a) => [a.channel, a]));
  return async (envelope: Envelope, redelivered: boolean): Promise<Envelope> => {
    if (envelope.kind !== 'message' || !hasPendingAttachments(envelope)) return envelope;
    const adapter = byChannel.get(envelope.channel);
    const fetch = adapter?.fetchAttachment?.bind(adapter);
    // Already answered before a crash: the engine sees the duplicate, nothing is fetched again.
    if (!fetch || (redelivered && (await isEnvelopeRecorded(deps.db, envelope.id)))) return envelope;
    // Queued before its person was erased: nothing of theirs is fetched (the engine drops the
    // envelope), and the count of its failed downloads, which names it, goes.
    if (await erasedSinceAccepted(deps.db, envelope)) {
      await fetchFailures.clear(deps.db, envelope.id);
      return envelope;
    }
    const started = Date.now();
    const failures = await fetchFailures.count(deps.db, envelope.id);
    let ready: Envelope;
    try {
      ready = await storeInboundAttachments(
        {
          files: deps.files,
          rules: (bot, channel) => deps.bots.rules(bot, channel),
          logger: deps.logger,
          ...(deps.metrics ? { metrics: deps.metrics } : {}),
        },
        envelope,
        (a) => (a.pending ? fetch(a, envelope) : Promise.resolve(undefined)),
        { transient: failures >= deps.retryAttempts ? 'refuse' : 'retry' },
      );
    } catch (err) {
      if (!(err instanceof AttachmentRetryError)) throw err;
      const failed = await fetchFailures.record(deps.db, envelope.id, err.message);
      err.retryAfterMs = attachmentRetryDelay(failed, deps.retryDelaysMs ?? ATTACHMENT_RETRY_DELAYS_MS);
      deps.logger.warn({
        event: 'file.inbound_fetch_retry',
        envelopeId: envelope.id,
        channel: envelope.channel,
        failures: failed,
        retriesLeft: deps.retryAttempts - failed,
        retryInMs: err.retryAfterMs,
        err: err.message,
      });
      deps.metrics?.inboundFileFailures.inc({ channel: envelope.channel, outcome: 'retry' });
      throw err;
    }
    // Through at last (with the file, or told without it): the count is done with.
    if (failures > 0) await fetchFailures.clear(deps.db, envelope.id);
    deps.logger.debug({
      event: 'file.inbound_fetched',
      envelopeId: envelope.id,
      stored: ready.attachments.filter((a) => a.fileId).length,
      refused: ready.refusedAttachments?.length ?? 0,
      ms: Date.now() - started,
    });
    return ready;
  };
}
