import dns from 'node:dns/promises';
import { isIP } from 'node:net';
import { isLinkLocalAddress, isPrivateAddress } from '../files/safe-fetch.ts';
import { truncateUtf16 } from '../text.ts';
import type { ToolDeclaration } from './settings.ts';

type HttpTool = NonNullable<ToolDeclaration['http']>;

/** Redirects followed before the call counts as failed. */
export const MAX_TOOL_REDIRECTS = 5;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** The addresses a URL's host name stands for (the address itself when it is one). */
async function addressesOf(url: URL): Promise<string[]> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) return [host];
  return (await dns.lookup(host, { all: true, verbatim: true })).map((a) => a.address);
}

/**
 * Why a redirect to `to` (its addresses) is not followed from a tool whose URL is at `from`, or
 * undefined when it is. The tool's URL is the bot author's choice, wherever it is; where it
 * redirects is its service's. A service at a public address may not send the hub to a private,
 * loopback or link-local one (into the network the hub runs in), and no service but one at a
 * link-local address may send it to a link-local one (169.254.169.254 is where clouds hand a
 * machine its credentials). A tool at an internal address may redirect within its network.
 */
export function redirectRefusal(from: readonly string[], to: readonly string[]): string | undefined {
  const fromInternal = from.some(isPrivateAddress);
  const fromLinkLocal = from.some(isLinkLocalAddress);
  for (const address of to) {
    if (isLinkLocalAddress(address) && !fromLinkLocal) return `${address} is a link-local address`;
    if (isPrivateAddress(address) && !fromInternal) return `${address} is a private address`;
  }
  return undefined;
}

/**
 * The header that carries a call's idempotency key (the common convention, Stripe's and the IETF
 * draft's): a turn computed again (its commit failed, its worker died) makes the same call with the
 * same key, so the service can answer it as the first one instead of booking twice.
 */
export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';

/**
 * Calls an HTTP tool and returns its response body as text, read as a stream and stopped at
 * `maxResponseBytes` (the rest is never downloaded). Redirects are followed here, not by fetch,
 * so that the secret headers (`headersFromEnv`) go only to the origin of the configured URL:
 * once a redirect leaves it, they are dropped for the rest of the chain. `idempotencyKey` goes
 * in `Idempotency-Key` unless the tool's author sets that header. Throws with a message fit for
 * the model when the call fails.
 */
export async function callHttpTool(
  http: HttpTool,
  input: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  idempotencyKey?: string,
): Promise<string> {
  const secrets: Record<string, string> = {};
  for (const [header, variable] of Object.entries(http.headersFromEnv)) {
    const value = env[variable];
    if (value === undefined || value === '')
      throw new Error(`the environment variable ${variable} is not set`);
    secrets[header] = value;
  }
  const headers: Record<string, string> = {
    accept: 'application/json, text/plain;q=0.9, */*;q=0.5',
    ...http.headers,
  };
  const named = (h: string) => h.toLowerCase() === IDEMPOTENCY_KEY_HEADER.toLowerCase();
  if (idempotencyKey && !Object.keys(headers).some(named) && !Object.keys(secrets).some(named))
    headers[IDEMPOTENCY_KEY_HEADER] = idempotencyKey;
  let url = new URL(http.url);
  let method: string = http.method;
  let body: string | undefined;
  if (http.method === 'GET') {
    for (const [key, value] of Object.entries(input))
      url.searchParams.append(key, typeof value === 'string' ? value : JSON.stringify(value));
  } else {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(input);
  }
  const origin = url.origin;
  const home = url;
  let homeAddresses: string[] | undefined;
  let sameOrigin = true;
  const signal = AbortSignal.timeout(http.timeoutMs);
  const failed = (err: Error): never => {
    throw new Error(
      err.name === 'TimeoutError' ? `no answer within ${http.timeoutMs} ms` : `unreachable (${err.message})`,
    );
  };

  for (let hop = 0; ; hop++) {
    const res: Response = await fetch(url, {
      method,
      headers: sameOrigin ? { ...headers, ...secrets } : headers,
      body,
      redirect: 'manual',
      signal,
    }).catch(failed);
    if (REDIRECTS.has(res.status)) {
      await res.body?.cancel();
      const location = res.headers.get('location');
      if (!location) throw new Error(`HTTP ${res.status} without a Location`);
      if (hop >= MAX_TOOL_REDIRECTS) throw new Error(`more than ${MAX_TOOL_REDIRECTS} redirects`);
      const next = new URL(location, url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:')
        throw new Error(`a redirect to ${next.protocol} is not followed`);
      // Off the tool's own host, the service decides where the hub goes next: checked on the
      // addresses the names stand for now (fetch looks them up again to connect).
      if (next.hostname !== home.hostname) {
        homeAddresses ??= await addressesOf(home).catch(failed);
        const refused = redirectRefusal(homeAddresses, await addressesOf(next).catch(failed));
        if (refused) throw new Error(`a redirect to ${next.host} is not followed: ${refused}`);
      }
      // As browsers do: 303 (and 301/302 after a POST) continue as a GET without the body.
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
        delete headers['content-type'];
      }
      url = next;
      sameOrigin &&= next.origin === origin;
      continue;
    }
    const text = await readCapped(res, http.maxResponseBytes).catch(failed);
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${truncateUtf16(text, 500)}`);
    return text;
  }
}

/**
 * The body as text, at most `maxBytes` of it: reading stops there and the connection is
 * released, so a response of any size costs at most that much memory and download.
 */
async function readCapped(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    const room = maxBytes - bytes;
    if (value.byteLength > room) {
      // A character cut in half at the cap is left out rather than shown as U+FFFD.
      text += decoder.decode(value.subarray(0, room), { stream: true });
      await reader.cancel();
      return `${text}… (cut at ${maxBytes} bytes)`;
    }
    bytes += value.byteLength;
    text += decoder.decode(value, { stream: true });
  }
}
