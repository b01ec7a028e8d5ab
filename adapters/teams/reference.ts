import type { ConversationReference } from 'botbuilder';
import { z } from 'zod';

const AccountSchema = z.looseObject({ id: z.string().min(1), name: z.string().nullish() });

/**
 * What a Teams envelope carries in `replyTo`, stored with the session: botbuilder's
 * ConversationReference of the person's last activity. Any worker process hands it to
 * `continueConversationAsync` to answer, show "typing…", or write later.
 */
export const ReferenceSchema = z.looseObject({
  channelId: z.string().min(1),
  serviceUrl: z.url({ protocol: /^https?$/ }),
  conversation: z.looseObject({
    id: z.string().min(1),
    conversationType: z.string().nullish(),
    isGroup: z.boolean().nullish(),
    tenantId: z.string().nullish(),
  }),
  bot: AccountSchema,
  user: AccountSchema,
  /** The person's message; absent when the reference comes from the bot being added. */
  activityId: z.string().nullish(),
  locale: z.string().nullish(),
});
export type StoredReference = z.infer<typeof ReferenceSchema>;

/** The stored reference as botbuilder types it. */
export function asConversationReference(reference: StoredReference): Partial<ConversationReference> {
  return reference as unknown as Partial<ConversationReference>;
}
