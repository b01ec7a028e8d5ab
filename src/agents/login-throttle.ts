import { addressBlock } from '../limits/address-block.ts';
import {
  clearLoginFailures,
  countLoginFailures,
  forgetLoginAttempt,
  recordLoginFailure,
} from '../store/agents.ts';
import type { Db } from '../store/db.ts';

/** Failed sign-ins counted over this window. */
export const LOGIN_FAILURE_WINDOW_MS = 15 * 60_000;
/** Failures for one e-mail address in the window, after which its sign-ins are refused. */
export const MAX_FAILURES_PER_EMAIL = 5;
/** Failures from one client address in the window (it may try many addresses). */
export const MAX_FAILURES_PER_IP = 20;

const emailKey = (email: string) => `email:${email.toLowerCase()}`;
/** An IPv6 client by its /64 (`addressBlock`): it has every address of that block. */
const ipKey = (ip: string) => `ip:${addressBlock(ip)}`;

/** One sign-in attempt, counted before its password is checked (`LoginThrottle.attempt`). */
export interface LoginAttempt {
  /** Milliseconds until this address and client may try again; 0: the password may be checked now. */
  retryAfterMs: number;
  /** Its rows in the failure table (taken back when it is refused or succeeds). */
  rows: readonly string[];
}

/**
 * The sign-in throttle, kept in PostgreSQL so that every gateway counts the same failures. Only
 * failures count, and a throttled attempt is refused before the password is even looked at.
 *
 * An attempt is counted as a failure *before* its password is checked, then taken back when it
 * is refused or succeeds. Counting after the check let every guess sent at once pass the count
 * before any of them was recorded: 30 guesses at once were 30 passwords checked. Now the attempt
 * that makes the count go over the limit sees it, whatever arrives at the same time.
 */
export class LoginThrottle {
  constructor(
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts an attempt for this address and client; `retryAfterMs` > 0: refuse it unchecked. */
  async attempt(email: string, ip: string | undefined): Promise<LoginAttempt> {
    const limits = new Map([[emailKey(email), MAX_FAILURES_PER_EMAIL]]);
    if (ip) limits.set(ipKey(ip), MAX_FAILURES_PER_IP);
    const since = new Date(this.now() - LOGIN_FAILURE_WINDOW_MS);
    const rows = await recordLoginFailure(this.db, [...limits.keys()], since);
    const counts = await countLoginFailures(this.db, [...limits.keys()], since);
    let wait = 0;
    for (const [key, max] of limits) {
      const c = counts.get(key);
      // The count includes this attempt: over the limit, the failures before it reached it.
      if (c && c.count > max)
        wait = Math.max(wait, 1000, c.oldest.getTime() + LOGIN_FAILURE_WINDOW_MS - this.now());
    }
    // A refused attempt is no failure: it would otherwise keep the address locked past Retry-After.
    if (wait > 0) await forgetLoginAttempt(this.db, rows);
    return { retryAfterMs: wait, rows };
  }

  /** The password was right: this attempt and the address's failures are forgotten. */
  async succeeded(email: string, attempt: LoginAttempt): Promise<void> {
    await forgetLoginAttempt(this.db, attempt.rows);
    await clearLoginFailures(this.db, emailKey(email));
  }
}
