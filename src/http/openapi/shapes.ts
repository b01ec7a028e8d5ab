import { z } from 'zod';
import { METRICS } from '../../analytics/metrics.ts';
import { STAT_BUCKETS } from '../../store/stats.ts';

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
/** A colleague a conversation can be handed to: what the transfer picker needs, nothing personal. */
export const TransferTarget = z
  .looseObject({
    agent_id: z.uuid(),
    name: z.string(),
    status: z.enum(['available', 'away', 'offline']),
    open_conversations: z.int(),
    capacity: z.int(),
  })
  .meta({ id: 'TransferTarget' });
export const TransferTargets = z.looseObject({ agents: z.array(TransferTarget) });
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
export const SessionErased = z.looseObject({
  session_id: z.uuid(),
  erased: z.looseObject({
    sessions: z.int().meta({ description: 'the session and its sub-sessions' }),
    messages: z.int(),
    memory: z
      .int()
      .meta({ description: "USER MEMORY entries of a user nothing else reaches (an anonymous visitor's)" }),
  }),
  cache_cleared: z.boolean(),
});
export const UserErased = z.looseObject({
  user_id: z.uuid(),
  erased: z.looseObject({ sessions: z.int(), messages: z.int(), identities: z.int(), memory: z.int() }),
  cache_cleared: z.boolean(),
});

/** `POST /api/session/authenticate`: the session signed in, under a new token. */
export const SignedIn = z
  .looseObject({
    session_id: z.uuid(),
    token: z.string().meta({ description: 'the new bearer token (shown once; the old one is dead)' }),
    auth_level: z.enum(['authenticated', 'elevated']),
    user_id: z.uuid(),
  })
  .meta({ id: 'SignedIn' });

const UserIdentity = z.looseObject({
  channel: z.string(),
  native_id: z.string(),
  display_name: z.string().nullable(),
  created_at: z.string(),
});
export const UserView = z
  .looseObject({
    id: z.uuid(),
    display_name: z.string().nullable(),
    email: z.string().nullable(),
    external_id: z.string().nullable(),
    created_at: z.string(),
    identities: z.array(UserIdentity),
  })
  .meta({ id: 'User' });
export const IdentityLinked = z.looseObject({
  user_id: z.uuid(),
  channel: z.string(),
  native_id: z.string(),
  moved_from: z.uuid().optional().meta({ description: 'the user the identity was linked to before' }),
  sessions_moved: z.int().meta({ description: "the identity's open sessions, now the user's" }),
});
export const IdentityUnlinked = z.looseObject({
  user_id: z.uuid(),
  channel: z.string(),
  native_id: z.string(),
  unlinked: z.literal(true),
});

export const AnalyticsIndex = z.looseObject({
  metrics: z.array(z.enum(METRICS)),
  bots: z.array(z.string()),
  buckets: z.array(z.enum(STAT_BUCKETS)),
});
export const MetricAnswer = z
  .looseObject({
    metric: z.enum(METRICS),
    bucket: z.enum(STAT_BUCKETS),
    bot: z.string().nullable(),
    from: z.string(),
    to: z.string(),
    series: z.array(
      z.looseObject({
        name: z.string(),
        unit: z.enum(['count', 'ms', 'percent', 'stars']),
        points: z.array(
          z.looseObject({
            t: z.string().meta({ description: "the bucket's start, ISO 8601 UTC" }),
            v: z.number().nullable().meta({ description: 'null where the bucket has nothing to measure' }),
          }),
        ),
        total: z.number().nullable().meta({
          description: 'the sum (counts), the whole range (shares, averages); null for percentiles',
        }),
      }),
    ),
  })
  .meta({ id: 'MetricAnswer' });
export const AuditPage = z.looseObject({
  entries: z.array(
    z.looseObject({
      id: z.int(),
      at: z.string(),
      actor: z.enum(['agent', 'operator']),
      agent_id: z.uuid().nullable(),
      agent_name: z.string().nullable(),
      action: z.string(),
      session_id: z.uuid().nullable(),
      via: z.string(),
      ip: z.string().nullable(),
      user_agent: z.string().nullable(),
      detail: z.record(z.string(), z.unknown()),
      erased: z.boolean(),
    }),
  ),
  next_before: z.int().nullable().meta({ description: 'the cursor of the next page (`before`), or null' }),
});
export const SearchResults = z.looseObject({
  results: z.array(
    z.looseObject({
      session_id: z.uuid(),
      seq: z.int(),
      role: z.string(),
      bot: z.string(),
      channel: z.string(),
      user_id: z.uuid().nullable(),
      created_at: z.string(),
      snippet: z.string().meta({ description: 'the message, the matching words between « and »' }),
    }),
  ),
});
const TranscriptEntry = z.looseObject({
  seq: z.int(),
  role: z.string(),
  text: z.string(),
  agent_id: z.string().nullable(),
  delivery_status: z.string().nullable(),
  created_at: z.string(),
});
const PersonIdentity = z.looseObject({
  channel: z.string(),
  native_id: z.string(),
  name: z.string().nullable(),
});
const PersonSession = z.looseObject({
  session_id: z.uuid(),
  bot: z.string(),
  channel: z.string(),
  created_at: z.string(),
  ended_at: z.string().nullable(),
  message_count: z.int(),
});
export const DashboardTranscript = z
  .looseObject({
    session_id: z.uuid(),
    bot: z.string(),
    channel: z.string(),
    native_key: z.string(),
    user_id: z.uuid().nullable(),
    created_at: z.string(),
    ended_at: z.string().nullable(),
    messages: z.array(TranscriptEntry),
    identities: z.array(PersonIdentity),
    person_sessions: z.array(PersonSession),
  })
  .meta({ id: 'DashboardTranscript' });
export const TranscriptExport = z.looseObject({
  session_id: z.uuid(),
  bot: z.string(),
  channel: z.string(),
  created_at: z.string(),
  ended_at: z.string().nullable(),
  messages: z.array(TranscriptEntry),
});
export const SessionInspection = z.looseObject({
  session_id: z.uuid(),
  bot: z.string(),
  channel: z.string(),
  ended_at: z.string().nullable(),
  variables: z.record(z.string(), z.unknown()),
  context: z.record(z.string(), z.unknown()),
  kbs: z.array(z.unknown()),
  tools: z.array(z.unknown()),
  suggestions: z.array(z.unknown()),
  handoff: z.record(z.string(), z.unknown()).nullable(),
  dialog: z
    .looseObject({
      frames: z.array(z.record(z.string(), z.unknown())),
      hear: z.looseObject({
        variable: z.string(),
        type: z.string().nullable(),
        choices: z.array(z.string()).nullable(),
        tries: z.int(),
      }),
    })
    .nullable()
    .meta({ description: 'where the dialog waits (its frames, the HEAR), or null' }),
  debug: z.array(
    z.looseObject({
      id: z.int(),
      topic: z.unknown(),
      snapshot: z.unknown(),
      created_at: z.string(),
    }),
  ),
  events: z.array(z.looseObject({ type: z.string(), data: z.unknown(), created_at: z.string() })),
});
export const PersonSessions = z.looseObject({
  user_id: z.uuid(),
  identities: z.array(PersonIdentity),
  sessions: z.array(PersonSession),
});

/** `POST /api/web/session`: the hub's own chat page's session; the token is only in the cookie. */
export const WebSessionOpened = z.looseObject({ session_id: z.uuid(), bot: z.string() });
export const WhatsAppWebStatus = z.looseObject({
  state: z.string().meta({ description: 'the linked session: `starting`, `qr`, `ready`, `disconnected`, …' }),
  since: z.string(),
  qr: z.string().optional().meta({ description: 'the pairing code, while it waits to be scanned' }),
  qr_svg: z.string().optional().meta({ description: 'where the QR code is as an SVG image' }),
});

/** `GET /api/admin/sessions/{id}/debug`: the session's DEBUG SHOW snapshots, oldest first. */
export const DebugLog = z.looseObject({
  session_id: z.uuid(),
  entries: z.array(
    z.looseObject({
      id: z.int(),
      topic: z.unknown(),
      snapshot: z.unknown(),
      sub_session_id: z.string().optional(),
      created_at: z.string(),
    }),
  ),
  next_after: z.int().meta({ description: 'the cursor of the next page (`after`)' }),
});

const Percentiles = z.looseObject({
  p50: z.number().nullable(),
  p90: z.number().nullable(),
  p99: z.number().nullable(),
});
const Count = z.int().min(0);
/** `GET /api/admin/queue`: each queue as `switchboard queue status --json` prints it, and the scheduler's set-aside jobs. */
export const QueueStatusAnswer = z.object({
  queues: z.array(
    z.discriminatedUnion('driver', [
      z
        .object({
          queue: z
            .string()
            .meta({ description: '`inbound` (envelopes) or `outbound` (sessions with replies to send)' }),
          driver: z.literal('redis-lanes'),
          depth: Count.meta({ description: 'items queued in its lanes and not yet handled' }),
          readyLanes: Count.meta({ description: 'lanes waiting for a wake job to claim them' }),
          wakeJob: z
            .object({
              wake: z.int(),
              state: z.string().meta({ description: "BullMQ's state; `unknown`: not added, or gone" }),
            })
            .nullable()
            .meta({ description: 'the wake job marked for the ready lanes' }),
          jobs: z.object({ waiting: Count, active: Count, delayed: Count }),
          claimed: z
            .object({ lanes: Count, jobs: Count })
            .meta({ description: 'lanes claimed by wake jobs' }),
          stranded: z.object({ lanes: Count, jobs: Count }).meta({
            description: "of those, lanes held by jobs that are over: a worker's sweep hands them back",
          }),
          deadLetters: Count.meta({ description: 'items set aside after failing again and again' }),
        })
        .meta({ title: 'Shared queue (Redis)' }),
      z
        .object({
          queue: z.literal('inbound'),
          driver: z.literal('in-process'),
          depth: Count.meta({ description: 'envelopes in the inbox waiting for their turn' }),
          deadLetters: Count.meta({ description: 'envelopes set aside after failing again and again' }),
        })
        .meta({ title: 'Embedded queue (the inbox)' }),
    ]),
  ),
  scheduler: z
    .object({
      driver: z
        .enum(['bullmq', 'table'])
        .meta({ description: '`bullmq` (with Redis) or `table` (its jobs in the database)' }),
      failed: Count.meta({
        description:
          'one-off scheduled jobs set aside after failing their last attempt (`switchboard scheduler failed` lists them, `switchboard scheduler replay` runs them again)',
      }),
    })
    .meta({
      description:
        'the durable scheduler (delayed work: webhook retries, broadcast ticks, scheduled sends, handoff timeouts)',
    }),
});

/** `GET /api/admin/stats`. */
export const StatsAnswer = z
  .looseObject({
    from: z.string(),
    to: z.string(),
    bucket: z.enum(STAT_BUCKETS),
    buckets: z.array(
      z.looseObject({
        bucket: z.string(),
        bot: z.string(),
        channel: z.string(),
        sessions_started: z.int(),
        sessions_ended: z.int(),
        ended_by_reason: z.record(z.string(), z.int()),
        messages_in: z.int(),
        messages_out: z.int(),
      }),
    ),
    ended_sessions: z.array(
      z.looseObject({
        bot: z.string(),
        channel: z.string(),
        sessions: z.int(),
        duration_seconds: Percentiles,
        message_count: Percentiles,
      }),
    ),
    errors: z.array(
      z.looseObject({
        bot: z.string(),
        errors: z.int(),
        turns: z.int(),
        error_rate: z.number().nullable(),
      }),
    ),
    events: z.array(z.looseObject({ type: z.string(), count: z.int() })),
  })
  .meta({ id: 'Stats' });

/** A file a message carries, as an agent reads it. */
const AgentAttachment = z
  .looseObject({
    type: z.string().meta({ description: 'the MIME type (sniffed from the bytes), or a channel kind' }),
    name: z.string().optional(),
    size: z.int().optional().meta({ description: 'bytes' }),
    url: z.string().optional().meta({
      description:
        'a signed link to the bytes on the hub (`/api/files/{id}?exp=…&sig=…`, valid 15 minutes; every read hands out fresh ones), or the channel’s own http(s) URL; absent when the file is not this conversation’s',
    }),
    file_id: z.uuid().optional(),
  })
  .meta({ id: 'AgentAttachment' });

/** A file the hub did not keep (`too_large`, `type_refused`, `unavailable`): what the person was told. */
const RefusedFile = z
  .looseObject({
    type: z.string(),
    name: z.string().optional(),
    size: z.number().optional(),
    reason: z.string().meta({ description: '`too_large`, `type_refused` or `unavailable`' }),
    message: z.string().optional(),
  })
  .meta({ id: 'RefusedAttachment' });

/** `GET /api/agent/conversations/{id}`: the conversation as listed, with a page of its history. */
export const ConversationDetail = Conversation.extend({
  ended_at: z.string().nullable(),
  messages: z.array(
    z.looseObject({
      seq: z.int(),
      role: z.string(),
      text: z.string(),
      created_at: z.string(),
      delivery_status: z.string().optional(),
      agent_id: z.string().optional(),
      agent_name: z
        .string()
        .nullable()
        .optional()
        .meta({ description: 'the name of the agent of `agent_id`; null once that agent is removed' }),
      suggestions: z.array(z.unknown()).optional(),
      attachments: z.array(AgentAttachment).optional(),
      refused_attachments: z.array(RefusedFile).optional(),
      cards: z.array(z.unknown()).optional().meta({
        description:
          'cards the bot sent (title, text, image with a `url`, buttons), as the session API shows them',
      }),
      text_is_fallback: z.boolean().optional().meta({
        description: '`text` only stands for the files or cards (what text-only channels were sent)',
      }),
    }),
  ),
  next_before: z.int().nullable().meta({ description: 'the cursor of the older page (`before`), or null' }),
  variables: z.record(z.string(), z.unknown()),
  context: z.record(z.string(), z.unknown()),
  identities: z.array(PersonIdentity),
  events: z.array(z.looseObject({ type: z.string(), data: z.unknown(), created_at: z.string() })),
}).meta({ id: 'ConversationDetail' });
