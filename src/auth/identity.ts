import { InvalidIdentityError } from '../channels/declaration.ts';
import { channels } from '../channels/registry.ts';
import type { Channel } from '../envelope.ts';

/**
 * Channel identities as they are stored in `user_identities` and used as session keys, so that a
 * linked identity matches the sessions its channel opens: each channel's declaration says how
 * (email addresses lower-cased, phone numbers in E.164, ...).
 */

export { InvalidIdentityError };

/** The stored form of `nativeId` on `channel`, or InvalidIdentityError saying what is wrong. */
export function normalizeNativeId(channel: Channel, nativeId: string): string {
  const declaration = channels.get(channel);
  if (!declaration) throw new InvalidIdentityError(`unknown channel "${channel}"`);
  return declaration.nativeId.normalize(nativeId);
}
