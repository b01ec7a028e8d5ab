import type { Logger } from '../logger.ts';
import type { LaneQueueStatus } from '../queue/lane-status.ts';
import type { Db } from '../store/db.ts';
import { sessionsWithStaleReplies } from '../store/messages.ts';
import type { Delivery } from './delivery.ts';

/** Replies queued and untouched this long are handed to the outbox again (their sender died). */
export const STALE_REPLY_MS = 30_000;
export const OUTBOX_SWEEP_MS = 15_000;
const SWEEP_BATCH = 500;

/**
 * Replies are committed with the turn that produced them (status `queued`); the outbox then
 * makes sure each session's queued replies get delivered, one delivery per session at a time.
 */
export interface Outbox {
  /** A turn committed replies for this session. Never throws: a lost notice is found by the sweep. */
  notify(sessionId: string): void;
  /** Worker role: deliver, and sweep for replies a dead process left queued. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** What the shared outbound queue holds now (Redis lanes only; the embedded outbox is the replies' rows). */
  status?(): Promise<LaneQueueStatus>;
}

/** Finds sessions whose replies were left queued, and notifies the outbox of each. */
export async function sweepStaleReplies(
  db: Db,
  outbox: Pick<Outbox, 'notify'>,
  logger: Logger,
  olderThanMs = STALE_REPLY_MS,
): Promise<number> {
  const sessions = await sessionsWithStaleReplies(db, olderThanMs, SWEEP_BATCH);
  for (const id of sessions) outbox.notify(id);
  if (sessions.length > 0) logger.info({ event: 'outbox.swept', sessions: sessions.length });
  return sessions.length;
}

/** The embedded outbox: a promise chain per session in this process. */
export function createInProcessOutbox(options: { db: Db; delivery: Delivery; logger: Logger }): Outbox {
  const { db, delivery, logger } = options;
  const running = new Map<string, Promise<void>>();
  const again = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let started = false;

  const run = (sessionId: string): void => {
    if (running.has(sessionId)) {
      // One delivery per session at a time; one more pass after it picks up what came meanwhile.
      again.add(sessionId);
      return;
    }
    const pass = delivery
      .deliverSession(sessionId)
      .catch((err: Error) => logger.warn({ event: 'outbox.delivery_error', sessionId, err: err.message }))
      .finally(() => {
        running.delete(sessionId);
        if (again.delete(sessionId) && started) run(sessionId);
      });
    running.set(sessionId, pass);
  };

  const outbox: Outbox = {
    notify(sessionId) {
      if (started) run(sessionId);
    },
    async start() {
      started = true;
      const sweep = (olderThanMs: number) =>
        sweepStaleReplies(db, outbox, logger, olderThanMs).catch((err: Error) =>
          logger.warn({ event: 'outbox.sweep_failed', err: err.message }),
        );
      // Embedded, this is the only process: whatever is queued at start was left by the last run.
      await sweep(0);
      timer = setInterval(() => void sweep(STALE_REPLY_MS), OUTBOX_SWEEP_MS);
      timer.unref();
    },
    async stop() {
      started = false;
      if (timer) clearInterval(timer);
      delivery.stop();
      await Promise.allSettled([...running.values()]);
    },
  };
  return outbox;
}
