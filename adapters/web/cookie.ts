import { parse, serialize } from 'hono/utils/cookie';

/**
 * The hub's own chat page (`/`, `/<bot>`) keeps its session in a cookie per bot, not in
 * localStorage: HttpOnly, so no script on the page can read the token; SameSite=Lax, so other
 * sites' requests do not carry it; Secure when the page came over TLS. The embeddable widget on
 * other sites cannot use it (browsers block third-party cookies) and keeps localStorage.
 */
export const SESSION_COOKIE_MAX_AGE_SECONDS = 30 * 24 * 3600;

/** `sb_<bot>`: bot names are lower-case letters, digits, `-` and `_`, all fine in a cookie name. */
export const sessionCookieName = (bot: string) => `sb_${bot}`;

export function sessionCookie(bot: string, token: string, secure: boolean): string {
  return serialize(sessionCookieName(bot), token, {
    path: '/',
    maxAge: SESSION_COOKIE_MAX_AGE_SECONDS,
    httpOnly: true,
    sameSite: 'Lax',
    secure,
  });
}

/** The session cookies of a request (`Cookie` header), bot → token. */
export function sessionCookies(header: string | undefined): Map<string, string> {
  const found = new Map<string, string>();
  if (!header) return found;
  for (const [name, value] of Object.entries(parse(header))) {
    if (name.startsWith('sb_') && value) found.set(name.slice(3), value);
  }
  return found;
}

/**
 * Whether a request comes from a page of the hub itself: its Origin is the hub's own address.
 * Only then does its cookie count (a page of another site could otherwise open a socket that
 * the browser sends the cookie with).
 */
export function fromOwnPage(origin: string | undefined, host: string | undefined): boolean {
  if (!origin || !host) return false;
  const o = origin.toLowerCase();
  const h = host.toLowerCase();
  return o === `http://${h}` || o === `https://${h}`;
}
