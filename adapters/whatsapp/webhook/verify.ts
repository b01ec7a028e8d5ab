import { createHmac, timingSafeEqual } from 'node:crypto';

const SIGNATURE_PREFIX = 'sha256=';
const SHA256_HEX_LENGTH = 64;

/**
 * Checks `X-Hub-Signature-256: sha256=<hex>`: the HMAC-SHA256 of the raw request body keyed
 * with the app secret. The body must be the exact bytes received — re-serialised JSON differs.
 */
export function verifySignature(rawBody: Uint8Array, header: string | undefined, appSecret: string): boolean {
  if (!header?.startsWith(SIGNATURE_PREFIX)) return false;
  const hex = header.slice(SIGNATURE_PREFIX.length).trim().toLowerCase();
  if (hex.length !== SHA256_HEX_LENGTH || !/^[0-9a-f]+$/.test(hex)) return false;
  const expected = createHmac('sha256', appSecret).update(rawBody).digest();
  return timingSafeEqual(Buffer.from(hex, 'hex'), expected);
}

/** Computes the header value Meta would send for this body (tests, and tools that replay webhooks). */
export function signatureHeader(rawBody: Uint8Array | string, appSecret: string): string {
  return `${SIGNATURE_PREFIX}${createHmac('sha256', appSecret).update(rawBody).digest('hex')}`;
}

export type HandshakeResult = { ok: true; challenge: string } | { ok: false; reason: string };

/**
 * The subscription handshake: Meta sends `hub.mode=subscribe`, `hub.verify_token` and
 * `hub.challenge`, and expects the challenge echoed when the token is ours.
 */
export function checkHandshake(
  query: Record<string, string | undefined>,
  verifyToken: string,
): HandshakeResult {
  const mode = query['hub.mode'];
  const token = query['hub.verify_token'];
  const challenge = query['hub.challenge'];
  if (mode !== 'subscribe') return { ok: false, reason: 'hub.mode is not "subscribe"' };
  if (challenge === undefined || challenge === '') return { ok: false, reason: 'hub.challenge is missing' };
  if (token === undefined || !sameSecret(token, verifyToken))
    return { ok: false, reason: 'hub.verify_token does not match' };
  return { ok: true, challenge };
}

function sameSecret(given: string, expected: string): boolean {
  // Hash both sides so the comparison takes the same time whatever their lengths.
  const a = createHmac('sha256', 'handshake').update(given).digest();
  const b = createHmac('sha256', 'handshake').update(expected).digest();
  return timingSafeEqual(a, b);
}
