import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 256 bits from the CSPRNG. */
export const TOKEN_BYTES = 32;

/** A new session token: 256 random bits, URL-safe base64 (43 characters). */
export function newToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

/** What is stored instead of the token. A fast hash is right here: the token has 256 bits of entropy. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Constant-time comparison of a presented token with a stored hash. */
export function tokenMatches(token: string, storedHash: Buffer): boolean {
  const presented = hashToken(token);
  return presented.length === storedHash.length && timingSafeEqual(presented, storedHash);
}

/** Only the characters a token can have, and its exact length: anything else is not worth a lookup. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
