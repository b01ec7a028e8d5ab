import { z } from 'zod';

/** What the sender needs to answer a mail, carried in the envelope's `replyTo` (validated when read back). */
export const EmailReplyToSchema = z.object({
  /** The Message-ID of the mail answered, without brackets. */
  messageId: z.string().min(1),
  /** Its References, without brackets, oldest first. */
  references: z.array(z.string()).default([]),
  subject: z.string().default(''),
  /** The address to answer: the mail's Reply-To, else its From. */
  to: z.object({ address: z.string().min(3), name: z.string().optional() }),
  /** The folder it arrived in and the bot serving it. */
  mailbox: z.string(),
  bot: z.string(),
  /** The envelope it became. */
  envelopeId: z.string(),
  /**
   * A thread the business starts (an outbound message with a subject): the first mail has
   * `messageId` as its own Message-ID, `subject` as it is, and answers nothing.
   */
  newThread: z.boolean().optional(),
});
export type EmailReplyTo = z.infer<typeof EmailReplyToSchema>;
