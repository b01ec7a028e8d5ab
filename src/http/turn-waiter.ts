import { type Bus, sessionTopic, type TurnCompleted } from '../bus/bus.ts';
import { dropSubscription, SUBSCRIBE_TIMEOUT_MS, subscribeWithin } from '../bus/subscribe-within.ts';

export { SUBSCRIBE_TIMEOUT_MS };

export interface TurnWaiter {
  /** The finished turn, or undefined when `timeoutMs` passed (or the hub began to stop) first. */
  result: Promise<TurnCompleted | undefined>;
  /** Ends the wait. The unsubscription goes on behind it: an answer never waits for Redis. */
  cancel(): void;
}

/**
 * Waits for one envelope's turn to be committed, wherever a worker runs it. Subscribe before
 * enqueueing: a turn that completes in between is then not missed. `stopping` ends the wait at
 * once: a stopping hub answers the request (its message is queued) rather than have it cut.
 * Undefined when the subscription did not come within `SUBSCRIBE_TIMEOUT_MS` (the bus is away):
 * the caller answers without waiting, and the subscription, should it come later, is dropped.
 */
export async function waitForTurn(
  bus: Bus,
  sessionId: string,
  envelopeId: string,
  timeoutMs: number,
  stopping?: AbortSignal,
): Promise<TurnWaiter | undefined> {
  let settle!: (value: TurnCompleted | undefined) => void;
  const result = new Promise<TurnCompleted | undefined>((resolve) => {
    settle = resolve;
  });
  const unsubscribe = await subscribeWithin(bus, sessionTopic(sessionId), (message) => {
    const turn = message as TurnCompleted;
    if (turn.type === 'turn.completed' && turn.envelopeId === envelopeId) settle(turn);
  });
  // Past SUBSCRIBE_TIMEOUT_MS the caller goes on without waiting, as `?wait=false` does.
  if (!unsubscribe) return undefined;
  const timer = setTimeout(() => settle(undefined), timeoutMs);
  const onStop = () => settle(undefined);
  if (stopping?.aborted) onStop();
  else stopping?.addEventListener('abort', onStop, { once: true });
  return {
    result,
    cancel() {
      clearTimeout(timer);
      stopping?.removeEventListener('abort', onStop);
      settle(undefined);
      dropSubscription(unsubscribe);
    },
  };
}
