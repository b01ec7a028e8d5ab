import { isIPv6 } from 'node:net';

/** An IPv6 client is counted by this many leading bits of its address. */
export const IPV6_LIMIT_PREFIX_BITS = 64;

/**
 * What a limit kept per client address counts: an IPv4 address as it is, an IPv6 address by its
 * /64 (`2001:db8:1:2::/64`). An ISP hands every customer at least a /64 and a host may use any
 * address in it, so one client counted per IPv6 address would have 2^64 counts of every limit.
 * Anything else (`unknown`) is returned as it is.
 */
export function addressBlock(address: string): string {
  const plain = address.split('%', 1)[0]!;
  if (!isIPv6(plain)) return address;
  const groups = ipv6Groups(plain);
  // An IPv4 client on a dual-stack socket (::ffff:a.b.c.d, however written) is that IPv4 address.
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') {
    const [hi, lo] = [Number.parseInt(groups[6]!, 16), Number.parseInt(groups[7]!, 16)];
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return `${groups.slice(0, IPV6_LIMIT_PREFIX_BITS / 16).join(':')}::/${IPV6_LIMIT_PREFIX_BITS}`;
}

/** The eight 16-bit groups of a valid IPv6 address, in lower-case hex without leading zeros. */
function ipv6Groups(address: string): string[] {
  let text = address.toLowerCase();
  // An IPv4 tail (`::ffff:192.0.2.1`, `64:ff9b::192.0.2.1`) is two groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => Number.parseInt(g, 16).toString(16));
}
