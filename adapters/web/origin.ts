/**
 * Whether a browser page of `origin` may open the widget's socket. Browsers always send Origin on
 * a WebSocket handshake; a request without one is not from a browser page, and the token (not
 * the origin) is what protects a session, so it is let through.
 */
export function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  allowed: readonly string[] | undefined,
): boolean {
  if (!allowed || origin === undefined) return true;
  const normalized = origin.toLowerCase();
  // The hub's own pages (the chat page at `/`) are always allowed.
  if (
    host &&
    (normalized === `http://${host.toLowerCase()}` || normalized === `https://${host.toLowerCase()}`)
  )
    return true;
  return allowed.some((o) => o.toLowerCase() === normalized);
}
