import type { Redis } from 'ioredis';
import type { HubConfig } from './config/env.ts';
import { isTransient } from './errors.ts';
import type { Db } from './store/db.ts';

/**
 * A server the hub or an operator command cannot go on without (PostgreSQL, Redis) did not
 * answer in time. Its message names the server, where it was looked for and the setting that
 * says so: `Redis at redis://127.0.0.1:6999/0 did not answer within 30 s (REDIS_URL): …`.
 */
export class DependencyError extends Error {
  override name = 'DependencyError';
}

/** One server the hub depends on, as an operator knows it. */
export interface Dependency {
  /** `Redis at redis://127.0.0.1:6379/0`: where it was looked for, without credentials. */
  readonly what: string;
  /** The setting that says where it is (`REDIS_URL`). */
  readonly setting: string;
  /** Resolves once it answered; rejects with why it did not. */
  ping(): Promise<void>;
}

/** How long between two tries while a dependency does not answer (the start waits for it). */
const RETRY_EVERY_MS = 250;

/**
 * Whether a failure is the server not answering (away, starting, unreachable: worth trying
 * again) rather than refusing what it was asked (a wrong password, no such database).
 */
function notAnswering(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  // A name that does not resolve (yet) is waited for too (EAI_AGAIN is transient already).
  return isTransient(err) || code === 'ENOTFOUND';
}

/** A connection string without its user and password: it goes into error messages and logs. */
export function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

export function redisDependency(url: string, redis: Redis): Dependency {
  return {
    what: `Redis at ${withoutCredentials(url)}`,
    setting: 'REDIS_URL',
    async ping() {
      // A command refused while the connection is down says only "max retries"; the
      // connection's own error says why (ECONNREFUSED, a DNS failure, a refused password).
      let connectionError: Error | undefined;
      const onError = (err: Error) => {
        connectionError = err;
      };
      redis.on('error', onError);
      try {
        await redis.ping();
      } catch (err) {
        throw connectionError ?? err;
      } finally {
        redis.off('error', onError);
      }
    },
  };
}

export function databaseDependency(config: Pick<HubConfig, 'databaseUrl' | 'dataDir'>, db: Db): Dependency {
  return {
    what: config.databaseUrl
      ? `PostgreSQL at ${withoutCredentials(config.databaseUrl)}`
      : `the embedded database in ${config.dataDir}`,
    setting: config.databaseUrl ? 'DATABASE_URL' : 'DATA_DIR',
    ping: () => db.ping(),
  };
}

/** `30 s`, `2.5 s`: a bound as messages give it. */
export const formatSeconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/**
 * Waits until `dependency` answers, for at most `timeoutMs`. With `retry` (a starting hub: its
 * Redis may be starting too), a failed answer is tried again until then; without (an operator
 * command), the first failure is the answer. `signal` gives up at once (a stop during the start).
 */
export async function untilAnswers(
  dependency: Dependency,
  options: { timeoutMs: number; retry: boolean; signal?: AbortSignal },
): Promise<void> {
  const { timeoutMs, retry, signal } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  // Settles when the time is up or the signal fires, whatever a ping in flight is doing.
  const cutOff = new Promise<'timeout' | 'aborted'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
    onAbort = () => resolve('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  const tries = (async () => {
    for (;;) {
      try {
        await dependency.ping();
        return 'answered' as const;
      } catch (err) {
        lastError = err;
        // A refusal is no less one a moment later: only a server that does not answer is waited for.
        if (!notAnswering(err)) return 'refused' as const;
        if (!retry || Date.now() + RETRY_EVERY_MS >= deadline) return 'failed' as const;
        await new Promise((r) => setTimeout(r, RETRY_EVERY_MS).unref());
        if (signal?.aborted) return 'aborted' as const;
      }
    }
  })();
  try {
    const outcome = await Promise.race([tries, cutOff]);
    if (outcome === 'answered') return;
    if (outcome === 'aborted') throw signal?.reason ?? new Error('aborted');
    const why = lastError instanceof Error ? `: ${lastError.message}` : '';
    if (outcome === 'refused')
      throw new DependencyError(`${dependency.what} refused (${dependency.setting})${why}`, {
        cause: lastError,
      });
    throw new DependencyError(
      outcome === 'timeout' || retry
        ? `${dependency.what} did not answer within ${formatSeconds(timeoutMs)} (${dependency.setting})${why}`
        : `${dependency.what} did not answer (${dependency.setting})${why}`,
      { cause: lastError },
    );
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * `work`, or a rejection with `onTimeout()` when it takes longer than `timeoutMs`, or with the
 * signal's reason as soon as `signal` fires. The work itself is not cancelled (a BullMQ call
 * waiting for its connection cannot be): its outcome is dropped.
 */
export async function bounded<T>(
  work: Promise<T>,
  options: { timeoutMs: number; onTimeout: () => Error; signal?: AbortSignal },
): Promise<T> {
  const { timeoutMs, onTimeout, signal } = options;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const cutOff = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), timeoutMs);
    if (!signal) return;
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, cutOff]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * A failed listen (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`) as a DependencyError naming the
 * address and HOST and PORT; undefined for any other error.
 */
export function listenError(err: unknown): DependencyError | undefined {
  const e = err as {
    syscall?: unknown;
    code?: unknown;
    address?: unknown;
    port?: unknown;
    message?: unknown;
  };
  if (e?.syscall !== 'listen') return undefined;
  const why =
    e.code === 'EADDRINUSE'
      ? 'the address is in use by another process'
      : e.code === 'EACCES'
        ? 'permission denied (a port under 1024 needs privileges)'
        : e.code === 'EADDRNOTAVAIL'
          ? 'this machine has no such address'
          : String(e.message);
  return new DependencyError(
    `cannot listen on ${String(e.address)}:${String(e.port)} (HOST, PORT): ${why} (${String(e.code)})`,
    { cause: err },
  );
}
