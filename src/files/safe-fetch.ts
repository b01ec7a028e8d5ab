import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';
import type { Readable } from 'node:stream';

/** Addresses the hub never fetches from on a bot's behalf unless their host is allow-listed. */
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  // No ::ffff:0:0/96: BlockList checks an IPv4-mapped address (::ffff:10.0.0.1) against the IPv4
  // rules above already, and it also checks every IPv4 address against that IPv6 rule, which made
  // each public IPv4 address "private" (no bot media from an IPv4 host could be fetched).
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const)
  PRIVATE.addSubnet(net, bits, 'ipv6');

/** Link-local addresses: where clouds serve a machine's metadata and credentials (169.254.169.254). */
const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4');
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6');

/** Whether an address is link-local (IPv4-mapped IPv6 included); anything not an address is not. */
export function isLinkLocalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return LINK_LOCAL.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export interface SafeFetchOptions {
  timeoutMs: number;
  /** Host names fetched even at a private or loopback address, and over plain http (a test's local server). */
  allowHosts: readonly string[];
  maxRedirects?: number;
}

export class FetchRefusedError extends Error {
  override name = 'FetchRefusedError';
  /** The answer's HTTP status when the host answered other than 200 (a 5xx may pass; a refusal does not). */
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
  }
}

/**
 * GETs an https URL for a bot (SHOW IMAGE "https://…"), as the HTTP tools would and more: only
 * https, no private, loopback or link-local address (checked on the address actually connected
 * to, so a DNS answer cannot switch to one between the check and the connection), a time limit
 * on the whole download, redirects followed by hand (each checked again). The body streams: the
 * caller caps its size.
 */
export async function safeGet(
  url: string,
  options: SafeFetchOptions,
): Promise<{ body: Readable; type?: string; name: string }> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  let target = new URL(url);
  for (let hop = 0; ; hop++) {
    const allowed = options.allowHosts.includes(target.hostname.toLowerCase());
    if (target.protocol !== 'https:' && !(allowed && target.protocol === 'http:'))
      throw new FetchRefusedError(`only https URLs are fetched, not ${target.protocol}`);
    if (
      !allowed &&
      isIP(target.hostname.replace(/^\[|\]$/g, '')) &&
      isPrivateAddress(target.hostname.replace(/^\[|\]$/g, ''))
    )
      throw new FetchRefusedError(`${target.hostname} is a private address`);
    const lookup: typeof dns.lookup = ((
      host: string,
      opts: dns.LookupOptions,
      cb: (...args: unknown[]) => void,
    ) => {
      dns.lookup(host, { ...opts, all: false }, (err, address, family) => {
        if (err) return cb(err);
        if (!allowed && isPrivateAddress(address as string))
          return cb(new FetchRefusedError(`${host} resolves to a private address (${address as string})`));
        if (opts.all) return cb(null, [{ address, family }]);
        cb(null, address, family);
      });
    }) as typeof dns.lookup;
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const get = target.protocol === 'https:' ? https.get : http.get;
      const req = get(
        target,
        { lookup, signal: deadline, headers: { accept: 'image/*, */*;q=0.5' } },
        resolve,
      );
      req.on('error', reject);
    });
    const status = res.statusCode ?? 0;
    if ([301, 302, 303, 307, 308].includes(status)) {
      res.resume();
      const location = res.headers.location;
      if (!location || hop >= (options.maxRedirects ?? 3)) throw new FetchRefusedError(`too many redirects`);
      target = new URL(location, target);
      continue;
    }
    if (status !== 200) {
      res.resume();
      throw new FetchRefusedError(`HTTP ${status} from ${target.host}`, status);
    }
    const name = decodeURIComponent(target.pathname.split('/').pop() || 'file');
    return { body: res, type: res.headers['content-type'], name };
  }
}
