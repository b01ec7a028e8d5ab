import { clearLoginFailures, countLoginFailures, recordLoginFailure } from '../store/agents.ts';
import type { Db } from '../store/db.ts';

/** Failed sign-ins counted over this window. */
export const LOGIN_FAILURE_WINDOW_MS = 15 * 60_000;
/** Failures for one e-mail address in the window, after which its sign-ins are refused. */
export const MAX_FAILURES_PER_EMAIL = 5;
/** Failures from one client address in the window (it may try many addresses). */
export const MAX_FAILURES_PER_IP = 20;

const emailKey = (email: string) => `email:${email.toLowerCase()}`;
const ipKey = (ip: string) => `ip:${ip}`;

/**
 * The sign-in throttle, kept in PostgreSQL so that every gateway counts the same failures. Only
 * failures count, and a throttled attempt is refused before the password is even looked at.
 */
export class LoginThrottle {
  constructor(
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until this address and client may try again; 0 when they may now. */
  async retryAfterMs(email: string, ip: string | undefined): Promise<number> {
    const limits = new Map([[emailKey(email), MAX_FAILURES_PER_EMAIL]]);
    if (ip) limits.set(ipKey(ip), MAX_FAILURES_PER_IP);
    const counts = await countLoginFailures(
      this.db,
      [...limits.keys()],
      new Date(this.now() - LOGIN_FAILURE_WINDOW_MS),
    );
    let wait = 0;
    for (const [key, max] of limits) {
      const c = counts.get(key);
      if (c && c.count >= max)
        wait = Math.max(wait, 1000, c.oldest.getTime() + LOGIN_FAILURE_WINDOW_MS - this.now());
    }
    return wait;
  }

  async failed(email: string, ip: string | undefined): Promise<void> {
    const keys = [emailKey(email), ...(ip ? [ipKey(ip)] : [])];
    await recordLoginFailure(this.db, keys, new Date(this.now() - LOGIN_FAILURE_WINDOW_MS));
  }

  async succeeded(email: string): Promise<void> {
    await clearLoginFailures(this.db, emailKey(email));
  }
}
