import type { OutboundReply } from '../../../src/delivery/sender.ts';
import type { Suggestion } from '../../../src/store/records.ts';
import type { EmailAddress } from '../config.ts';
import type { EmailReplyTo } from '../reply-to.ts';
import { renderSuggestions } from './suggestions.ts';
import { ourMessageId, replyReferences, replySubject } from './thread.ts';

/**
 * Headers on every mail we send. `Auto-Submitted: auto-replied` (RFC 3834) tells vacation
 * responders and other bots not to answer us; `X-Auto-Response-Suppress` asks the same of Exchange.
 */
export const LOOP_GUARD_HEADERS = {
  'Auto-Submitted': 'auto-replied',
  'X-Auto-Response-Suppress': 'All',
} as const;

export interface OutgoingMail {
  from: EmailAddress;
  to: EmailAddress;
  subject: string;
  text: string;
  /** With angle brackets, as the headers carry them. */
  messageId: string;
  /** Absent on the first mail of a thread the business starts. */
  inReplyTo?: string;
  references?: string[];
  headers: Record<string, string>;
}

export interface ComposedReply {
  /** Without brackets: what the mail is known by (the replies' channel message id). */
  messageId: string;
  mail: OutgoingMail;
  /** The numbered choices the mail offers, in order. */
  suggestions: Suggestion[];
}

/** One mail answering one received mail, joining all the replies of a turn. */
export function composeReply(input: {
  replies: readonly OutboundReply[];
  replyTo: EmailReplyTo;
  from: EmailAddress;
  messageIdDomain: string;
  sessionId: string;
}): ComposedReply {
  const { replies, replyTo } = input;
  const first = replies[0];
  if (!first) throw new Error('composeReply needs at least one reply');
  // A thread the business starts: its first mail is the root the session is keyed with.
  const messageId = replyTo.newThread
    ? replyTo.messageId
    : ourMessageId(input.sessionId, first.seq, input.messageIdDomain);
  const suggestions = replies.flatMap((r) => r.payload.suggestions ?? []);
  const parts = replies.map((r) =>
    [r.text.trim(), ...attachmentLines(r.payload.attachments)].filter(Boolean).join('\n'),
  );
  if (suggestions.length > 0) parts.push(renderSuggestions(suggestions));
  return {
    messageId,
    suggestions,
    mail: {
      from: input.from,
      to: replyTo.to,
      subject: replyTo.newThread ? replyTo.subject : replySubject(replyTo.subject),
      text: `${parts.filter(Boolean).join('\n\n')}\n`,
      messageId: `<${messageId}>`,
      ...(replyTo.newThread
        ? {}
        : {
            inReplyTo: `<${replyTo.messageId}>`,
            references: replyReferences(replyTo).map((id) => `<${id}>`),
          }),
      headers: { ...LOOP_GUARD_HEADERS },
    },
  };
}

/** A bot's attachments travel as links: `name: url`. */
function attachmentLines(attachments: unknown[] | undefined): string[] {
  if (!attachments) return [];
  return attachments.flatMap((a) => {
    if (!a || typeof a !== 'object') return [];
    const { url, name } = a as { url?: unknown; name?: unknown };
    if (typeof url !== 'string' || !url) return [];
    return [typeof name === 'string' && name ? `${name}: ${url}` : url];
  });
}
