import { createHmac, timingSafeEqual } from 'node:crypto';

/** What `setWebhook` accepts as `secret_token`: 1–256 characters of A-Z, a-z, 0-9, _ and -. */
export const SECRET_TOKEN_PATTERN = /^[A-Za-z0-9_-]{1,256}$/;

/** The header Telegram sends the secret back in, with every update. */
export const SECRET_TOKEN_HEADER = 'x-telegram-bot-api-secret-token';

/**
 * Checks `X-Telegram-Bot-Api-Secret-Token` against the secret given to `setWebhook`. Telegram
 * signs nothing: the secret in the header is the whole proof that an update comes from it.
 */
export function verifySecretToken(header: string | undefined, secret: string): boolean {
  if (header === undefined || !SECRET_TOKEN_PATTERN.test(header)) return false;
  // Hash both sides so the comparison takes the same time whatever their lengths.
  const given = createHmac('sha256', 'telegram-secret').update(header).digest();
  const expected = createHmac('sha256', 'telegram-secret').update(secret).digest();
  return timingSafeEqual(given, expected);
}
