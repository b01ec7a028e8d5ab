import { getDomain } from 'tldts';
import type { MailAddress } from './parse.ts';

/**
 * Whether a mail's `From` is the sender's own, and where an answer may go. Anyone can write any
 * `From:`; only the receiving mail server can check it (SPF, DKIM, DMARC), and it writes what it
 * found in an `Authentication-Results` header (RFC 8601) at the top of the mail. We believe that
 * header only from the server we name (`EMAIL_TRUSTED_AUTHSERV_ID`), and only its topmost one:
 * headers further down were written before the mail reached it, by anyone.
 */

/** One `method=result` of an Authentication-Results header, with its properties (`header.d`, ...). */
export interface AuthResult {
  method: string;
  result: string;
  /** `ptype.property` (lower-case) → value. */
  props: Record<string, string>;
}

export interface AuthenticationResults {
  authservId: string;
  results: AuthResult[];
}

export interface SenderVerdict {
  verified: boolean;
  /** Why, in a few words, for logs and the session's meta: `dmarc=pass`, `no trusted Authentication-Results`, ... */
  reason: string;
}

/** Replaces comments `( ... )`, nested, with a space; quoted strings are kept as they are. */
function stripComments(value: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quoted) {
      out += c;
      if (c === '\\' && i + 1 < value.length) out += value[++i];
      else if (c === '"') quoted = false;
    } else if (depth > 0) {
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')' && --depth === 0) out += ' ';
    } else if (c === '(') depth = 1;
    else {
      out += c;
      if (c === '"') quoted = true;
    }
  }
  return out;
}

/** Splits at `separator` outside quoted strings. */
function splitOutsideQuotes(value: string, separator: RegExp): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quoted) {
      current += c;
      if (c === '\\' && i + 1 < value.length) current += value[++i];
      else if (c === '"') quoted = false;
    } else if (separator.test(c)) {
      parts.push(current);
      current = '';
    } else {
      current += c;
      if (c === '"') quoted = true;
    }
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter(Boolean);
}

const unquote = (value: string) =>
  value.startsWith('"') && value.endsWith('"') && value.length >= 2
    ? value.slice(1, -1).replace(/\\(.)/g, '$1')
    : value;

/**
 * Parses one Authentication-Results value (RFC 8601 §2.2): the authserv-id, then `;`-separated
 * `method[/version]=result [reason=...] [ptype.property=value ...]`. Comments are dropped. Undefined
 * when there is no authserv-id.
 */
export function parseAuthenticationResults(value: string): AuthenticationResults | undefined {
  // Spaces around '=', '.' and '/' are allowed (CFWS) and would split a token in two.
  const text = stripComments(value.replace(/\r?\n[ \t]+/g, ' ')).replace(/\s*([=./])\s*/g, '$1');
  const [head, ...resinfos] = splitOutsideQuotes(text, /;/);
  const authservId = head ? unquote(splitOutsideQuotes(head, /\s/)[0] ?? '') : '';
  if (!authservId || authservId.includes('=')) return undefined;
  const results: AuthResult[] = [];
  for (const resinfo of resinfos) {
    const [spec, ...rest] = splitOutsideQuotes(resinfo, /\s/);
    const at = spec?.indexOf('=') ?? -1;
    if (!spec || at <= 0) continue;
    const method = spec.slice(0, at).split('/')[0]!.toLowerCase();
    const result = unquote(spec.slice(at + 1)).toLowerCase();
    const props: Record<string, string> = {};
    for (const token of rest) {
      const eq = token.indexOf('=');
      if (eq <= 0) continue;
      const key = token.slice(0, eq).toLowerCase();
      // `reason=` and unknown keywords without a ptype are not properties.
      if (key.includes('.')) props[key] = unquote(token.slice(eq + 1));
    }
    results.push({ method, result, props });
  }
  return { authservId, results };
}

/**
 * The organisational domain (RFC 7489 §3.2): the registrable domain under the Public Suffix
 * List (tldts), private suffixes included, so `a.github.io` and `b.github.io` are two owners.
 */
export function organisationalDomain(domain: string): string | undefined {
  const name = domain.trim().toLowerCase().replace(/\.$/, '');
  if (!name) return undefined;
  return getDomain(name, { allowPrivateDomains: true }) ?? undefined;
}

/** Relaxed alignment: the same organisational domain. */
export function aligned(a: string, b: string): boolean {
  const orgA = organisationalDomain(a);
  return orgA !== undefined && orgA === organisationalDomain(b);
}

export const domainOf = (address: string): string =>
  address.slice(address.lastIndexOf('@') + 1).toLowerCase();

/**
 * A mail is verified when the topmost Authentication-Results header of the trusted server shows
 * `dmarc=pass` for the From domain, or `dkim=pass` by a domain aligned with it. Without a trusted
 * server, or with more than one From address, nothing is verified.
 */
export function verifySender(input: {
  /** The values of every Authentication-Results header, topmost first. */
  authenticationResults: readonly string[];
  from: readonly MailAddress[];
  trustedAuthservId: string | undefined;
}): SenderVerdict {
  const trusted = input.trustedAuthservId?.trim().toLowerCase();
  if (!trusted) return { verified: false, reason: 'EMAIL_TRUSTED_AUTHSERV_ID is not set' };
  if (input.from.length !== 1) return { verified: false, reason: `${input.from.length} From addresses` };
  const fromDomain = domainOf(input.from[0]!.address);
  const header = input.authenticationResults
    .map(parseAuthenticationResults)
    .find((h) => h?.authservId.toLowerCase() === trusted);
  if (!header) return { verified: false, reason: 'no trusted Authentication-Results' };

  const dmarc = header.results.find((r) => r.method === 'dmarc');
  const dmarcFrom = dmarc?.props['header.from']?.toLowerCase();
  if (dmarc?.result === 'pass' && (dmarcFrom === undefined || dmarcFrom === fromDomain))
    return { verified: true, reason: 'dmarc=pass' };
  for (const dkim of header.results.filter((r) => r.method === 'dkim' && r.result === 'pass')) {
    // header.d names the signing domain; Gmail writes header.i=@domain instead.
    const signer = dkim.props['header.d'] ?? (dkim.props['header.i'] ? domainOf(dkim.props['header.i']) : '');
    if (signer && aligned(signer, fromDomain))
      return { verified: true, reason: `dkim=pass header.d=${signer}` };
  }
  const seen = header.results.map((r) => `${r.method}=${r.result}`).join(' ');
  return { verified: false, reason: `not aligned with ${fromDomain}: ${seen || 'no results'}` };
}

/**
 * Where an answer goes: the From address; the first Reply-To address only for a verified mail and
 * within the From address's organisational domain (anyone can write a Reply-To, so an answer to
 * a forged or foreign one would hand the conversation to whoever wrote it).
 */
export function answerAddress(
  from: MailAddress,
  replyTo: MailAddress | undefined,
  verified: boolean,
): { to: MailAddress; ignoredReplyTo?: { address: string; reason: string } } {
  if (!replyTo || replyTo.address === from.address) return { to: from };
  if (!verified)
    return { to: from, ignoredReplyTo: { address: replyTo.address, reason: 'unverified sender' } };
  if (!aligned(domainOf(replyTo.address), domainOf(from.address)))
    return {
      to: from,
      ignoredReplyTo: { address: replyTo.address, reason: 'another organisational domain' },
    };
  return { to: replyTo };
}
