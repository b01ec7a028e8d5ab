import type { BotRegistry } from '../config/bots.ts';
import type { Envelope } from '../envelope.ts';
import type { Logger } from '../logger.ts';
import type { ChannelAdapter } from '../ports.ts';
import type { Db } from '../store/db.ts';
import { isEnvelopeRecorded } from '../store/messages.ts';
import { storeInboundAttachments } from './inbound.ts';
import type { FileStore } from './store.ts';

export interface PendingAttachmentsDeps {
  adapters: readonly ChannelAdapter[];
  files: FileStore;
  bots: BotRegistry;
  db: Db;
  logger: Logger;
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
 */
export function pendingAttachments(deps: PendingAttachmentsDeps) {
  const byChannel = new Map(deps.adapters.map((a) => [a.channel, a]));
  return async (envelope: Envelope, redelivered: boolean): Promise<Envelope> => {
    if (envelope.kind !== 'message' || !hasPendingAttachments(envelope)) return envelope;
    const adapter = byChannel.get(envelope.channel);
    const fetch = adapter?.fetchAttachment?.bind(adapter);
    // Already answered before a crash: the engine sees the duplicate, nothing is fetched again.
    if (!fetch || (redelivered && (await isEnvelopeRecorded(deps.db, envelope.id)))) return envelope;
    const started = Date.now();
    const ready = await storeInboundAttachments(
      {
        files: deps.files,
        rules: (bot, channel) => deps.bots.rules(bot, channel),
        logger: deps.logger,
      },
      envelope,
      (a) => (a.pending ? fetch(a, envelope) : Promise.resolve(undefined)),
    );
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
