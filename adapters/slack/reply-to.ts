import { z } from 'zod';

const Ts = z.string().regex(/^\d+\.\d+$/);

/**
 * What a Slack envelope carries in `replyTo`, stored with the session and read by the sender in
 * whichever process sends: the conversation, and the thread the answer belongs in.
 */
export const SlackReplyToSchema = z.object({
  teamId: z.string().min(1),
  channel: z.string().min(1),
  /** Answer in this thread (a mention's thread, or a direct message written in a thread). */
  threadTs: Ts.optional(),
});
export type SlackReplyTo = z.infer<typeof SlackReplyToSchema>;
