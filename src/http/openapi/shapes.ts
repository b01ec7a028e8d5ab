import { z } from 'zod';

/**
 * Shapes of what the API answers, for the OpenAPI document (requests are validated with the
 * routes' own schemas, which the document reuses). Objects stay open (`loose`): a field added
 * later is not a breaking change for a client.
 */

export const ErrorBody = z
  .object({
    error: z.object({
      code: z
        .string()
        .meta({ description: 'machine-readable: `invalid_request`, `unauthorized`, `not_found`, …' }),
      message: z.string().meta({ description: 'what went wrong, for a person' }),
    }),
  })
  .meta({
    id: 'Error',
    description: 'Every error: `{"error": {"code", "message"}}` with its 4xx/5xx status.',
  });

const Suggestion = z.looseObject({ text: z.string(), value: z.string().optional() });

export const ApiMessage = z
  .looseObject({
    seq: z.int(),
    role: z.enum(['user', 'assistant', 'agent', 'system', 'tool', 'note']),
    text: z.string(),
    created_at: z.string(),
    delivery_status: z.string().optional(),
    suggestions: z.array(Suggestion).optional(),
    attachments: z.array(z.unknown()).optional(),
  })
  .meta({ id: 'Message' });

export const SessionCreated = z
  .looseObject({
    session_id: z.uuid(),
    token: z.string().meta({ description: '256-bit bearer token (URL-safe base64); shown once' }),
    expires_at: z.string().nullable(),
    bot: z.string(),
  })
  .meta({ id: 'SessionCreated' });

export const SessionView = z
  .looseObject({
    session_id: z.uuid(),
    bot: z.string(),
    channel: z.string(),
    auth_level: z.string(),
    user_id: z.uuid().nullable(),
    created_at: z.string(),
    last_activity_at: z.string(),
    expires_at: z.string().nullable(),
    message_count: z.int(),
    last_seq: z.int(),
    state: z.looseObject({
      variables: z.record(z.string(), z.unknown()),
      context: z.record(z.string(), z.unknown()),
      kbs: z.array(z.unknown()),
      tools: z.array(z.unknown()),
      suggestions: z.array(z.unknown()),
      waiting_for_input: z.boolean(),
    }),
  })
  .meta({ id: 'Session' });

export const SessionEnded = z.looseObject({ session_id: z.uuid(), ended: z.literal(true) });

export const HistoryPage = z
  .looseObject({ session_id: z.uuid(), messages: z.array(ApiMessage), next_after: z.int() })
  .meta({ id: 'HistoryPage' });

export const ChatQueued = z
  .looseObject({ envelope_id: z.string(), status: z.literal('queued'), message: z.string().optional() })
  .meta({ id: 'ChatQueued' });
export const ChatCompleted = z
  .looseObject({
    envelope_id: z.string(),
    status: z.literal('completed'),
    duplicate: z.boolean().optional(),
    replies: z.array(ApiMessage),
  })
  .meta({ id: 'ChatCompleted' });

export const Agent = z
  .looseObject({
    agent_id: z.uuid(),
    name: z.string(),
    email: z.string().nullable(),
    role: z.string(),
    bots: z.array(z.string()),
    queues: z.array(z.string()),
    capacity: z.int(),
    status: z.string(),
    last_seen_at: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'Agent' });
export const AgentCreated = z.looseObject({ agent_id: z.uuid(), token: z.string() });
export const AgentList = z.looseObject({ agents: z.array(Agent) });
export const AgentDeleted = z.looseObject({ agent_id: z.uuid(), deleted: z.literal(true) });

export const OutboundAccepted = z
  .looseObject({
    message_id: z.uuid(),
    session_id: z.uuid().nullable(),
    status: z.enum(['queued', 'scheduled']),
  })
  .meta({ id: 'OutboundAccepted' });
export const OutboundStatus = z
  .looseObject({
    status: z.enum(['queued', 'scheduled', 'sent', 'delivered', 'read', 'failed', 'cancelled']),
    error: z.string().optional(),
    session_id: z.uuid().optional(),
  })
  .meta({ id: 'OutboundStatus' });
export const BroadcastAccepted = z
  .looseObject({
    broadcast_id: z.uuid(),
    total: z.int(),
    opted_out: z.int(),
    rate_per_second: z.number(),
  })
  .meta({ id: 'BroadcastAccepted' });
const BroadcastSummary = z.looseObject({
  broadcast_id: z.uuid(),
  bot: z.string(),
  channel: z.string(),
  total: z.int(),
  rate_per_second: z.number(),
  created_at: z.string(),
  dispatched_at: z.string().nullable(),
});
export const BroadcastList = z
  .looseObject({ broadcasts: z.array(BroadcastSummary) })
  .meta({ id: 'BroadcastList' });
export const BroadcastProgress = z
  .looseObject({
    broadcast_id: z.uuid(),
    bot: z.string(),
    channel: z.string(),
    status: z.enum(['running', 'completed']),
    rate_per_second: z.number(),
    total: z.int(),
    queued: z.int(),
    sent: z.int(),
    delivered: z.int(),
    failed: z.int(),
    opted_out: z.int(),
    created_at: z.string(),
    dispatched_at: z.string().nullable(),
  })
  .meta({ id: 'BroadcastProgress' });

/** A JSON object the document does not detail field by field (see README for its fields). */
export const AnyObject = z.looseObject({});

export const Conversation = z
  .looseObject({
    session_id: z.uuid(),
    bot: z.string(),
    channel: z.string(),
    person: z.looseObject({ name: z.string().nullable(), native_id: z.string() }),
    state: z
      .string()
      .nullable()
      .meta({ description: '`waiting`, `assigned`, or null when no handoff is open' }),
    queue: z.string().nullable(),
    waiting_since: z.string().nullable(),
    assigned_to: z.string().nullable(),
    last_message: z.looseObject({ role: z.string(), text: z.string(), created_at: z.string() }).nullable(),
  })
  .meta({ id: 'Conversation' });
export const ConversationList = z.looseObject({
  conversations: z.array(Conversation),
  next_before: z.string().nullable().meta({ description: 'the cursor of the next page (`before`), or null' }),
});

/** A session as the operator API lists it (`state`: its life state). */
export const ListedSession = z
  .looseObject({
    session_id: z.uuid(),
    bot: z.string(),
    channel: z.string(),
    native_key: z.string(),
    user_id: z.uuid().nullable(),
    auth_level: z.string(),
    state: z.string().meta({ description: 'life state: `active`, `idle`, `ended`' }),
    created_at: z.string(),
    last_activity_at: z.string(),
    ended_at: z.string().nullable(),
    end_reason: z.string().nullable(),
    message_count: z.int(),
  })
  .meta({ id: 'ListedSession' });
export const SessionList = z.looseObject({
  sessions: z.array(ListedSession),
  next_before: z.string().nullable(),
});
export const AdminSession = ListedSession.extend({
  expires_at: z.string().nullable(),
  last_seq: z.int(),
  meta: z.record(z.string(), z.unknown()),
  session_state: z.record(z.string(), z.unknown()),
}).meta({ id: 'AdminSession' });
export const Transcript = z.looseObject({
  session_id: z.uuid(),
  messages: z.array(
    z.looseObject({
      seq: z.int(),
      role: z.string(),
      text: z.string(),
      delivery_status: z.string().nullable(),
      envelope_id: z.string().nullable(),
      in_reply_to: z.string().nullable(),
      payload: z.record(z.string(), z.unknown()),
      created_at: z.string(),
    }),
  ),
  next_after: z.int(),
});
export const SessionEnding = z.looseObject({
  session_id: z.uuid(),
  status: z.literal('ending'),
  envelope_id: z.string(),
});
export const UserErased = z.looseObject({
  user_id: z.uuid(),
  erased: z.looseObject({ sessions: z.int(), messages: z.int(), identities: z.int(), memory: z.int() }),
  cache_cleared: z.boolean(),
});
