/** A refusal from the hub, carrying its JSON error code (`{"error":{"code","message"}}`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds, from `Retry-After` on a 429. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/**
 * Every state-changing request carries this header: a cross-site form cannot set it, and a
 * cross-site script cannot send it without a CORS preflight the hub never grants.
 */
export const CSRF_HEADER = 'X-Requested-With';

/** Where the console signs in: its 401 is a wrong password, not a sign-in that ended. */
export const LOGIN_PATH = '/api/agent/login';

let signedOut: (() => void) | undefined;

/**
 * `listener` is called when the hub refuses the console's sign-in on any call: it has ended
 * (signed out in another tab, expired, a new password, the agent removed). One listener, the app's.
 */
export function whenSignedOut(listener: () => void): void {
  signedOut = listener;
}

/** Calls the hub's agent API with the console's session cookie. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {
    Accept: 'application/json',
    [CSRF_HEADER]: 'switchboard-console',
  };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return undefined as T;
  const data = (await res.json().catch(() => ({}))) as {
    error?: { code?: string; message?: string };
  };
  if (!res.ok) {
    if (res.status === 401 && path !== LOGIN_PATH) signedOut?.();
    const retry = Number(res.headers.get('retry-after') ?? '');
    throw new ApiError(
      res.status,
      data.error?.code ?? 'http_error',
      data.error?.message ?? `${method} ${path} answered ${res.status}`,
      Number.isFinite(retry) && retry > 0 ? retry : undefined,
    );
  }
  return data as T;
}
