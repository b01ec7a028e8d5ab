import { FetchRefusedError } from './safe-fetch.ts';

/**
 * A platform's media host did not hand an attachment over. `permanent`: trying again cannot help
 * (the file is gone, 404; the bot may not read it, 401/403; a redirect or host the hub refuses).
 * Otherwise (a 5xx, 429, a timeout, the connection lost) the message is tried again later.
 */
export class AttachmentFetchError extends Error {
  override name = 'AttachmentFetchError';
  readonly permanent: boolean;
  readonly status: number | undefined;
  constructor(message: string, options: { permanent: boolean; status?: number }) {
    super(message);
    this.permanent = options.permanent;
    this.status = options.status;
  }
}

/** Statuses that say "not now" rather than "never": timeouts, rate limits, the server's own faults. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/** The error for a media host's non-2xx answer, permanent or not by its status. */
export function attachmentStatusError(status: number, message: string): AttachmentFetchError {
  return new AttachmentFetchError(message, { permanent: !isRetryableStatus(status), status });
}

/** The HTTP status an error carries, whichever client made it (`status`, `httpStatus`, Graph's `details.httpStatus`). */
function statusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { status?: unknown; httpStatus?: unknown; details?: { httpStatus?: unknown } };
  for (const s of [e.status, e.httpStatus, e.details?.httpStatus])
    if (typeof s === 'number' && Number.isInteger(s) && s >= 100) return s;
  return undefined;
}

/**
 * Whether the error, or the error it wraps (`fetch()` reports a failed lookup as the cause of a
 * "fetch failed"), says the host name does not exist: the resolver answered, and the answer was
 * no. (`EAI_AGAIN`, a resolver that could not answer for now, is another code and may pass.)
 */
function isUnknownHost(err: unknown): boolean {
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 3; depth++) {
    if ((e as { code?: unknown }).code === 'ENOTFOUND') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Whether a failed `fetchAttachment` is final. What an adapter marked says so; an HTTP status
 * decides by itself; a refused fetch (private address, a redirect off the allowed hosts) and a
 * host name that does not resolve are final. Anything else (a network error, a timeout, the
 * stream cut midway) is taken as passing.
 */
export function isPermanentFetchFailure(err: unknown): boolean {
  if (err instanceof AttachmentFetchError) return err.permanent;
  const status = statusOf(err);
  if (status !== undefined) return !isRetryableStatus(status);
  return err instanceof FetchRefusedError || isUnknownHost(err);
}
