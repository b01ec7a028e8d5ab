import { z } from 'zod';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { Outbox } from './outbox.ts';

/**
 * The wake-up of a session's delivery after a failed send, on the durable scheduler: the wait
 * (seconds to minutes, for hours of an outage) holds no worker and no outbox lane, and survives
 * a restart. One job per session (its id): the session's oldest reply is the one that waits,
 * the later ones wait behind it.
 */
export const DELIVERY_RETRY_JOB = 'delivery.resume';

export const deliveryRetryJobId = (sessionId: string) => `delivery-resume:${sessionId}`;

const RetryPayload = z.object({ sessionId: z.string().min(1) });

/** Schedules the session's next delivery pass in `delayMs` (replacing one already scheduled). */
export async function scheduleDeliveryRetry(
  scheduler: Pick<Scheduler, 'schedule'>,
  sessionId: string,
  delayMs: number,
): Promise<void> {
  await scheduler.schedule(
    DELIVERY_RETRY_JOB,
    { sessionId },
    { id: deliveryRetryJobId(sessionId), delayMs: Math.max(0, Math.round(delayMs)) },
  );
}

/** Every role registers it; the worker that runs it hands the session to the outbox. */
export function registerDeliveryRetries(
  scheduler: Pick<Scheduler, 'handle'>,
  outbox: Pick<Outbox, 'notify'>,
) {
  scheduler.handle(DELIVERY_RETRY_JOB, async (payload) => {
    outbox.notify(RetryPayload.parse(payload).sessionId);
  });
}
