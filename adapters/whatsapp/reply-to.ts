import { z } from 'zod';

/**
 * What a WhatsApp envelope carries in `replyTo`, stored with the session and read by the
 * sender in whichever process sends: the transport, the address, and when the person last wrote.
 */
export const CloudReplyToSchema = z.object({
  transport: z.literal('cloud'),
  /** The business number that received the message, and so answers it. */
  phoneNumberId: z.string().min(1),
  /** The person's WhatsApp id: the `to` of our messages. */
  waId: z.string().min(1),
  /**
   * The person's last message: mark-as-read and the typing indicator refer to it. Absent when the
   * business wrote first (an operator's message to someone who never wrote).
   */
  messageId: z.string().min(1).optional(),
  /** When the person last wrote: the 24-hour customer service window runs from here. Absent: never (closed). */
  at: z.iso.datetime({ offset: true }).optional(),
});
export type CloudReplyTo = z.infer<typeof CloudReplyToSchema>;

export const WebReplyToSchema = z.object({
  transport: z.literal('web'),
  /** The chat to answer in: `5511999999999@c.us`, a `@lid` chat, or a group `@g.us`. */
  chatId: z.string().min(1),
});
export type WebReplyTo = z.infer<typeof WebReplyToSchema>;

export const ReplyToSchema = z.discriminatedUnion('transport', [CloudReplyToSchema, WebReplyToSchema]);
export type WhatsAppReplyTo = z.infer<typeof ReplyToSchema>;
