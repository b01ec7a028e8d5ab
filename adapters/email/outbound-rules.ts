import { randomUUID } from 'node:crypto';
import { type ChannelOutbound, type OutboundDraft, refuse } from '../../src/outbound/capability.ts';
import { type EmailReplyTo, EmailReplyToSchema } from './reply-to.ts';

/**
 * The Message-ID of the mail that starts a thread the business opens: derived from the outbound
 * message's id, so a message placed again after a crash opens the same thread. It is the thread's
 * root, and the session's key (`address#<it>`), which the person's answers name in References.
 */
export const newThreadId = (key: string, domain: string) => `sb.${key}.0@${domain}`;

/**
 * Email's rules for messages the business sends first: with a `subject`, a new thread of its
 * own (a new session keyed with it); without one, inside the person's latest thread, and with no
 * thread at all 400 `subject_required`.
 */
export function emailOutbound(options: { messageIdDomain: string }): ChannelOutbound {
  return {
    templates: false,
    prepare(draft: OutboundDraft) {
      if (draft.subject !== undefined) {
        const thread = newThreadId(draft.key ?? randomUUID(), options.messageIdDomain);
        const replyTo: EmailReplyTo = {
          messageId: thread,
          references: [],
          subject: draft.subject,
          to: { address: draft.to },
          mailbox: '',
          bot: draft.bot,
          envelopeId: `outbound:${thread}`,
          newThread: true,
        };
        return { ok: true, thread, replyTo };
      }
      if (draft.open && EmailReplyToSchema.safeParse(draft.open.replyTo).success) return { ok: true };
      const latest = EmailReplyToSchema.safeParse(draft.latest?.replyTo);
      if (latest.success) return { ok: true, replyTo: latest.data };
      return refuse(
        400,
        'subject_required',
        `there is no email thread with ${draft.to} yet: give a "subject" to start one`,
      );
    },
  };
}
