import { type ChannelOutbound, type OutboundDraft, refuse } from '../../src/outbound/capability.ts';
import { windowOpen } from './cloud/sender.ts';
import { type CloudReplyTo, ReplyToSchema, type WhatsAppReplyTo } from './reply-to.ts';

/**
 * WhatsApp's rules for messages the business sends first. Cloud API: free text only inside the
 * 24-hour customer service window (from the person's last message), templates at any time, from
 * a business number that serves the bot. WhatsApp Web: no window and no templates.
 */
export function whatsAppOutbound(options: {
  /** Business numbers (phone number id → bot) when the Cloud API is configured. */
  cloudNumbers?: ReadonlyMap<string, string>;
  web: boolean;
}): ChannelOutbound {
  const numberFor = (bot: string) => [...(options.cloudNumbers ?? [])].find(([, b]) => b === bot)?.[0];
  return {
    templates: options.cloudNumbers !== undefined,
    prepare(draft: OutboundDraft) {
      const known = addressOf(draft);
      const transport =
        known?.transport ?? (options.cloudNumbers ? 'cloud' : options.web ? 'web' : undefined);
      const digits = draft.to.replace(/^\+/, '');
      if (transport === 'web') {
        if (draft.template)
          return refuse(422, 'not_supported', 'WhatsApp Web has no template messages: send "text"');
        return { ok: true, replyTo: known ?? { transport: 'web', chatId: `${digits}@c.us` } };
      }
      if (transport !== 'cloud') return refuse(400, 'channel_not_configured', 'WhatsApp is not configured');
      const cloud = known as CloudReplyTo | undefined;
      if (!draft.template && !(cloud && windowOpen(cloud, draft.now.getTime())))
        return refuse(
          422,
          'template_required',
          `${draft.to} has not written in the last 24 hours: outside WhatsApp's customer service window only a "template" message can be sent`,
        );
      if (cloud) return { ok: true, replyTo: cloud };
      const phoneNumberId = numberFor(draft.bot);
      if (!phoneNumberId)
        return refuse(
          409,
          'no_business_number',
          `no WhatsApp business number answers for bot "${draft.bot}" (WHATSAPP_NUMBERS)`,
        );
      return {
        ok: true,
        replyTo: { transport: 'cloud', phoneNumberId, waId: digits } satisfies CloudReplyTo,
      };
    },
  };
}

/** The address earlier messages left: the open session's, else the latest one's. */
function addressOf(draft: OutboundDraft): WhatsAppReplyTo | undefined {
  for (const session of [draft.open, draft.latest]) {
    const parsed = ReplyToSchema.safeParse(session?.replyTo);
    if (parsed.success) return parsed.data;
  }
  return undefined;
}
