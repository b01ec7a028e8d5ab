import { isTransient } from '../errors.ts';
import { backoffDelay } from '../queue/queue.ts';
import { SendError } from './sender.ts';

/**
 * What a failed send says about retrying it:
 * - `transient`: the platform (or the way to it) is away or busy for now: no answer, a 5xx, a
 *   408 or 429, a refused connection, an SMTP 4xx or a refused login. Retried until the reply
 *   has waited `giveUpAfterMs`, however many attempts that takes.
 * - `refused`: retrying cannot help (a bad recipient, a closed messaging window, a message the
 *   platform will not take). Fails at once.
 * - `unclassified`: an error no sender vouched for (a bug, an SDK's surprise). Retried up to
 *   `maxAttempts` attempts, as every failure was before the budget.
 */
export type FailureKind = 'transient' | 'refused' | 'unclassified';

export function failureKind(err: unknown): FailureKind {
  if (err instanceof SendError) return err.retryable ? 'transient' : 'refused';
  return isTransient(err) ? 'transient' : 'unclassified';
}

/** Why a reply was given up (the `reason` of `delivery.failed` and of the failures metric). */
export type GiveUpReason = 'refused' | 'budget' | 'attempts';

export type Verdict = { retryInMs: number } | { giveUp: GiveUpReason };

export interface RetryPolicy {
  /** Attempts for an unclassified failure (`DELIVERY_ATTEMPTS`). */
  maxAttempts: number;
  /** A reply that failed transiently and has waited this long is given up (`DELIVERY_GIVE_UP_AFTER_SECONDS`). */
  giveUpAfterMs: number;
  retryBaseMs: number;
  retryCapMs: number;
}

/**
 * After the `attempt`-th failed attempt of a reply that has waited `waitedMs`: when to try again,
 * or why not. A transient failure waits the backoff (full jitter, up to `retryCapMs`) or the
 * platform's Retry-After, whichever is longer; the first one to fail after the budget is spent
 * gives the reply up.
 */
export function deliveryVerdict(
  err: unknown,
  attempt: number,
  waitedMs: number,
  policy: RetryPolicy,
  random = Math.random,
): Verdict {
  const kind = failureKind(err);
  if (kind === 'refused') return { giveUp: 'refused' };
  if (kind === 'transient' && waitedMs >= policy.giveUpAfterMs) return { giveUp: 'budget' };
  if (kind === 'unclassified' && attempt >= policy.maxAttempts) return { giveUp: 'attempts' };
  const hinted = err instanceof SendError ? (err.retryAfterMs ?? 0) : 0;
  return {
    retryInMs: Math.max(hinted, backoffDelay(attempt, policy.retryBaseMs, policy.retryCapMs, random)),
  };
}
