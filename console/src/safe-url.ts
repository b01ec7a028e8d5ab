/**
 * Whether `url` may become an `href` or a `src`: http(s) only (a path on the hub resolves to the
 * page's own http(s)), never `javascript:`, `data:` or anything else a message could carry.
 */
export function openableUrl(url: unknown): string | undefined {
  if (typeof url !== 'string' || url === '') return undefined;
  try {
    const parsed = new URL(url, window.location.href);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `url` is on the console's own origin: the only place its CSP loads images and sound from. */
export function sameOrigin(url: string): boolean {
  return new URL(url, window.location.href).origin === window.location.origin;
}

/** A file size as people read it. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 102.4) / 10} KB`;
  return `${Math.round(n / 104_857.6) / 10} MB`;
}
