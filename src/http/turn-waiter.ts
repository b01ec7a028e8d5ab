import { type Bus, sessionTopic, type TurnCompleted } from '../bus/bus.ts';

export interface TurnWaiter {
  /** The finished turn, or undefined when `timeoutMs` passed first. */
  result: Promise<TurnCompleted | undefined>;
  cancel(): Promise<void>;
}

/**
 * Waits for one envelope's turn to be committed, wherever a worker runs it. Subscribe before
 * enqueueing: a turn that completes in between is then not missed.
 */
export async function waitForTurn(
  bus: Bus,
  sessionId: string,
  envelopeId: string,
  timeoutMs: number,
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
  return {
    result,
    async cancel() {
      clearTimeout(timer);
      settle(undefined);
      await unsubscribe();
    },
  };
}
