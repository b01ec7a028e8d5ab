import { z } from 'zod';
import type { Channel } from '../envelope.ts';

/**
 * Channel identities as they are stored in `user_identities` and used as session keys, so that a
 * linked identity matches the sessions its channel opens: email addresses lower-cased, WhatsApp
 * numbers in E.164 (`+` and digits).
 */

export class InvalidIdentityError extends Error {
  override name = 'InvalidIdentityError';
}

const EMAIL = z.email();

/** The stored form of `nativeId` on `channel`, or InvalidIdentityError saying what is wrong. */
export function normalizeNativeId(channel: Channel, nativeId: string): string {
  const raw = nativeId.trim();
  if (raw === '') throw new InvalidIdentityError('native_id must not be empty');
  switch (channel) {
    case 'email': {
      const address = raw.toLowerCase();
      if (!EMAIL.safeParse(address).success)
        throw new InvalidIdentityError(`"${raw}" is not an email address`);
      return address;
    }
    case 'whatsapp': {
      // Spaces, dashes, dots and brackets are formatting; anything else is not a phone number.
      const compact = raw.replace(/[\s\-.()]/g, '');
      const match = /^\+?(\d{7,15})$/.exec(compact);
      if (!match) throw new InvalidIdentityError(`"${raw}" is not a phone number in international form`);
      return `+${match[1]}`;
    }
    default:
      return raw;
  }
}
