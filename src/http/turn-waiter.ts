import { type Bus, sessionTopic, type TurnCompleted } from '../bus/bus.ts';

/**
 * How long a wait may take to subscribe. With Redis away the subscriber's commands wait for its
 * return (they must not be dropped: the connection resubscribes on its own), which a request
 * cannot: past this it goes on without waiting, as `?wait=false` does.
 */
export const SUBSCRIBE_TIMEOUT_MS = 5_000;

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
  const subscribing = bus.subscribe(sessionTopic(sessionId), (message) => {
    const turn = message as TurnCompleted;
    if (turn.type === 'turn.completed' && turn.envelopeId === envelopeId) settle(turn);
  });
  let late: NodeJS.Timeout | undefined;
  const unsubscribe = await Promise.race([
    subscribing,
    new Promise<undefined>((resolve) => {
      late = setTimeout(() => resolve(undefined), SUBSCRIBE_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(late));
  const drop = (off: () => Promise<void>) => void off().catch(() => undefined);
  if (!unsubscribe) {
    subscribing.then(drop, () => undefined);
    return undefined;
  }
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
      drop(unsubscribe);
    },
  };
}
