import { z } from 'zod';
import { InvalidIdentityError } from './declaration.ts';

/** Native-id normalisers that channels share: declarations pick theirs (`nativeId.normalize`). */

const EMAIL = z.email();

function nonEmpty(raw: string): string {
  const trimmed = raw.trim();
  if (trimmed === '') throw new InvalidIdentityError('native_id must not be empty');
  return trimmed;
}

/** An email address in lower case. */
export function normalizeEmailAddress(raw: string): string {
  const address = nonEmpty(raw).toLowerCase();
  if (!EMAIL.safeParse(address).success)
    throw new InvalidIdentityError(`"${raw.trim()}" is not an email address`);
  return address;
}

/** A phone number in E.164 (`+` and digits); spaces, dashes, dots and brackets are formatting. */
export function normalizePhoneNumber(raw: string): string {
  const trimmed = nonEmpty(raw);
  const compact = trimmed.replace(/[\s\-.()]/g, '');
  const match = /^\+?(\d{7,15})$/.exec(compact);
  if (!match) throw new InvalidIdentityError(`"${trimmed}" is not a phone number in international form`);
  return `+${match[1]}`;
}

/** An id the platform owns and the hub keeps as it is (trimmed). */
export function normalizeOpaqueId(raw: string): string {
  return nonEmpty(raw);
}
