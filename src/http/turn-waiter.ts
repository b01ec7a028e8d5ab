import { type Bus, sessionTopic, type TurnCompleted } from '../bus/bus.ts';

export interface TurnWaiter {
  /** The finished turn, or undefined when `timeoutMs` passed (or the hub began to stop) first. */
  result: Promise<TurnCompleted | undefined>;
  cancel(): Promise<void>;
}

/**
 * Waits for one envelope's turn to be committed, wherever a worker runs it. Subscribe before
 * enqueueing: a turn that completes in between is then not missed. `stopping` ends the wait at
 * once: a stopping hub answers the request (its message is queued) rather than have it cut.
 */
export async function waitForTurn(
  bus: Bus,
  sessionId: string,
  envelopeId: string,
  timeoutMs: number,
  stopping?: AbortSignal,
): Promise<TurnWaiter> {
  let settle!: (value: TurnCompleted | undefined) => void;
  const result = new Promise<TurnCompleted | undefined>((resolve) => {
    settle = resolve;
  });
  const unsubscribe = await bus.subscribe(sessionTopic(sessionId), (message) => {
    const turn = message as TurnCompleted;
    if (turn.type === 'turn.completed' && turn.envelopeId === envelopeId) settle(turn);
  });
  const timer = setTimeout(() => settle(undefined), timeoutMs);
  const onStop = () => settle(undefined);
  if (stopping?.aborted) onStop();
  else stopping?.addEventListener('abort', onStop, { once: true });
  return {
    result,
    async cancel() {
      clearTimeout(timer);
      stopping?.removeEventListener('abort', onStop);
      settle(undefined);
      await unsubscribe();
    },
  };
}
