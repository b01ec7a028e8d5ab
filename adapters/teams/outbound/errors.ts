import { SendError, type SendOutcome } from '../../../src/delivery/sender.ts';
import { errorMessage } from '../../../src/errors.ts';

/** What a failed Bot Connector call looks like (`RestError` of @azure/core-rest-pipeline). */
interface ConnectorFailure {
  statusCode?: number;
  code?: string;
  response?: { headers?: { get?(name: string): string | undefined } };
}

/**
 * Turns a failed Bot Connector call into the SendError the delivery understands. 429 (the
 * connector's rate limit) is retried after its Retry-After; 408, 5xx, timeouts and network
 * errors are retried with backoff; other answers (a bot removed from the conversation, a
 * conversation that no longer exists, a message too large, credentials refused) are not.
 */
export function toSendError(err: unknown, sent: SendOutcome[], now = Date.now()): SendError {
  const failure = (typeof err === 'object' && err !== null ? err : {}) as ConnectorFailure;
  const status = typeof failure.statusCode === 'number' ? failure.statusCode : undefined;
  const retryAfterMs = retryAfter(failure, now);
  const code = failure.code && failure.code !== String(status) ? ` ${failure.code}` : '';
  const what = status === undefined ? 'Bot Connector unreachable' : `Bot Connector ${status}${code}`;
  const message = `${what}: ${errorMessage(err)}`;
  const retryable = status === undefined || status === 429 || status === 408 || status >= 500;
  return new SendError(message, {
    retryable,
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    sent,
    cause: err,
  });
}

/** `Retry-After` in seconds or as an HTTP date; Azure's `retry-after-ms` and `x-ms-retry-after-ms`. */
export function retryAfter(failure: ConnectorFailure, now = Date.now()): number | undefined {
  const header = (name: string) => failure.response?.headers?.get?.(name) ?? undefined;
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const ms = Number(header(name));
    if (header(name) !== undefined && Number.isFinite(ms) && ms >= 0) return ms;
  }
  const value = header('retry-after');
  if (value === undefined || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
