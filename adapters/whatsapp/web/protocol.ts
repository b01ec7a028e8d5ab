import { z } from 'zod';

/*
 * How a process without the linked WhatsApp Web session sends through the gateway that holds it:
 * a request on the bus, answered on the asker's own reply topic. The request carries a key
 * (session, reply, piece) so a retried request after a lost answer is not sent twice.
 */

export const SEND_TOPIC = 'whatsapp-web:send';
export const replyTopic = (instanceId: string) => `whatsapp-web:reply:${instanceId}`;

export const SendRequestSchema = z.object({
  type: z.literal('whatsapp-web.send'),
  requestId: z.string().min(1),
  /** Identifies what is sent (`<session>:<seq>`): the same key is sent once. */
  key: z.string().min(1),
  chatId: z.string().min(1),
  /** The text; with a file, its caption (may be empty). */
  text: z.string(),
  /** A file of the store, sent as a `MessageMedia` (the gateway reads the bytes). */
  file: z.object({ fileId: z.uuid() }).optional(),
  replyTopic: z.string().min(1),
});
export type SendRequest = z.infer<typeof SendRequestSchema>;

export const SendAnswerSchema = z.discriminatedUnion('ok', [
  z.object({
    type: z.literal('whatsapp-web.sent'),
    requestId: z.string(),
    ok: z.literal(true),
    messageId: z.string(),
  }),
  z.object({
    type: z.literal('whatsapp-web.sent'),
    requestId: z.string(),
    ok: z.literal(false),
    error: z.string(),
    retryable: z.boolean(),
  }),
]);
export type SendAnswer = z.infer<typeof SendAnswerSchema>;
