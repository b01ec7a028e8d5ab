import { z } from 'zod';

/**
 * What a Telegram envelope carries in `replyTo`, stored with the session and read by the sender
 * in whichever process sends: the chat to answer in and, in groups, the message to answer.
 */
export const TelegramReplyToSchema = z.object({
  chatId: z.string().regex(/^-?\d+$/),
  /** Groups: the person's message, so the answer is shown as a reply to it. */
  replyToMessageId: z.number().int().optional(),
  /** Forum supergroups: the topic the person wrote in. */
  topicId: z.number().int().optional(),
});
export type TelegramReplyTo = z.infer<typeof TelegramReplyToSchema>;
