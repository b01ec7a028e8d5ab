import type { Channel } from '../envelope.ts';

export const AUTH_LEVELS = ['anonymous', 'authenticated', 'elevated'] as const;
export type AuthLevel = (typeof AUTH_LEVELS)[number];

/** `agent`: a person at the business (payload `agentId`); `tool` and `note` are never shown to the person. */
export const MESSAGE_ROLES = ['user', 'assistant', 'agent', 'system', 'tool', 'note'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

/**
 * The roles a person may see of their own conversation, on every path that shows it to them
 * (REST history, socket replay, the replies of `POST /api/chat`; read through
 * `person-history.ts`). An allowlist on purpose: a role not named here (a tool's raw result, an
 * agent's internal note, whatever comes next) stays private until someone decides otherwise.
 * `system` rows are the session's markers ("session started", "session ended").
 */
export const PERSON_FACING_ROLES = [
  'user',
  'assistant',
  'agent',
  'system',
] as const satisfies readonly MessageRole[];
export type PersonFacingRole = (typeof PERSON_FACING_ROLES)[number];

export const isPersonFacing = (role: string): role is PersonFacingRole =>
  (PERSON_FACING_ROLES as readonly string[]).includes(role);

export const DELIVERY_STATUSES = ['received', 'queued', 'sent', 'delivered', 'read', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface Suggestion {
  text: string;
  /** What is sent back when the suggestion is chosen; the text when absent. */
  value?: string;
}

/** A session row. Times are ISO strings so that a record survives a JSON round trip through the cache. */
export interface SessionRecord {
  id: string;
  bot: string;
  channel: Channel;
  nativeKey: string;
  userId: string | null;
  authLevel: AuthLevel;
  replyTo: unknown;
  meta: Record<string, unknown>;
  createdAt: string;
  lastActivityAt: string;
  expiresAt: string | null;
  endedAt: string | null;
  messageCount: number;
  lastSeq: number;
}

/** Everything a bot can change about a session, besides its history. */
export interface SessionStateData {
  variables: Record<string, unknown>;
  context: Record<string, string>;
  kbs: string[];
  tools: string[];
  suggestions: Suggestion[];
  dialog: unknown;
  /** The LLM's summary of the conversation's older part (`src/llm/summary.ts`); absent until one is written. */
  summary?: ConversationSummary | null;
  /** Where the session stands in a human handoff (`TRANSFER SESSION`); absent or null: with the bot. */
  handoff?: SessionHandoff | null;
}

/** A session handed to people: while set, the person's messages go to agents, not the bot. */
export interface SessionHandoff {
  /** The `handoffs` row: agents claim, release and transfer it there. */
  id: string;
  queue: string | null;
  requestedAt: string;
}

/** What the LLM wrote about the messages up to `throughSeq`, kept so that it is written once. */
export interface ConversationSummary {
  text: string;
  /** The newest message the summary covers; later ones are history. */
  throughSeq: number;
  updatedAt: string;
}

export interface SessionState extends SessionStateData {
  version: number;
}

/** A session and its state, as the engine loads and caches them together. */
export interface SessionSnapshot {
  session: SessionRecord;
  state: SessionState;
}

export interface MessagePayload {
  attachments?: unknown[];
  suggestions?: Suggestion[];
  [key: string]: unknown;
}

export interface MessageRecord {
  sessionId: string;
  seq: number;
  role: MessageRole;
  content: string;
  envelopeId: string | null;
  inReplyTo: string | null;
  deliveryStatus: DeliveryStatus;
  deliveryAttempts: number;
  deliveryError: string | null;
  channelMessageId: string | null;
  payload: MessagePayload;
  createdAt: string;
}

export function emptyState(): SessionState {
  return {
    variables: {},
    context: {},
    kbs: [],
    tools: [],
    suggestions: [],
    dialog: null,
    version: 0,
  };
}

const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));
const isoOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : iso(v));

export function toSessionRecord(row: Record<string, unknown>): SessionRecord {
  return {
    id: row.id as string,
    bot: row.bot as string,
    channel: row.channel as Channel,
    nativeKey: row.native_key as string,
    userId: (row.user_id as string | null) ?? null,
    authLevel: row.auth_level as AuthLevel,
    replyTo: row.reply_to ?? null,
    meta: (row.meta as Record<string, unknown>) ?? {},
    createdAt: iso(row.created_at),
    lastActivityAt: iso(row.last_activity_at),
    expiresAt: isoOrNull(row.expires_at),
    endedAt: isoOrNull(row.ended_at),
    messageCount: Number(row.message_count),
    lastSeq: Number(row.last_seq),
  };
}

export function toSessionState(row: Record<string, unknown>): SessionState {
  return {
    variables: (row.variables as Record<string, unknown>) ?? {},
    context: (row.context as Record<string, string>) ?? {},
    kbs: (row.kbs as string[]) ?? [],
    tools: (row.tools as string[]) ?? [],
    suggestions: (row.suggestions as Suggestion[]) ?? [],
    dialog: row.dialog ?? null,
    // Absent until the LLM writes one, so that states without LLM look as they always did.
    ...(row.summary ? { summary: row.summary as ConversationSummary } : {}),
    ...(row.handoff ? { handoff: row.handoff as SessionHandoff } : {}),
    version: Number(row.version),
  };
}

export function toMessageRecord(row: Record<string, unknown>): MessageRecord {
  return {
    sessionId: row.session_id as string,
    seq: Number(row.seq),
    role: row.role as MessageRole,
    content: row.content as string,
    envelopeId: (row.envelope_id as string | null) ?? null,
    inReplyTo: (row.in_reply_to as string | null) ?? null,
    deliveryStatus: row.delivery_status as DeliveryStatus,
    deliveryAttempts: Number(row.delivery_attempts ?? 0),
    deliveryError: (row.delivery_error as string | null) ?? null,
    channelMessageId: (row.channel_message_id as string | null) ?? null,
    payload: (row.payload as MessagePayload) ?? {},
    createdAt: iso(row.created_at),
  };
}

/** jsonb parameters travel as JSON text: `pg` would turn a JS array into a Postgres array literal. */
export const json = (value: unknown): string => JSON.stringify(value ?? null);
