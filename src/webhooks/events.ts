import { z } from 'zod';
import type { WebhookEventType } from './settings.ts';

/**
 * What a receiver gets: the body of each event type, as the triggers (migrations 0026, 0031,
 * 0040–0042), the broadcast run (src/outbound/broadcasts.ts) and erasure (src/store/erasure.ts)
 * write it. The OpenAPI document publishes these under `webhooks`; the tests check every event
 * they receive against them.
 */

const channel = z.string().meta({ description: 'the channel (`whatsapp`, `web`, `api`, …)' });
const uuid = z.uuid();
const count = z.number().int().min(0);

const messageRecorded = z.object({
  channel,
  seq: z.number().int().meta({ description: "the message's number in its session" }),
  role: z.string().meta({ description: '`user`, `assistant` or `agent`' }),
  text: z.string(),
  envelope_id: z.string().nullable(),
  in_reply_to: z.string().nullable(),
});
const messageStatus = z.object({
  channel,
  seq: z.number().int(),
  status: z.string().meta({ description: '`delivered`, `read` or `failed`' }),
  error: z.string().nullable(),
});
const broadcastAccepted = z.object({
  broadcast_id: uuid,
  channel,
  total: count,
  opted_out: count,
  rate_per_second: z.number(),
});
const broadcastCounts = (status: 'running' | 'completed') =>
  z.object({
    broadcast_id: uuid,
    channel,
    status: z.literal(status),
    total: count,
    queued: count,
    sent: count,
    delivered: count,
    failed: count,
    opted_out: count,
  });

const BROADCAST = 'null: a broadcast event belongs to no session';

/**
 * Each event type: when it is sent, and its `data`; `noSession`: why its `session_id` is null, for
 * an event that belongs to no (existing) session.
 */
export const WEBHOOK_EVENTS: Record<
  WebhookEventType,
  { summary: string; data: z.ZodObject; noSession?: string }
> = {
  'session.started': {
    summary: 'A session is opened',
    data: z.object({ channel, parent_session_id: uuid.nullable() }),
  },
  'session.ended': {
    summary: 'A session ends (closed, idled out, expired, its parent ended)',
    data: z.object({ channel, reason: z.string().nullable(), message_count: count }),
  },
  'session.erased': {
    summary:
      'A session was erased (its person asked, or an operator erased it): delete everything you hold of it. Sent once per erased session, sub-sessions included; it carries no content',
    data: z.object({ session_id: uuid.meta({ description: 'the erased session' }), channel }),
    noSession: 'null: the session no longer exists (`data.session_id` names it)',
  },
  'message.received': { summary: "The person's message is recorded", data: messageRecorded },
  'message.sent': {
    summary: "A reply (the bot's or an agent's) is recorded, before it is sent",
    data: messageRecorded,
  },
  'message.delivered': { summary: 'The platform confirmed a reply (delivered or read)', data: messageStatus },
  'message.failed': { summary: "A reply's delivery was given up", data: messageStatus },
  'handoff.requested': {
    summary: 'The conversation is handed to a human (waiting, or straight to an agent)',
    data: z.object({ handoff_id: uuid, queue: z.string().nullable() }),
  },
  'handoff.assigned': {
    summary: 'An agent has the conversation',
    data: z.object({ handoff_id: uuid, agent_id: uuid.nullable() }),
  },
  'handoff.transferred': {
    summary: 'The conversation went to another agent',
    data: z.object({ handoff_id: uuid, from_agent_id: uuid.nullable(), agent_id: uuid.nullable() }),
  },
  'handoff.ended': {
    summary: 'The handoff ended; the bot is back',
    data: z.object({ handoff_id: uuid, reason: z.string().nullable(), agent_id: uuid.nullable() }),
  },
  'rating.received': {
    summary: 'A person answered ASK RATING',
    data: z.object({ channel, score: z.union([z.number(), z.string()]).nullable() }),
  },
  'broadcast.started': { summary: 'A broadcast is accepted', data: broadcastAccepted, noSession: BROADCAST },
  'broadcast.progress': {
    summary: "A running broadcast's counts (at most every WEBHOOK_BROADCAST_PROGRESS_MS, when they changed)",
    data: broadcastCounts('running'),
    noSession: BROADCAST,
  },
  'broadcast.dispatched': {
    summary: 'Every recipient of a broadcast has been handed to their session (or set aside)',
    data: broadcastAccepted,
    noSession: BROADCAST,
  },
  'broadcast.completed': {
    summary: 'No recipient of a broadcast is queued any more: its final counts',
    data: broadcastCounts('completed'),
    noSession: BROADCAST,
  },
};

/** The body of one event type: `{"id","type","created_at","bot","session_id","data"}`. */
export function webhookEventSchema(type: WebhookEventType) {
  return z
    .object({
      id: uuid.meta({ description: 'the same for every endpoint and every retry: deduplicate on it' }),
      type: z.literal(type),
      created_at: z.iso.datetime({ offset: true }),
      bot: z.string(),
      session_id: WEBHOOK_EVENTS[type].noSession
        ? z.null().meta({ description: WEBHOOK_EVENTS[type].noSession })
        : uuid,
      data: WEBHOOK_EVENTS[type].data.strict(),
    })
    .strict();
}

/** Any event a receiver may get. */
export const WebhookEventSchema = z.discriminatedUnion(
  'type',
  (Object.keys(WEBHOOK_EVENTS) as WebhookEventType[]).map(webhookEventSchema) as unknown as [
    ReturnType<typeof webhookEventSchema>,
    ...ReturnType<typeof webhookEventSchema>[],
  ],
);
