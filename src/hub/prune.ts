import type { Redis } from 'ioredis';
import { channels } from '../channels/registry.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../store/db.ts';
import { pruneFailedInbox, pruneInbox } from '../store/inbox.ts';
import { pruneDead } from '../webhooks/store.ts';

/** How often every worker runs the prune job. */
export const PRUNE_EVERY_MS = 15 * 60_000;

export interface PruneDeps {
  db: Db;
  /** The Redis queues' connection and key prefix; absent on the embedded queue. */
  redis?: { connection: Redis; prefix: string };
  /** Envelope ids processed this long ago are forgotten (the dedupe window). */
  dedupeWindowMs: number;
  /** DEAD_LETTER_KEEP_DAYS, in ms. */
  deadLetterKeepMs: number;
  logger: Logger;
}

export interface PruneReport {
  /** Processed inbox rows past the dedupe window. */
  processed: number;
  /** Dead letters past DEAD_LETTER_KEEP_DAYS: the embedded queue's, the Redis queues', event webhooks'. */
  inboxFailed: number;
  redisInbound: number;
  redisOutbound: number;
  webhooksDead: number;
}

/**
 * The prune job, run by every worker every PRUNE_EVERY_MS (each statement and script removes
 * only what is past its bound, so workers running it at once do no harm): the inbox's memory of
 * processed envelopes past the dedupe window, and the dead letters past DEAD_LETTER_KEEP_DAYS —
 * envelopes the embedded queue set aside (`inbox.failed_at`), the Redis queues' dead lists,
 * event webhooks dead-lettered, and what channels set aside (`storage.prune`: the email
 * channel's `email_failures`). They hold what people wrote; until then `switchboard queue failed`,
 * `switchboard webhooks failed` and their `replay` see them.
 */
export async function runPrune(deps: PruneDeps): Promise<PruneReport> {
  const { db, deadLetterKeepMs } = deps;
  const processed = await pruneInbox(db, deps.dedupeWindowMs);
  const inboxFailed = await pruneFailedInbox(db, deadLetterKeepMs);
  const webhooksDead = await pruneDead(db, deadLetterKeepMs);
  for (const declaration of channels.all()) await declaration.storage?.prune?.(db, { deadLetterKeepMs });
  // Loaded only with Redis: an embedded hub never loads the Redis queues' modules (BullMQ).
  const redis = deps.redis
    ? await (await import('../queue/dead-letter-retention.ts')).pruneQueueDeadLetters(
        deps.redis.connection,
        deps.redis.prefix,
        deadLetterKeepMs,
      )
    : { inbound: 0, outbound: 0 };
  const report = {
    processed,
    inboxFailed,
    redisInbound: redis.inbound,
    redisOutbound: redis.outbound,
    webhooksDead,
  };
  if (inboxFailed + redis.inbound + redis.outbound + webhooksDead > 0)
    deps.logger.info({ event: 'dead_letters.pruned', ...report });
  return report;
}
