import { isOurMessageId } from './thread.ts';

/**
 * Mail that must never be answered, or mail loops follow: auto-replies (vacation notices),
 * bounces, list and bulk mail, and the mail we sent ourselves. Such mail is recorded in the
 * session but the bot is not run for it.
 */
export type NoReplyReason =
  | 'auto-submitted'
  | 'auto-reply-header'
  | 'precedence'
  | 'mailing-list'
  | 'list-unsubscribe'
  | 'no-reply-address'
  | 'bounce'
  | 'mailer-daemon'
  | 'null-return-path'
  | 'own-message';

export interface NoReplySignals {
  /** Header values by lower-case name, unfolded (the first occurrence when repeated). */
  header(name: string): string | undefined;
  /** The From address, lower-case. */
  from: string | undefined;
  /** The Return-Path address: `''` for the null path `<>`, undefined when the header is absent. */
  returnPath: string | undefined;
  /** The top-level content type, lower-case (`multipart/report` for delivery reports). */
  contentType: string | undefined;
  messageId: string;
}

export interface Ours {
  /** Our own addresses (the From we send with), lower-case. */
  addresses: ReadonlySet<string>;
  /** The domain of the Message-IDs we generate. */
  messageIdDomain: string;
}

const SYSTEM_SENDER = /^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon)$/i;
const BULK_PRECEDENCE = /^(?:bulk|list|junk|auto_reply)$/i;
/**
 * Senders that say nobody reads what is sent back: `noreply`, `no-reply`, `no_reply`,
 * `donotreply`, `do-not-reply`, also with a suffix (`no-reply-aws`, `noreply+tag`).
 */
const NO_REPLY_SENDER = /^(?:no|do[-_.]?not)[-_.]?reply(?:[-_.+].*)?$/i;

/** Why this mail gets no answer, or undefined when it is a person writing to us. */
export function noReplyReason(mail: NoReplySignals, ours: Ours): NoReplyReason | undefined {
  if (mail.from && ours.addresses.has(mail.from)) return 'own-message';
  if (isOurMessageId(mail.messageId, ours.messageIdDomain)) return 'own-message';
  // RFC 3834: anything but "no" was sent by a machine (auto-replied, auto-generated, auto-notified).
  const autoSubmitted = mail.header('auto-submitted')?.split(';')[0]?.trim().toLowerCase();
  if (autoSubmitted && autoSubmitted !== 'no') return 'auto-submitted';
  if (mail.header('x-autoreply') !== undefined || mail.header('x-autorespond') !== undefined)
    return 'auto-reply-header';
  const precedence = mail.header('precedence')?.trim();
  if (precedence && BULK_PRECEDENCE.test(precedence)) return 'precedence';
  if (mail.header('list-id') !== undefined) return 'mailing-list';
  // RFC 2369 / RFC 8058: newsletters and ESP mail often carry only these, no List-Id or Precedence.
  if (mail.header('list-unsubscribe') !== undefined || mail.header('list-unsubscribe-post') !== undefined)
    return 'list-unsubscribe';
  if (mail.contentType === 'multipart/report') return 'bounce';
  const local = mail.from?.split('@')[0];
  if (local && SYSTEM_SENDER.test(local)) return 'mailer-daemon';
  if (local && NO_REPLY_SENDER.test(local)) return 'no-reply-address';
  if (mail.returnPath === '') return 'null-return-path';
  return undefined;
}
