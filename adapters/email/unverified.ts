/**
 * Unverified mail is keyed apart from verified mail of the same address: `unverified:<address>`.
 * A forged `From:` then never reaches the real person's session, their user record or their
 * memory, and an operator linking the address to a person does not link the forgeries with it.
 * Erasing the address's owner erases these sessions too (the channel declaration's
 * `nativeId.unverified`): what may be theirs goes with them.
 */
export const UNVERIFIED_PREFIX = 'unverified:';

/** The native id of mail from `address` that did not prove it came from there. */
export const unverifiedSenderId = (address: string): string => `${UNVERIFIED_PREFIX}${address}`;
