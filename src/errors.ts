/**
 * Errors that say "a dependency is away for now" (PostgreSQL restarting, Redis unreachable):
 * the work must be retried later, not given up or dead-lettered.
 */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  // PostgreSQL: admin shutdown, crash shutdown, cannot connect now, too many connections, connection exceptions.
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  // PostgreSQL: serialization failure and deadlock: retrying is the documented answer.
  '40001',
  '40P01',
]);

/**
 * By message where the code says too little: PostgreSQL refuses connections to a database with
 * `ALLOW_CONNECTIONS false` (maintenance) as 55000, a code it also gives errors that never pass.
 */
const TRANSIENT_MESSAGE =
  /Connection terminated|timeout exceeded when trying to connect|Connection is closed|Client has encountered a connection error|Stream isn't writeable|Reached the max retries per request|connect ECONNREFUSED|socket hang up|is not currently accepting connections/i;

const TRANSIENT_NAMES = new Set(['MaxRetriesPerRequestError', 'StateConflictError']);

export function isTransient(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
  if (typeof e.code === 'string' && TRANSIENT_CODES.has(e.code)) return true;
  if (typeof e.name === 'string' && TRANSIENT_NAMES.has(e.name)) return true;
  if (typeof e.message === 'string' && TRANSIENT_MESSAGE.test(e.message)) return true;
  return e.cause !== undefined && e.cause !== err && isTransient(e.cause);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
