import { z } from 'zod';
import {
  ChatBody,
  CreateSessionBody,
  HistoryQuery as SessionHistoryQuery,
} from '../../../adapters/api/routes.ts';
import { CookieSessionBody } from '../../../adapters/web/cookie-session.ts';
import { AgentPatchSchema, NewAgentSchema } from '../../agents/accounts.ts';
import { BroadcastRequestSchema } from '../../outbound/broadcasts.ts';
import { SendRequestSchema } from '../../outbound/service.ts';
import { EndBody, SessionListQuery, StatsQuery, TranscriptQuery } from '../admin-api.ts';
import { DebugQuery } from '../admin-debug.ts';
import {
  HistoryQuery as AgentHistoryQuery,
  ListQuery as AgentListQuery,
  LoginBody,
  StatusBody,
  TextBody,
  TransferBody,
} from '../agent-api.ts';
import { AuthenticateBody } from '../auth-api.ts';
import { AnalyticsQuery, AuditQuery, ExportQuery, SearchQuery } from '../dashboard-api.ts';
import { LinkBody } from '../identity-api.ts';
import {
  AdminSession,
  Agent,
  AgentCreated,
  AgentDeleted,
  AgentList,
  AnalyticsIndex,
  AuditPage,
  BroadcastAccepted,
  BroadcastList,
  BroadcastProgress,
  ChatCompleted,
  ChatQueued,
  ConversationDetail,
  ConversationList,
  DashboardTranscript,
  DebugLog,
  HistoryPage,
  IdentityLinked,
  IdentityUnlinked,
  MetricAnswer,
  OutboundAccepted,
  OutboundStatus,
  PersonSessions,
  QueueStatusAnswer,
  SearchResults,
  SessionCreated,
  SessionEnded,
  SessionEnding,
  SessionErased,
  SessionInspection,
  SessionList,
  SessionView,
  SignedIn,
  StatsAnswer,
  Transcript,
  TranscriptExport,
  TransferTargets,
  UserErased,
  UserView,
  WebSessionOpened,
  WhatsAppWebStatus,
} from './shapes.ts';

/** The security schemes, as `components.securitySchemes` names them. */
export type Scheme = 'session' | 'admin' | 'agentToken' | 'agentCookie' | 'signedLink';

export interface Operation {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** OpenAPI form: `/api/admin/sessions/{id}`. */
  path: string;
  tag: 'Session' | 'Operator' | 'Agents' | 'Agent' | 'Outbound' | 'Dashboard' | 'Identities' | 'Channels';
  /** A channel's own route: mounted only when that channel is configured (web, whatsapp). */
  channel?: string;
  summary: string;
  /** Any one of these opens the route; none: public. */
  security: Scheme[];
  query?: z.ZodType;
  body?: z.ZodType;
  /** A multipart/form-data upload with one file part of this name, instead of a JSON body. */
  upload?: string;
  /** 2xx answers; errors are listed by status in `errors`. */
  responses: Record<number, { description: string; schema?: z.ZodType; contentType?: string }>;
  errors: number[];
}

const Id = z.uuid();
const Assigned = z.looseObject({
  session_id: z.uuid(),
  assigned_to: z.string(),
  state: z.literal('assigned'),
});
const ok = (schema: z.ZodType, description = 'OK') => ({ 200: { description, schema } });
/** An idempotent start: 202 when accepted, 200 when it replays an earlier request. */
const accepted = (schema: z.ZodType) => ({
  200: { description: 'A replay of an earlier request', schema },
  202: { description: 'Accepted', schema },
});
const OPERATOR: Scheme[] = ['admin'];
const AGENT: Scheme[] = ['agentToken', 'agentCookie'];
/** The dashboard and transcripts: ADMIN_TOKEN, or a supervisor's or admin agent's sign-in. */
const SUPERVISOR: Scheme[] = ['admin', 'agentToken', 'agentCookie'];

/**
 * Every documented route. The contract test (test/integration/openapi.test.ts) fails when a route
 * is mounted under `/api` and missing here, so this list cannot fall behind the routes.
 */
export const OPERATIONS: Operation[] = [
  // --- Session API (adapters/api) ---
  {
    method: 'post',
    path: '/api/session',
    tag: 'Session',
    summary: 'Open a session (optionally for a named bot); answers its bearer token once',
    security: [],
    body: CreateSessionBody,
    responses: { 201: { description: 'Created', schema: SessionCreated } },
    errors: [400, 404, 413, 429],
  },
  {
    method: 'get',
    path: '/api/session',
    tag: 'Session',
    summary: "The session and the bot's state for it",
    security: ['session'],
    responses: ok(SessionView),
    errors: [401, 404],
  },
  {
    method: 'delete',
    path: '/api/session',
    tag: 'Session',
    summary: 'End the session',
    security: ['session'],
    responses: ok(SessionEnded),
    errors: [401],
  },
  {
    method: 'get',
    path: '/api/session/messages',
    tag: 'Session',
    summary: 'The history, paged by sequence number (`after` or `before`)',
    security: ['session'],
    query: SessionHistoryQuery,
    responses: ok(HistoryPage),
    errors: [400, 401],
  },
  {
    method: 'post',
    path: '/api/chat',
    tag: 'Session',
    summary: 'Send a message; waits for the replies unless `?wait=false` (then 202)',
    security: ['session'],
    query: z.object({ wait: z.enum(['true', 'false']).optional() }),
    body: ChatBody,
    responses: {
      200: { description: 'The turn completed: its replies', schema: ChatCompleted },
      202: { description: 'Queued; the replies will be in the history', schema: ChatQueued },
    },
    errors: [400, 401, 413, 429],
  },
  {
    method: 'post',
    path: '/api/session/authenticate',
    tag: 'Session',
    summary: 'Sign the session in with an identity provider token (when sign-in is configured)',
    security: ['session'],
    body: AuthenticateBody,
    responses: ok(SignedIn, 'Signed in: the session under a new token'),
    // 409 session_owned, 429 rate_limited (SESSION_CREATE_PER_MINUTE), 501 sign_in_disabled.
    errors: [400, 401, 403, 409, 429, 501],
  },
  {
    method: 'post',
    path: '/api/session/files',
    tag: 'Session',
    summary: 'Upload a file (multipart, part `file`); send it with `POST /api/chat` `files: [file_id]`',
    security: ['session'],
    upload: 'file',
    responses: {
      201: {
        description: 'Stored',
        schema: z.looseObject({ file_id: z.uuid(), name: z.string(), type: z.string(), size: z.int() }),
      },
    },
    errors: [400, 401, 413, 415, 429],
  },
  {
    method: 'get',
    path: '/api/files/{id}',
    tag: 'Session',
    summary: "A session's file: with the session token, or a signed link (`exp`, `sig`) the hub handed out",
    security: ['session', 'signedLink'],
    query: z.object({ exp: z.string().optional(), sig: z.string().optional() }),
    responses: {
      200: { description: 'The bytes, with their type', contentType: 'application/octet-stream' },
    },
    errors: [401, 403, 404],
  },
  // --- Operator API ---
  {
    method: 'get',
    path: '/api/admin/sessions',
    tag: 'Operator',
    summary: 'List sessions (filters, cursor paging)',
    security: OPERATOR,
    query: SessionListQuery,
    responses: ok(SessionList),
    errors: [400, 401, 403],
  },
  {
    method: 'get',
    path: '/api/admin/sessions/{id}',
    tag: 'Operator',
    summary: 'One session with its state',
    security: OPERATOR,
    responses: ok(AdminSession),
    errors: [400, 401, 403, 404],
  },
  {
    method: 'get',
    path: '/api/admin/sessions/{id}/messages',
    tag: 'Operator',
    summary: "A session's transcript, paged",
    security: OPERATOR,
    query: TranscriptQuery,
    responses: ok(Transcript),
    errors: [400, 401, 403, 404],
  },
  {
    method: 'get',
    path: '/api/admin/sessions/{id}/debug',
    tag: 'Operator',
    summary: "A session's debug log (DEBUG SHOW)",
    security: OPERATOR,
    query: DebugQuery,
    responses: ok(DebugLog),
    errors: [400, 401, 403, 404],
  },
  {
    method: 'post',
    path: '/api/admin/sessions/{id}/end',
    tag: 'Operator',
    summary: 'End a session (through its lane)',
    security: OPERATOR,
    body: EndBody,
    responses: { 202: { description: 'Accepted', schema: SessionEnding } },
    errors: [400, 401, 403, 404, 409],
  },
  {
    method: 'delete',
    path: '/api/admin/sessions/{id}',
    tag: 'Operator',
    summary:
      'Erase one session (an anonymous visitor, unverified mail, one conversation): its sub-sessions, messages, state, files, outbound messages and queued traces',
    security: OPERATOR,
    responses: ok(SessionErased),
    errors: [400, 401, 403, 404],
  },
  {
    method: 'get',
    path: '/api/admin/stats',
    tag: 'Operator',
    summary: 'Counts per bot and channel over a time range',
    security: OPERATOR,
    query: StatsQuery,
    responses: ok(StatsAnswer),
    errors: [400, 401, 403],
  },
  {
    method: 'delete',
    path: '/api/users/{id}',
    tag: 'Operator',
    summary: 'Erase a person: every session, message and memory of theirs',
    security: OPERATOR,
    responses: ok(UserErased),
    errors: [400, 401, 403, 404],
  },
  // --- Identities ---
  {
    method: 'get',
    path: '/api/admin/users/{id}',
    tag: 'Identities',
    summary: 'A user and the channel identities linked to them',
    security: OPERATOR,
    responses: ok(UserView),
    errors: [401, 403, 404],
  },
  {
    method: 'post',
    path: '/api/admin/users/{id}/identities',
    tag: 'Identities',
    summary: 'Link a channel identity to a user',
    security: OPERATOR,
    body: LinkBody,
    responses: {
      200: { description: 'Linked', schema: IdentityLinked },
      201: { description: 'Linked', schema: IdentityLinked },
    },
    errors: [400, 401, 403, 404, 409],
  },
  {
    method: 'delete',
    path: '/api/admin/users/{id}/identities/{channel}/{nativeId}',
    tag: 'Identities',
    summary: 'Unlink a channel identity',
    security: OPERATOR,
    responses: ok(IdentityUnlinked),
    errors: [400, 401, 403, 404],
  },
  // --- Agent accounts (operator, or an admin agent) ---
  {
    method: 'post',
    path: '/api/admin/agents',
    tag: 'Agents',
    summary: 'Create an agent; answers its API token once',
    security: SUPERVISOR,
    body: NewAgentSchema,
    responses: { 201: { description: 'Created', schema: AgentCreated } },
    errors: [400, 401, 403, 409],
  },
  {
    method: 'get',
    path: '/api/admin/agents',
    tag: 'Agents',
    summary: 'List agents (an admin agent of some bots: the agents of those bots)',
    security: SUPERVISOR,
    responses: ok(AgentList),
    errors: [401, 403],
  },
  {
    method: 'get',
    path: '/api/admin/agents/{id}',
    tag: 'Agents',
    summary: 'One agent',
    security: SUPERVISOR,
    responses: ok(Agent),
    errors: [400, 401, 403, 404],
  },
  {
    method: 'patch',
    path: '/api/admin/agents/{id}',
    tag: 'Agents',
    summary: "Change an agent's name, role, bots, queues, capacity or password",
    security: SUPERVISOR,
    body: AgentPatchSchema,
    responses: ok(Agent),
    errors: [400, 401, 403, 404, 409],
  },
  {
    method: 'delete',
    path: '/api/admin/agents/{id}',
    tag: 'Agents',
    summary: 'Delete an agent (their conversations go back to the queue)',
    security: SUPERVISOR,
    responses: ok(AgentDeleted),
    errors: [400, 401, 403, 404],
  },
  {
    method: 'post',
    path: '/api/admin/agents/{id}/token',
    tag: 'Agents',
    summary: "Replace an agent's API token",
    security: SUPERVISOR,
    responses: ok(AgentCreated),
    errors: [400, 401, 403, 404],
  },
  // --- Agent API ---
  {
    method: 'post',
    path: '/api/agent/login',
    tag: 'Agent',
    summary: "Sign in with email and password (from the hub's own page, if any); sets the console cookie",
    security: [],
    body: LoginBody,
    responses: ok(Agent),
    errors: [400, 401, 403, 429],
  },
  {
    method: 'post',
    path: '/api/agent/logout',
    tag: 'Agent',
    summary: 'Sign out (clears the cookie)',
    security: AGENT,
    responses: ok(z.looseObject({ signed_out: z.literal(true) })),
    errors: [401, 403],
  },
  {
    method: 'get',
    path: '/api/agent/me',
    tag: 'Agent',
    summary: 'The signed-in agent',
    security: AGENT,
    responses: ok(Agent),
    errors: [401],
  },
  {
    method: 'put',
    path: '/api/agent/status',
    tag: 'Agent',
    summary: 'Set availability (online, away, offline)',
    security: AGENT,
    body: StatusBody,
    responses: ok(z.looseObject({ agent_id: z.uuid(), status: z.string() })),
    errors: [400, 401, 403],
  },
  {
    method: 'get',
    path: '/api/agent/conversations',
    tag: 'Agent',
    summary: 'Conversations waiting, mine, or all (cursor paging)',
    security: AGENT,
    query: AgentListQuery,
    responses: ok(ConversationList),
    // 403: `state=all` asked by an agent of role `agent`.
    errors: [400, 401, 403],
  },
  {
    method: 'get',
    path: '/api/agent/conversations/{id}',
    tag: 'Agent',
    summary:
      'One conversation with its history; an agent (role `agent`) opens what its list shows, or the one it held last for an hour (403 otherwise)',
    security: AGENT,
    query: AgentHistoryQuery,
    responses: ok(ConversationDetail),
    errors: [400, 401, 403, 404],
  },
  {
    method: 'post',
    path: '/api/agent/conversations/{id}/claim',
    tag: 'Agent',
    summary:
      'Take a waiting conversation; an agent (role `agent`) only one waiting in its queues (403 otherwise)',
    security: AGENT,
    responses: ok(Assigned),
    errors: [400, 401, 403, 404, 409],
  },
  {
    method: 'post',
    path: '/api/agent/conversations/{id}/release',
    tag: 'Agent',
    summary: 'Give a conversation back to the bot',
    security: AGENT,
    responses: ok(z.looseObject({ session_id: z.uuid(), released: z.literal(true) })),
    errors: [400, 401, 403, 404, 409],
  },
  {
    method: 'post',
    path: '/api/agent/conversations/{id}/messages',
    tag: 'Agent',
    summary: 'Write to the person (through the session lane)',
    security: AGENT,
    body: TextBody,
    responses: { 202: { description: 'Queued', schema: z.looseObject({ message_id: z.string() }) } },
    errors: [400, 401, 403, 404, 409, 413],
  },
  {
    method: 'post',
    path: '/api/agent/conversations/{id}/notes',
    tag: 'Agent',
    summary: 'Add an internal note (never sent); an agent (role `agent`) to what it may open (403 otherwise)',
    security: AGENT,
    body: TextBody,
    responses: { 201: { description: 'Recorded', schema: z.looseObject({ note_id: z.string() }) } },
    errors: [400, 401, 403, 404, 409, 413],
  },
  {
    method: 'post',
    path: '/api/agent/conversations/{id}/typing',
    tag: 'Agent',
    summary: "Show 'typing…' to the person",
    security: AGENT,
    responses: { 202: { description: 'Shown where the channel can' } },
    errors: [400, 401, 403, 404, 409],
  },
  {
    method: 'get',
    path: '/api/agent/conversations/{id}/transfer-targets',
    tag: 'Agent',
    summary:
      'Who a conversation can be handed to: the agents serving its bot (not the asker or the holder), with name, status and open conversations against capacity; for any agent that may open it (403 otherwise)',
    security: AGENT,
    responses: ok(TransferTargets),
    errors: [401, 403, 404],
  },
  {
    method: 'post',
    path: '/api/agent/conversations/{id}/transfer',
    tag: 'Agent',
    summary: 'Hand a conversation to another agent',
    security: AGENT,
    body: TransferBody,
    responses: ok(Assigned),
    // 422 agent_not_serving: no such agent, or one that does not serve the bot.
    errors: [400, 401, 403, 404, 409, 422],
  },
  {
    method: 'get',
    path: '/api/agent/events',
    tag: 'Agent',
    summary: 'Server-sent events: new conversations, messages, claims',
    security: AGENT,
    responses: {
      200: {
        description:
          'An event stream: `ready` first (subscribed from then on: read state after it), then `conversation.waiting`, `.assigned`, `.message`, `.released`, each with an `id` for `Last-Event-ID`. The stream ends when the credential it was opened with does (a sign-out, a new password or token, the agent removed); its reconnection is then 401',
        contentType: 'text/event-stream',
      },
    },
    errors: [401],
  },
  // --- Outbound ---
  {
    method: 'post',
    path: '/api/admin/messages',
    tag: 'Outbound',
    summary: 'Send a message first (now or `send_at`); idempotent on `Idempotency-Key`',
    security: SUPERVISOR,
    body: SendRequestSchema,
    responses: accepted(OutboundAccepted),
    errors: [400, 401, 403, 404, 409, 422],
  },
  {
    method: 'get',
    path: '/api/admin/messages/{id}',
    tag: 'Outbound',
    summary: "An outbound message's status",
    security: SUPERVISOR,
    responses: ok(OutboundStatus),
    errors: [400, 401, 403, 404],
  },
  {
    method: 'delete',
    path: '/api/admin/messages/{id}',
    tag: 'Outbound',
    summary: 'Cancel a scheduled message (409 `already_sent` once it went)',
    security: SUPERVISOR,
    responses: { 204: { description: 'Cancelled' } },
    errors: [400, 401, 403, 404, 409],
  },
  {
    method: 'post',
    path: '/api/admin/broadcasts',
    tag: 'Outbound',
    summary:
      'Start a broadcast to an audience or a list of up to 100,000 recipients (a body up to BROADCAST_MAX_BODY_BYTES, 16 MiB)',
    security: SUPERVISOR,
    body: BroadcastRequestSchema,
    responses: accepted(BroadcastAccepted),
    errors: [400, 401, 403, 404, 409, 413, 422],
  },
  {
    method: 'get',
    path: '/api/admin/broadcasts',
    tag: 'Outbound',
    summary: 'List the latest broadcasts',
    security: SUPERVISOR,
    responses: ok(BroadcastList),
    errors: [401, 403],
  },
  {
    method: 'get',
    path: '/api/admin/broadcasts/{id}',
    tag: 'Outbound',
    summary: "A broadcast's progress: where each recipient is (the buckets add up to total)",
    security: SUPERVISOR,
    responses: ok(BroadcastProgress),
    errors: [400, 401, 403, 404],
  },
  // --- Dashboard ---
  {
    method: 'get',
    path: '/api/admin/analytics',
    tag: 'Dashboard',
    summary: 'The metrics, bots (those the caller serves) and buckets the analytics offer',
    security: SUPERVISOR,
    responses: ok(AnalyticsIndex),
    errors: [401, 403],
  },
  {
    method: 'get',
    path: '/api/admin/analytics/{metric}',
    tag: 'Dashboard',
    summary:
      'One metric over time (JSON or CSV), of the bots the caller serves; 403 for `bot=` of a bot it does not serve',
    security: SUPERVISOR,
    query: AnalyticsQuery,
    responses: { 200: { description: 'JSON, or CSV with `format=csv`', schema: MetricAnswer } },
    errors: [400, 401, 403, 404],
  },
  {
    method: 'get',
    path: '/api/admin/queue',
    tag: 'Dashboard',
    summary: 'What the queues hold now: queued, ready, claimed, stuck, set aside',
    security: SUPERVISOR,
    responses: ok(QueueStatusAnswer),
    errors: [401, 403],
  },
  {
    method: 'get',
    path: '/api/admin/audit',
    tag: 'Dashboard',
    summary:
      "Who read, exported, searched or inspected which transcript; a viewer of some bots sees rows about those bots' sessions and its own",
    security: SUPERVISOR,
    query: AuditQuery,
    responses: ok(AuditPage),
    errors: [400, 401, 403],
  },
  {
    method: 'get',
    path: '/api/admin/transcripts/search',
    tag: 'Dashboard',
    summary: 'Search transcripts of the bots the caller serves; 403 for `bot=` of a bot it does not serve',
    security: SUPERVISOR,
    query: SearchQuery,
    responses: ok(SearchResults),
    errors: [400, 401, 403],
  },
  ...(['', '/inspect'] as const).map(
    (suffix): Operation => ({
      method: 'get',
      path: `/api/admin/transcripts/{id}${suffix}`,
      tag: 'Dashboard',
      summary: `${suffix ? 'Inspect a session: state, events, debug snapshots' : 'A transcript'}; 403 for a session of a bot the caller does not serve`,
      security: SUPERVISOR,
      responses: ok(suffix ? SessionInspection : DashboardTranscript),
      errors: [400, 401, 403, 404],
    }),
  ),
  {
    method: 'get',
    path: '/api/admin/transcripts/{id}/export',
    tag: 'Dashboard',
    summary: 'Export a transcript (JSON or text); 403 for a session of a bot the caller does not serve',
    security: SUPERVISOR,
    query: ExportQuery,
    responses: { 200: { description: 'JSON, or text with `format=text`', schema: TranscriptExport } },
    errors: [400, 401, 403, 404],
  },
  {
    method: 'get',
    path: '/api/admin/people/{id}/sessions',
    tag: 'Dashboard',
    summary: "A person's sessions of the bots the caller serves (none: no identities either)",
    security: SUPERVISOR,
    responses: ok(PersonSessions),
    errors: [400, 401, 403, 404],
  },
  // --- Channels' own routes (mounted when the channel is on) ---
  {
    method: 'post',
    path: '/api/web/session',
    tag: 'Channels',
    channel: 'web',
    summary:
      "Open a session for the hub's own chat page: its token only in an HttpOnly cookie (`Origin` must be the hub's own page; ends the cookie's previous session)",
    security: [],
    body: CookieSessionBody,
    responses: { 201: { description: 'Opened; the token is in `Set-Cookie`', schema: WebSessionOpened } },
    errors: [400, 403, 404, 429],
  },
  {
    method: 'get',
    path: '/api/admin/whatsapp/web',
    tag: 'Channels',
    channel: 'whatsapp',
    summary: "WhatsApp Web's linked session: its state, and the pairing code while it waits to be scanned",
    security: OPERATOR,
    responses: ok(WhatsAppWebStatus),
    errors: [401, 403],
  },
  {
    method: 'get',
    path: '/api/admin/whatsapp/web/qr.svg',
    tag: 'Channels',
    channel: 'whatsapp',
    summary: "WhatsApp Web's pairing QR code as an SVG image (404 `no_qr_code` when there is none to scan)",
    security: OPERATOR,
    responses: { 200: { description: 'The QR code', contentType: 'image/svg+xml' } },
    errors: [401, 403, 404],
  },
];

/** Path parameters: every `{name}` is a string; ids are UUIDs. */
export function pathParameterSchema(name: string): z.ZodType {
  return name === 'id' ? Id : z.string().min(1);
}
