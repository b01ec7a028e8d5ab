import {
  WebAPIHTTPError,
  WebAPIPlatformError,
  WebAPIRateLimitedError,
  WebAPIRequestError,
} from '@slack/web-api';
import { SendError, type SendOutcome } from '../../src/delivery/sender.ts';

/** Platform errors that pass: Slack's side had a problem, the same call can succeed later. */
const TRANSIENT_ERRORS = new Set([
  'internal_error',
  'fatal_error',
  'service_unavailable',
  'request_timeout',
  'ratelimited',
]);

/**
 * Turns a failed Web API call into the SendError delivery understands: rate limits wait the
 * `Retry-After` Slack gives, outages are retried, and refusals (`channel_not_found`,
 * `not_in_channel`, `invalid_auth`, `msg_too_long`, …) are not, and say which.
 */
export function toSendError(err: unknown, sent: SendOutcome[]): SendError {
  if (err instanceof WebAPIRateLimitedError)
    return new SendError(`Slack rate limit: retry after ${err.retryAfter} s`, {
      retryable: true,
      retryAfterMs: err.retryAfter * 1000,
      sent,
      cause: err,
    });
  if (err instanceof WebAPIPlatformError) {
    const code = err.data.error;
    return new SendError(`Slack error ${code}`, { retryable: TRANSIENT_ERRORS.has(code), sent, cause: err });
  }
  if (err instanceof WebAPIHTTPError)
    return new SendError(`the Slack Web API answered HTTP ${err.statusCode}`, {
      retryable: err.statusCode >= 500 || err.statusCode === 408,
      sent,
      cause: err,
    });
  if (err instanceof WebAPIRequestError)
    return new SendError(`the Slack Web API did not answer: ${err.original.message}`, {
      retryable: true,
      sent,
      cause: err,
    });
  return new SendError(err instanceof Error ? err.message : String(err), {
    retryable: true,
    sent,
    cause: err,
  });
}
