import { z } from 'zod';

/** The events a bot's webhook endpoint may subscribe to. */
export const WEBHOOK_EVENT_TYPES = [
  'session.started',
  'session.ended',
  'session.erased',
  'message.received',
  'message.sent',
  'message.delivered',
  'message.failed',
  'handoff.requested',
  'handoff.assigned',
  'handoff.transferred',
  'handoff.ended',
  'rating.received',
  'broadcast.started',
  'broadcast.progress',
  'broadcast.dispatched',
  'broadcast.completed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** One entry of `webhooks` in bot.json. */
export const WebhookSettingsSchema = z
  .object({
    url: z.url({ protocol: /^https?$/ }),
    /** The environment variable holding the signing secret (the secret never sits in bot.json). */
    secretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name'),
    events: z.array(z.enum(WEBHOOK_EVENT_TYPES)).min(1),
  })
  .strict();
export type WebhookSettings = z.infer<typeof WebhookSettingsSchema>;

export const WebhooksSettingsSchema = z.array(WebhookSettingsSchema).default([]);

/** An endpoint's key in the outbox: one per bot and URL. */
export function endpointKey(bot: string, url: string): string {
  return `${bot} ${url}`;
}
