import { type ChannelOutbound, type OutboundDraft, refuse } from '../../src/outbound/capability.ts';
import { ReferenceSchema } from './reference.ts';

/**
 * Teams' rules for messages the business sends first: a proactive message needs the conversation
 * reference that the person's earlier messages or the bot's installation left with a session.
 */
export const teamsOutbound: ChannelOutbound = {
  templates: false,
  prepare(draft: OutboundDraft) {
    for (const session of [draft.open, draft.latest]) {
      const reference = ReferenceSchema.safeParse(session?.replyTo);
      if (reference.success) return { ok: true, replyTo: reference.data };
    }
    return refuse(
      409,
      'no_conversation_reference',
      `no conversation with ${draft.to} is known: Teams lets a bot write first only where the person wrote to it or installed it`,
    );
  },
};
