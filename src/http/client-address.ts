import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';

/**
 * Who is on the other end of a request, as far as the hub can trust it. `X-Forwarded-For` and
 * `X-Forwarded-Proto` are written by whoever sends the request, so they count only with
 * `TRUST_PROXY` set to the number of proxies in front of the hub: each proxy appends the address
 * it received from, so the client is the entry that many places from the right (the last proxy's
 * own entry being the socket's address). With fewer entries than hops, the leftmost is taken.
 */
export function clientAddress(
  remote: string | undefined,
  forwardedFor: string | undefined,
  trustedHops: number,
): string | undefined {
  if (trustedHops <= 0 || !forwardedFor) return normalizeAddress(remote);
  const chain = forwardedFor
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // [socket, nearest forwarded, ..., farthest]: the client is `trustedHops` steps away.
  const path = [remote, ...chain.reverse()];
  return normalizeAddress(path[Math.min(trustedHops, path.length - 1)]);
}

/** `::ffff:127.0.0.1` (an IPv4 client on a dual-stack socket) is `127.0.0.1`. */
function normalizeAddress(address: string | undefined): string | undefined {
  if (!address) return undefined;
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** Whether the request reached the hub over TLS: its own socket, or the first proxy's word for it. */
export function cameOverTls(
  encrypted: boolean,
  forwardedProto: string | undefined,
  trustedHops: number,
): boolean {
  if (encrypted) return true;
  if (trustedHops <= 0 || !forwardedProto) return false;
  return forwardedProto.split(',')[0]?.trim().toLowerCase() === 'https';
}

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
};

/** The client address of a raw Node request (a WebSocket upgrade). */
export function requestAddress(req: IncomingMessage, trustedHops: number): string | undefined {
  return clientAddress(req.socket.remoteAddress, header(req.headers, 'x-forwarded-for'), trustedHops);
}

/** Whether a raw Node request came over TLS. */
export function requestOverTls(req: IncomingMessage, trustedHops: number): boolean {
  const encrypted = 'encrypted' in req.socket && req.socket.encrypted === true;
  return cameOverTls(encrypted, header(req.headers, 'x-forwarded-proto'), trustedHops);
}

/** The client address of a hono request. */
export function contextAddress(c: Context, trustedHops: number): string | undefined {
  let remote: string | undefined;
  try {
    remote = getConnInfo(c).remote.address;
  } catch {
    remote = undefined;
  }
  return clientAddress(remote, c.req.header('x-forwarded-for'), trustedHops);
}

/** Whether a hono request came over TLS. */
export function contextOverTls(c: Context, trustedHops: number): boolean {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming) return requestOverTls(incoming, trustedHops);
  return cameOverTls(
    new URL(c.req.url).protocol === 'https:',
    c.req.header('x-forwarded-proto'),
    trustedHops,
  );
}

/**
 * TRUST_PROXY and PUBLIC_URL: how far the hub believes what proxies say of a request, and the
 * address the internet knows it by.
 */
export interface ProxySettings {
  trustProxy: number;
  /** Without a trailing slash. */
  publicUrl: string | undefined;
}

/** A URL's origin (`https://host[:port]`, lower case, no default port); undefined when it has none. */
function originOf(url: string): string | undefined {
  try {
    const { origin } = new URL(url);
    return origin === 'null' ? undefined : origin;
  } catch {
    return undefined;
  }
}

/**
 * The host the client asked the first of `trustedHops` proxies for, from `X-Forwarded-Host`: the
 * entry that proxy wrote, that many from the right as in `clientAddress` (entries further left are
 * the client's own), or the leftmost when proxies replace the header rather than append to it.
 */
export function forwardedHost(forwarded: string | undefined, trustedHops: number): string | undefined {
  if (trustedHops <= 0 || !forwarded) return undefined;
  const chain = forwarded
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return chain[Math.max(0, chain.length - trustedHops)];
}

/**
 * The origin a hono request was sent to, as the browser saw it: the scheme it came over
 * (`contextOverTls`) and its `Host`, or behind TRUST_PROXY proxies `X-Forwarded-Host` when they set it.
 */
export function contextOrigin(c: Context, trustedHops: number): string | undefined {
  const scheme = contextOverTls(c, trustedHops) ? 'https' : 'http';
  const host = forwardedHost(c.req.header('x-forwarded-host'), trustedHops) ?? new URL(c.req.url).host;
  // A host and port only: no user info, path or query that would make the URL's origin another's.
  return /^[^\s/\\?#@]+$/.test(host) ? originOf(`${scheme}://${host}`) : undefined;
}

/**
 * Whether `origin` (a browser's `Origin` header) is a page of the hub itself: the origin this
 * request was sent to, or PUBLIC_URL's (a proxy that says neither the scheme nor the host).
 */
export function isOwnOrigin(c: Context, origin: string, proxy: ProxySettings): boolean {
  // Browsers send an origin as URL's `origin` spells it; anything else is no page of the hub's.
  if (originOf(origin) !== origin) return false;
  if (origin === contextOrigin(c, proxy.trustProxy)) return true;
  return proxy.publicUrl !== undefined && origin === originOf(proxy.publicUrl);
}
