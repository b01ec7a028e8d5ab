import { SendError, type SendOutcome } from '../../../src/delivery/sender.ts';
import type { GraphRequestError } from './graph.ts';

/** Outside the 24-hour customer service window: only a template message may be sent. */
export const WINDOW_CLOSED_CODE = 131047;
/** Business/consumer pair rate limit: about one message every 6 seconds to the same person. */
export const PAIR_RATE_LIMIT_CODE = 131056;
export const PAIR_RATE_LIMIT_WAIT_MS = 6_000;
/** "Media upload error": the platform could not use the media of a message (a dead media id, among others). */
export const MEDIA_ERROR_CODE = 131053;
/** Graph's "Invalid parameter": with a media id named in it, that id is not (or no longer) valid. */
export const INVALID_PARAMETER_CODE = 100;

/** The platform's "too many, slow down" codes: worth retrying after a pause. */
const RATE_LIMIT_CODES = new Set([
  4, // application request limit
  80007, // WhatsApp Business Account rate limit
  130429, // Cloud API throughput
  131048, // spam rate limit
  PAIR_RATE_LIMIT_CODE,
]);
/** Errors on Meta's side that pass. */
const TRANSIENT_CODES = new Set([1, 2, 131000, 131016, 133004]);

/**
 * Turns a failed Graph API call into the SendError the delivery understands: rate limits and
 * outages are retried (honouring Retry-After), a closed customer service window and other
 * refusals are not, and say why.
 */
export function toSendError(err: GraphRequestError, sent: SendOutcome[]): SendError {
  const { httpStatus, code, description, retryAfterMs } = err.details;
  const detail = description && description !== err.message ? `: ${description}` : '';
  if (code === WINDOW_CLOSED_CODE) {
    return new SendError(
      `outside WhatsApp's 24-hour customer service window (error ${code})${detail}; only a template message can reach this person until they write again`,
      { retryable: false, sent, cause: err },
    );
  }
  const rateLimited = (code !== undefined && RATE_LIMIT_CODES.has(code)) || httpStatus === 429;
  if (rateLimited) {
    const wait =
      code === PAIR_RATE_LIMIT_CODE ? Math.max(retryAfterMs ?? 0, PAIR_RATE_LIMIT_WAIT_MS) : retryAfterMs;
    return new SendError(`WhatsApp rate limit (${code ?? httpStatus}): ${err.message}${detail}`, {
      retryable: true,
      ...(wait !== undefined ? { retryAfterMs: wait } : {}),
      sent,
      cause: err,
    });
  }
  const transient =
    httpStatus === undefined || httpStatus >= 500 || (code !== undefined && TRANSIENT_CODES.has(code));
  const label = code !== undefined ? `WhatsApp error ${code}` : `Graph API ${httpStatus ?? 'unreachable'}`;
  return new SendError(`${label}: ${err.message}${detail}`, {
    retryable: transient,
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    sent,
    cause: err,
  });
}
