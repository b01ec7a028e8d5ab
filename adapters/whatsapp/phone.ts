import { parsePhoneNumberFromString } from 'libphonenumber-js';

/**
 * A WhatsApp id (`16505551234`, `+1 650-555-1234`, `5511999999999@c.us`) as an E.164 phone
 * number (`+16505551234`), the session key of the channel. Undefined when it is no phone number.
 * WhatsApp has already verified the number, so a number libphonenumber's metadata does not
 * (yet) know as valid is still kept in its E.164 form.
 */
export function toE164(id: string): string | undefined {
  const digits = id.replace(/@.*$/, '').replace(/[^\d]/g, '');
  if (digits.length < 7 || digits.length > 15) return undefined;
  const parsed = parsePhoneNumberFromString(`+${digits}`);
  return parsed?.number ?? `+${digits}`;
}
