import { createHmac, timingSafeEqual } from 'node:crypto';

/** Slack's replay window: a request whose timestamp is further from now than this is refused. */
export const MAX_REQUEST_AGE_SECONDS = 5 * 60;
const VERSION = 'v0';
const SHA256_HEX_LENGTH = 64;

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/**
 * Checks a request from Slack: `X-Slack-Signature: v0=<hex>` is the HMAC-SHA256, keyed with the
 * signing secret, of `v0:<X-Slack-Request-Timestamp>:<raw body>`; the timestamp must be within
 * five minutes of now, so a captured request cannot be replayed later. The body must be the exact
 * bytes received (JSON for events, form-encoded for interactions).
 */
export function verifySlackSignature(input: {
  rawBody: Uint8Array | string;
  timestamp: string | undefined;
  signature: string | undefined;
  signingSecret: string;
  now?: Date;
}): SignatureCheck {
  const { timestamp, signature } = input;
  if (!timestamp || !/^\d{1,12}$/.test(timestamp))
    return { ok: false, reason: 'X-Slack-Request-Timestamp is missing' };
  const nowSeconds = Math.floor((input.now ?? new Date()).getTime() / 1000);
  if (Math.abs(nowSeconds - Number(timestamp)) > MAX_REQUEST_AGE_SECONDS)
    return { ok: false, reason: 'X-Slack-Request-Timestamp is more than five minutes from now' };
  const prefix = `${VERSION}=`;
  if (!signature?.startsWith(prefix)) return { ok: false, reason: 'X-Slack-Signature is missing or not v0' };
  const hex = signature.slice(prefix.length).toLowerCase();
  if (hex.length !== SHA256_HEX_LENGTH || !/^[0-9a-f]+$/.test(hex))
    return { ok: false, reason: 'X-Slack-Signature is malformed' };
  const expected = digest(input.rawBody, timestamp, input.signingSecret);
  if (!timingSafeEqual(Buffer.from(hex, 'hex'), expected))
    return { ok: false, reason: 'X-Slack-Signature does not match the body' };
  return { ok: true };
}

/** The header Slack would send for this body at this time (tests, and tools that replay requests). */
export function slackSignature(
  rawBody: Uint8Array | string,
  timestamp: string,
  signingSecret: string,
): string {
  return `${VERSION}=${digest(rawBody, timestamp, signingSecret).toString('hex')}`;
}

function digest(rawBody: Uint8Array | string, timestamp: string, secret: string): Buffer {
  return createHmac('sha256', secret).update(`${VERSION}:${timestamp}:`).update(rawBody).digest();
}
