import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { isTransient } from '../errors.ts';
import { addressBlock } from '../limits/address-block.ts';
import { MINUTE_MS, type RateDecision, type RateLimiter } from '../limits/rate-limiter.ts';
import { contextAddress } from './client-address.ts';
import { ApiError } from './errors.ts';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Wrong operator tokens one client address may present in any minute. Past it, every operator
 * request from that address is refused (429) until the oldest failure is a minute old, so a
 * guess cannot be tried there, right or wrong.
 */
export const ADMIN_FAILURES_PER_MINUTE = 10;

/**
 * How long the throttle's store (Redis) may take to answer. It answers in a millisecond; one that
 * is away held every operator request for its client's retries (6–12 s) before failing.
 */
export const ADMIN_THROTTLE_TIMEOUT_MS = 1_000;

/** Per client address, an IPv6 client by its /64 (`addressBlock`). */
export const adminFailuresKey = (address: string) => `admin-auth:${addressBlock(address)}:failures`;

export interface AdminGuardOptions {
  adminToken: string | undefined;
  /** Counts failures across the hub's gateways (Redis) or in this process. */
  rateLimiter: RateLimiter;
  /** TRUST_PROXY: how the client's address is read. */
  trustProxy: number;
  /**
   * Whether a bearer token is an agent's own, valid token. Such a token on a route that takes
   * ADMIN_TOKEN only is no guess at it: refused 403, never counted against the address. Unset
   * (a guard with no database at hand), every token that is not ADMIN_TOKEN counts as a guess.
   */
  isAgentToken?: (token: string) => Promise<boolean>;
}

/**
 * ADMIN_TOKEN under its guess throttle, for every guard that takes it: `requireAdmin`, and the
 * routes that take an agent's credentials as well (agents, the dashboard, outbound messages and
 * broadcasts). Wrong tokens are counted per client address, and an address with
 * ADMIN_FAILURES_PER_MINUTE of them is refused (429) the right token included, on every one of
 * those routes, so a guess cannot be told right from wrong anywhere while it lasts.
 */
export class AdminTokenCheck {
  private readonly expected: Buffer | undefined;

  constructor(private readonly options: AdminGuardOptions) {
    this.expected = options.adminToken ? digest(options.adminToken) : undefined;
  }

  /** Whether ADMIN_TOKEN is set; unset, no token is it and nothing is counted. */
  get enabled(): boolean {
    return this.expected !== undefined;
  }

  /** 429 while the request's client address has had too many wrong tokens. */
  async refuseWhileLockedOut(c: Context): Promise<void> {
    const state = await throttleRead(
      this.options.rateLimiter.peek(this.key(c), ADMIN_FAILURES_PER_MINUTE, MINUTE_MS),
    );
    // Unreadable (Redis away): no lockout is known. The right token goes on, so that an operator can
    // work through the outage; a request without one is refused (401) anyway.
    if (state instanceof Error) return;
    if (!state.allowed) throw tooManyFailures(state.retryAfterMs);
  }

  /**
   * Whether a bearer `token` is ADMIN_TOKEN. `otherwiseValid`: it is a credential of another kind
   * the route takes (an agent's own token), which is no guess: neither refused nor counted. Any
   * other token is refused while the address is locked out, and counted when it is wrong (429
   * when that is one too many).
   */
  async isAdminToken(c: Context, token: string, otherwiseValid = false): Promise<boolean> {
    if (!this.expected) return false;
    const matches = timingSafeEqual(digest(token), this.expected);
    if (!matches && otherwiseValid) return false;
    // One step on the limiter per token, each atomic: the right token is judged against the wrong
    // ones counted before it. A wrong token looked first (a peek, then a hit), and guesses sent at
    // once all passed their looks before any was counted: the right one among a thousand got 200.
    if (matches) {
      await this.refuseWhileLockedOut(c);
      return true;
    }
    // A refused hit is not counted: hammering a locked-out address does not keep it locked.
    const counted = await throttleRead(
      this.options.rateLimiter.hit(this.key(c), ADMIN_FAILURES_PER_MINUTE, MINUTE_MS),
    );
    // Nothing can count it (Redis away): refused 503 `unavailable` (app.onError), never let through
    // uncounted as a plain 401 would be. ADMIN_TOKEN is 32 characters or more: guessing it while the
    // count is down is no risk, whereas refusing the right one would lock the operator out.
    if (counted instanceof Error) throw counted;
    if (!counted.allowed) throw tooManyFailures(counted.retryAfterMs);
    return false;
  }

  private key(c: Context): string {
    return adminFailuresKey(contextAddress(c, this.options.trustProxy) ?? 'unknown');
  }
}

/**
 * Guards operator routes with `Authorization: Bearer <ADMIN_TOKEN>`. With no ADMIN_TOKEN
 * configured the routes are closed (403), never open. Wrong tokens are counted per client
 * address and throttled (`AdminTokenCheck`); a locked-out address is refused even without a token.
 * An agent's valid token (`isAgentToken`) is credentials without the right: 403, not counted.
 */
export function requireAdmin(options: AdminGuardOptions): MiddlewareHandler {
  const check = new AdminTokenCheck(options);
  return async (c, next) => {
    if (!check.enabled)
      throw new ApiError(
        403,
        'admin_disabled',
        'operator routes are disabled: set ADMIN_TOKEN to enable them',
      );
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    // A request without a token is not a guess (not counted), but is refused while locked out too.
    if (!match) await check.refuseWhileLockedOut(c);
    // Looked up whatever the token is, so that ADMIN_TOKEN and a wrong guess take the same steps.
    const agent = match && options.isAgentToken ? await options.isAgentToken(match[1]!) : false;
    if (!match || !(await check.isAdminToken(c, match[1]!, agent))) {
      if (agent)
        throw new ApiError(
          403,
          'forbidden',
          "this route takes the operator token (ADMIN_TOKEN); an agent's token does not open it",
        );
      throw new ApiError(
        401,
        'unauthorized',
        'send the operator token as "Authorization: Bearer <ADMIN_TOKEN>"',
        {
          'WWW-Authenticate': 'Bearer realm="switchboard-admin"',
        },
      );
    }
    await next();
  };
}

/**
 * The throttle's answer, or the error that says it is away: a transient error of its store, or
 * none within ADMIN_THROTTLE_TIMEOUT_MS (a timeout, transient too: a wrong token is answered 503).
 * Any other error is thrown. A step that answers after the timeout still counts what it counted.
 */
async function throttleRead(step: Promise<RateDecision>): Promise<RateDecision | Error> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          Object.assign(
            new Error(
              `the operator token throttle (Redis) did not answer within ${ADMIN_THROTTLE_TIMEOUT_MS} ms`,
            ),
            { code: 'ETIMEDOUT' },
          ),
        ),
      ADMIN_THROTTLE_TIMEOUT_MS,
    );
  });
  // Its failure after the timeout has no one to hear it.
  step.catch(() => undefined);
  try {
    return await Promise.race([step, late]);
  } catch (err) {
    if (isTransient(err)) return err as Error;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

const tooManyFailures = (retryAfterMs: number) =>
  new ApiError(
    429,
    'too_many_failures',
    'too many wrong operator tokens from this address; wait before trying again',
    { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
  );
