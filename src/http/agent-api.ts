import { type Context, Hono } from 'hono';
import { getCookie } from 'hono/cookie';
import { type SSEStreamingApi, streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { AccessNoticeSchema, AGENT_ACCESS_TOPIC, announceAccessChange } from '../agents/access.ts';
import { toApiAgent } from '../agents/accounts.ts';
import { LoginThrottle } from '../agents/login-throttle.ts';
import { passwordMatches } from '../agents/passwords.ts';
import { hashToken, newToken } from '../auth/token.ts';
import { type AgentTyping, type Bus, sessionTopic } from '../bus/bus.ts';
import { dropSubscription, subscribeWithin } from '../bus/subscribe-within.ts';
import { isLiveChannel } from '../channels/registry.ts';
import type { HubConfig } from '../config/env.ts';
import { formatIssues } from '../config/env-parsing.ts';
import { identityOfNativeKey } from '../envelope.ts';
import { clientAttachments, clientCards } from '../files/client-view.ts';
import type { FileStore, StoredFile } from '../files/store.ts';
import { AGENTS_TOPIC, canSee, type PublishedAgentEvent } from '../handoff/events.ts';
import type { HandoffService } from '../handoff/service.ts';
import type { Logger } from '../logger.ts';
import {
  AGENT_STATUSES,
  type AgentRecord,
  agentNames,
  deleteLogin,
  findAgentByEmail,
  insertLogin,
  servesBot,
  touchAgent,
  updateAgent,
} from '../store/agents.ts';
import type { Db } from '../store/db.ts';
import { recentEvents } from '../store/events.ts';
import {
  agentEventsAfter,
  agentMayOpen,
  agentsServingBot,
  type ConversationRow,
  latestAgentEventId,
  listConversations,
  openHandoffOf,
  recordTranscriptRead,
} from '../store/handoffs.ts';
import { listMessages, MAX_PAGE_SIZE } from '../store/messages.ts';
import type { MessageRecord, SessionRecord, SessionSnapshot } from '../store/records.ts';
import { loadSnapshot } from '../store/sessions.ts';
import { listIdentities } from '../store/users.ts';
import {
  AGENT_COOKIE,
  type AgentVariables,
  authenticateAgent,
  checkSameOrigin,
  clearLoginCookie,
  LOGIN_TTL_MS,
  ownPageOrigin,
  requireAgent,
  setLoginCookie,
  signInOverTls,
} from './agent-auth.ts';
import { contextAddress } from './client-address.ts';
import { ApiError, readJson, unavailable } from './errors.ts';
import { encodePageCursor, PageCursorSchema } from './page-cursor.ts';

const DEFAULT_PAGE = 50;
/** Events a resuming stream replays at most; a console further behind reloads its lists. */
const MAX_REPLAY = 1000;
const HEARTBEAT_MS = 15_000;
/** How often an open event stream marks its agent as present (the offline check reads it). */
const PRESENCE_MS = 30_000;

export const LoginBody = z
  .object({ email: z.string().min(1).max(320), password: z.string().min(1).max(1000) })
  .strict();
export const StatusBody = z.object({ status: z.enum(AGENT_STATUSES) }).strict();
export const TextBody = z
  .object({ text: z.string({ error: 'text is required and must be a string' }) })
  .strict();
export const TransferBody = z.object({ agent_id: z.string().min(1).max(100) }).strict();
export const ListQuery = z.object({
  state: z.enum(['waiting', 'mine', 'all']).default('waiting'),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE),
  before: PageCursorSchema.optional(),
});
export const HistoryQuery = z.object({
  before: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(100),
});
/**
 * How long the file links of a conversation read open their files: long enough to read the
 * conversation and open its files; every read (the console reads again at each of its events)
 * hands out fresh ones, so a link copied out of the console is soon worth nothing.
 */
export const AGENT_FILE_LINK_TTL_SECONDS = 15 * 60;
/** Session and agent ids. */
const SessionIdSchema = z.uuid();

export interface AgentApiDeps {
  config: HubConfig;
  db: Db;
  bus: Bus;
  handoff: HandoffService;
  logger: Logger;
  /** Signs the links to a conversation's files (`GET /api/files/{id}?exp=…&sig=…`). */
  files: FileStore;
  /** Aborted when the hub stops: event streams end (the console reconnects to another process). */
  stopping?: AbortSignal;
}

type Env = { Variables: AgentVariables };

function query<S extends z.ZodType>(c: Context, schema: S): z.infer<S> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) throw new ApiError(400, 'invalid_request', formatIssues(parsed.error.issues));
  return parsed.data;
}

/** A conversation as the agent API shows it (the list's shape). */
export function toApiConversation(
  session: Pick<SessionRecord, 'id' | 'bot' | 'channel' | 'nativeKey'>,
  handoff: Pick<ConversationRow, 'state' | 'queue' | 'requestedAt' | 'agentId'> | undefined,
  personName: string | null,
  lastMessage: { role: string; text: string; createdAt: string } | null,
) {
  return {
    session_id: session.id,
    bot: session.bot,
    channel: session.channel,
    person: { name: personName, native_id: identityOfNativeKey(session.nativeKey).from.id },
    state: handoff && handoff.state !== 'ended' ? handoff.state : null,
    queue: handoff?.queue ?? null,
    waiting_since: handoff?.requestedAt ?? null,
    assigned_to: handoff?.state === 'assigned' ? handoff.agentId : null,
    last_message: lastMessage
      ? { role: lastMessage.role, text: lastMessage.text, created_at: lastMessage.createdAt }
      : null,
  };
}

/** Events shown beside a conversation: enough to see what happened lately, not its whole life. */
const RECENT_EVENTS = 20;

/** A link a page of the hub may open: http(s), or a path on the hub; never `javascript:`, `data:`, `//host`. */
export function isOpenableUrl(url: string): boolean {
  return /^https?:\/\//i.test(url) || (url.startsWith('/') && !url.startsWith('//') && !url.includes('\\'));
}

/** A file the ingress refused or could not fetch, as an agent sees it: what happened, never a link. */
function refusedAttachments(list: unknown) {
  if (!Array.isArray(list)) return [];
  return list.flatMap((raw) => {
    if (typeof raw !== 'object' || raw === null) return [];
    const r = raw as Record<string, unknown>;
    if (typeof r.reason !== 'string') return [];
    return [
      {
        type: typeof r.type === 'string' ? r.type : 'file',
        ...(typeof r.name === 'string' ? { name: r.name } : {}),
        ...(typeof r.size === 'number' ? { size: r.size } : {}),
        reason: r.reason,
        ...(typeof r.message === 'string' ? { message: r.message } : {}),
      },
    ];
  });
}

/**
 * `link` signs a file's link, or says there is none (a file not of this conversation: an agent
 * gets links only for files of what it may read).
 */
export function toAgentMessage(
  m: MessageRecord,
  link: (fileId: string) => string | undefined = () => undefined,
) {
  const attachments = clientAttachments(m.payload.attachments, (id) => link(id) ?? '').map(
    ({ fileId, url, ...a }) => ({
      ...a,
      ...(url && isOpenableUrl(url) ? { url } : {}),
      ...(fileId ? { file_id: fileId } : {}),
    }),
  );
  const refused = refusedAttachments(m.payload.refusedAttachments);
  const cards = clientCards(m.payload.cards, (id) => link(id) ?? '').map(({ image, ...card }) => ({
    ...card,
    ...(image?.url && isOpenableUrl(image.url) ? { image } : {}),
  }));
  return {
    seq: m.seq,
    role: m.role,
    text: m.content,
    created_at: m.createdAt,
    ...(['assistant', 'agent'].includes(m.role) ? { delivery_status: m.deliveryStatus } : {}),
    ...(typeof m.payload.agentId === 'string' ? { agent_id: m.payload.agentId } : {}),
    ...(m.payload.suggestions ? { suggestions: m.payload.suggestions } : {}),
    ...(attachments.length ? { attachments } : {}),
    ...(refused.length ? { refused_attachments: refused } : {}),
    ...(cards.length ? { cards } : {}),
    // The text is what text-only channels got for the files or cards (their names, numbered
    // buttons): a page that shows those can leave it out.
    ...(m.payload.textIsFallback === true ? { text_is_fallback: true } : {}),
  };
}

/** The store ids of the files a page of history names (attachments, card images). */
function fileIdsOf(messages: readonly MessageRecord[]): string[] {
  type Named = { fileId?: unknown; image?: { fileId?: unknown } } | null | undefined;
  const list = (v: unknown): Named[] => (Array.isArray(v) ? (v as Named[]) : []);
  const ids = new Set<string>();
  for (const m of messages) {
    for (const a of list(m.payload.attachments)) if (typeof a?.fileId === 'string') ids.add(a.fileId);
    for (const c of list(m.payload.cards)) if (typeof c?.image?.fileId === 'string') ids.add(c.image.fileId);
  }
  return [...ids];
}

/** An event not kept (`id` null) has no SSE id: the stream's Last-Event-ID stays the last kept one's. */
const toSseEvent = (e: PublishedAgentEvent) => ({
  ...(e.id === null ? {} : { id: String(e.id) }),
  event: e.type,
  data: JSON.stringify({ ...e.data, event_id: e.id, type: e.type, bot: e.bot, created_at: e.createdAt }),
});

/**
 * `/api/agent/*`: sign-in for people, and what agents do (agent token or sign-in cookie). A
 * sub-app: the hub mounts it with `app.route('/api/agent', ...)`.
 */
export function agentRoutes(deps: AgentApiDeps): Hono<Env> {
  const { config, db, bus, handoff, logger, files, stopping } = deps;
  const throttle = new LoginThrottle(db);
  const app = new Hono<Env>();

  app.post('/login', async (c) => {
    const page = ownPageOrigin(c, config, 'sign in from the hub’s own pages');
    const body = await readJson(c, LoginBody);
    // The client as TRUST_PROXY reads it: behind a proxy the socket is the proxy's, and counting that
    // would let one stranger's failures lock every agent out.
    const ip = contextAddress(c, config.trustProxy);
    // Counted as a failure before the password is checked (see LoginThrottle): guesses sent at once
    // cannot all pass the count before any of them is recorded.
    const attempt = await throttle.attempt(body.email, ip);
    const wait = attempt.retryAfterMs;
    if (wait > 0) {
      logger.warn({ event: 'agent.login_throttled', ip });
      throw new ApiError(429, 'too_many_attempts', 'too many failed sign-ins; try again later', {
        'Retry-After': String(Math.ceil(wait / 1000)),
      });
    }
    const found = await findAgentByEmail(db, body.email);
    if (!(await passwordMatches(found?.passwordHash, body.password)) || !found) {
      logger.info({ event: 'agent.login_failed', ip });
      throw new ApiError(401, 'invalid_credentials', 'the e-mail address or the password is wrong');
    }
    await throttle.succeeded(body.email, attempt);
    const token = newToken();
    await insertLogin(db, found.id, hashToken(token), new Date(Date.now() + LOGIN_TTL_MS));
    setLoginCookie(c, token, signInOverTls(c, config, page));
    logger.info({ event: 'agent.login', agentId: found.id });
    const { passwordHash: _hash, ...agent } = found;
    return c.json(toApiAgent(agent));
  });

  app.post('/logout', async (c) => {
    const cookie = getCookie(c, AGENT_COOKIE);
    if (cookie) {
      checkSameOrigin(c, config);
      const agentId = await deleteLogin(db, hashToken(cookie));
      if (agentId) await announceAccessChange(bus, logger, agentId);
    }
    clearLoginCookie(c);
    return c.json({ signed_out: true });
  });

  app.use('*', requireAgent(db, config));

  app.get('/me', (c) => c.json(toApiAgent(c.get('agent'))));

  app.put('/status', async (c) => {
    const me = c.get('agent');
    const { status } = await readJson(c, StatusBody);
    const agent = await updateAgent(db, me.id, { status });
    if (!agent) throw new ApiError(404, 'not_found', 'this agent no longer exists');
    // Choosing "available" is a sign of life: the offline check counts from here.
    if (status !== 'offline') await touchAgent(db, me.id);
    logger.info({ event: 'agent.status', agentId: me.id, status });
    if (status === 'offline') await handoff.agentGone(me.id);
    return c.json({ agent_id: me.id, status });
  });

  app.get('/conversations', async (c) => {
    const agent = c.get('agent');
    const q = query(c, ListQuery);
    if (q.state === 'all' && agent.role === 'agent')
      throw new ApiError(403, 'forbidden', 'state=all is for supervisors and admins');
    const rows = await listConversations(db, agent, q.state, {
      limit: q.limit,
      ...(q.before ? { before: q.before } : {}),
    });
    const last = rows.at(-1);
    return c.json({
      conversations: rows.map((r) =>
        toApiConversation(
          {
            id: r.sessionId,
            bot: r.bot,
            channel: r.channel as SessionRecord['channel'],
            nativeKey: r.nativeKey,
          },
          r,
          r.personName,
          r.lastMessage,
        ),
      ),
      next_before:
        rows.length === q.limit && last ? encodePageCursor({ us: last.requestedAtUs, id: last.id }) : null,
    });
  });

  /** The session behind `:id`, which the agent's bots must include: 404 unknown, 403 another bot's. */
  async function snapshotOf(c: Context<Env>): Promise<SessionSnapshot> {
    const id = SessionIdSchema.safeParse(c.req.param('id'));
    const snapshot = id.success ? await loadSnapshot(db, id.data) : undefined;
    if (!snapshot) throw new ApiError(404, 'not_found', 'there is no conversation with that session id');
    if (!servesBot(c.get('agent'), snapshot.session.bot))
      throw new ApiError(403, 'forbidden', 'that conversation belongs to a bot you do not serve');
    return snapshot;
  }

  /** The session of `snapshotOf`. */
  async function conversationOf(c: Context<Env>): Promise<SessionRecord> {
    return (await snapshotOf(c)).session;
  }

  /**
   * 403 unless the agent may open the conversation (read it, note it): for an agent, one its list
   * shows, or the one it just held (`agentMayOpen`); for a supervisor or admin, any of its bots'.
   */
  async function checkMayOpen(agent: AgentRecord, session: SessionRecord): Promise<void> {
    const may = await agentMayOpen(db, session.id, agent);
    if (may === 'held_by_other')
      throw new ApiError(403, 'forbidden', 'another agent holds this conversation');
    if (may === 'no')
      throw new ApiError(403, 'forbidden', 'that conversation is neither waiting in your queues nor yours');
  }

  function checkText(text: string): void {
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > config.maxTextBytes)
      throw new ApiError(413, 'text_too_long', `text is ${bytes} bytes; the limit is ${config.maxTextBytes}`);
    if (text.trim() === '') throw new ApiError(400, 'empty_text', 'text must not be empty');
  }

  app.get('/conversations/:id', async (c) => {
    const agent = c.get('agent');
    const q = query(c, HistoryQuery);
    const { session, state } = await snapshotOf(c);
    await checkMayOpen(agent, session);
    // Written before the transcript leaves: a read that is not in the audit log did not happen.
    await recordTranscriptRead(db, {
      agentId: agent.id,
      sessionId: session.id,
      ip: contextAddress(c, config.trustProxy) ?? null,
      userAgent: c.req.header('user-agent') ?? null,
      via: c.get('agentVia') === 'cookie' ? 'console' : 'agent-api',
    });
    const [open, messages, identities, events] = await Promise.all([
      openHandoffOf(db, session.id),
      listMessages(db, session.id, { beforeSeq: q.before ?? session.lastSeq + 1, limit: q.limit }),
      session.userId ? listIdentities(db, session.userId) : Promise.resolve([]),
      recentEvents(db, session.id, RECENT_EVENTS),
    ]);
    // Who wrote each agent row and note, by name: a colleague taking over, or a supervisor, reads it.
    const writers = await agentNames(db, [
      ...new Set(
        messages.flatMap((m) =>
          typeof m.payload.agentId === 'string' && SessionIdSchema.safeParse(m.payload.agentId).success
            ? [m.payload.agentId]
            : [],
        ),
      ),
    ]);
    // Links only for this conversation's own files: a row naming another session's file id (an
    // old row, a bot's mistake) gets none. A card's picture is its bot's media, which no session
    // claims (the turn claims attachments only): it counts when it is this bot's. Relative to
    // the hub: the console opens them itself, under its own CSP (img-src 'self'), whatever
    // PUBLIC_URL says.
    const own = new Map<string, StoredFile>(
      (await files.getMany(fileIdsOf(messages)))
        .filter(
          (f) =>
            f.sessionId === session.id ||
            (f.sessionId === null && f.origin === 'bot' && f.bot === session.bot),
        )
        .map((f) => [f.id, f]),
    );
    const link = (id: string) =>
      own.has(id)
        ? files.signedPath(id, AGENT_FILE_LINK_TTL_SECONDS, Date.now(), { onHub: true })
        : undefined;
    const lastShown = [...messages].reverse().find((m) => (m.role as string) !== 'note');
    const name = typeof session.meta.name === 'string' ? session.meta.name : null;
    const first = messages[0];
    return c.json({
      ...toApiConversation(
        session,
        open,
        name,
        lastShown ? { role: lastShown.role, text: lastShown.content, createdAt: lastShown.createdAt } : null,
      ),
      ended_at: session.endedAt,
      messages: messages.map((m) => {
        const row = toAgentMessage(m, link);
        return row.agent_id === undefined ? row : { ...row, agent_name: writers.get(row.agent_id) ?? null };
      }),
      next_before: first && first.seq > 1 ? first.seq : null,
      variables: state.variables,
      context: state.context,
      identities: identities.map((i) => ({ channel: i.channel, native_id: i.nativeId, name: i.displayName })),
      events: events.map((e) => ({ type: e.type, data: e.data, created_at: e.createdAt })),
    });
  });

  app.post('/conversations/:id/claim', async (c) => {
    const agent = c.get('agent');
    const session = await conversationOf(c);
    const result = await handoff.claim(session, agent);
    switch (result.outcome) {
      case 'claimed':
      case 'already':
        return c.json({ session_id: session.id, assigned_to: agent.id, state: 'assigned' });
      case 'held_by_other':
        throw new ApiError(409, 'held_by_other', 'another agent holds this conversation');
      case 'not_in_queues':
        throw new ApiError(403, 'forbidden', 'that conversation waits in a queue that is not yours');
      case 'at_capacity':
        throw new ApiError(
          409,
          'at_capacity',
          `you hold ${agent.capacity} conversations already (your capacity)`,
        );
      default:
        throw new ApiError(409, 'not_waiting', 'this conversation is not waiting for an agent');
    }
  });

  /** The open handoff of a conversation that this agent holds (a supervisor or admin: any holder). */
  async function heldBy(session: SessionRecord, agent: AgentRecord) {
    const open = await openHandoffOf(db, session.id);
    if (!open) throw new ApiError(409, 'not_in_handoff', 'no agent holds this conversation: claim it first');
    if (open.state !== 'assigned' || (open.agentId !== agent.id && agent.role === 'agent'))
      throw new ApiError(409, 'not_holder', 'you do not hold this conversation');
    return open;
  }

  app.post('/conversations/:id/messages', async (c) => {
    const agent = c.get('agent');
    const session = await conversationOf(c);
    const { text } = await readJson(c, TextBody);
    checkText(text);
    const open = await heldBy(session, agent);
    if (open.agentId !== agent.id)
      throw new ApiError(409, 'not_holder', 'only the agent who holds the conversation writes in it');
    const messageId = await handoff.say(session, agent, text);
    return c.json({ message_id: messageId }, 202);
  });

  app.post('/conversations/:id/notes', async (c) => {
    const agent = c.get('agent');
    const session = await conversationOf(c);
    await checkMayOpen(agent, session);
    const { text } = await readJson(c, TextBody);
    checkText(text);
    const noteId = await handoff.note(session, agent, text);
    return c.json({ note_id: noteId }, 201);
  });

  // "typing…" for the person while the agent who holds the conversation writes; live channels only
  // (the widget hides it by itself after a while, or when the answer arrives).
  app.post('/conversations/:id/typing', async (c) => {
    const agent = c.get('agent');
    const session = await conversationOf(c);
    const open = await openHandoffOf(db, session.id);
    if (open?.state !== 'assigned' || open.agentId !== agent.id)
      throw new ApiError(409, 'not_holder', 'only the agent who holds the conversation can type in it');
    if (isLiveChannel(session.channel))
      await bus.publish(sessionTopic(session.id), {
        type: 'agent.typing',
        sessionId: session.id,
      } satisfies AgentTyping);
    return c.body(null, 202);
  });

  // Who a conversation can be handed to, for the transfer picker: any agent that may open it asks
  // (an agent of role `agent` may not list agents otherwise, and knows no ids). Only what choosing
  // needs: name, status and load, of the agents who serve its bot; never their e-mail or role.
  app.get('/conversations/:id/transfer-targets', async (c) => {
    const agent = c.get('agent');
    const session = await conversationOf(c);
    await checkMayOpen(agent, session);
    const [open, agents] = await Promise.all([
      openHandoffOf(db, session.id),
      agentsServingBot(db, session.bot),
    ]);
    // Neither the asker nor the holder: handing the conversation to either changes nothing.
    const holder = open?.state === 'assigned' ? open.agentId : null;
    return c.json({
      agents: agents
        .filter((a) => a.id !== agent.id && a.id !== holder)
        .map((a) => ({
          agent_id: a.id,
          name: a.name,
          status: a.status,
          open_conversations: a.open,
          capacity: a.capacity,
        })),
    });
  });

  app.post('/conversations/:id/transfer', async (c) => {
    const agent = c.get('agent');
    const session = await conversationOf(c);
    const body = await readJson(c, TransferBody);
    await heldBy(session, agent);
    const result = await handoff.transfer(session, agent, body.agent_id);
    if (result.outcome === 'unknown_agent' || result.outcome === 'not_serving')
      throw new ApiError(
        422,
        'agent_not_serving',
        result.outcome === 'unknown_agent'
          ? 'there is no agent with that id'
          : `that agent does not serve the bot "${session.bot}"`,
      );
    if (result.outcome !== 'transferred')
      throw new ApiError(409, 'not_holder', 'you do not hold this conversation');
    return c.json({ session_id: session.id, assigned_to: result.to.id, state: 'assigned' });
  });

  app.post('/conversations/:id/release', async (c) => {
    const agent = c.get('agent');
    const session = await conversationOf(c);
    await heldBy(session, agent);
    const ended = await handoff.release(session, agent);
    if (!ended) throw new ApiError(409, 'not_holder', 'you do not hold this conversation');
    return c.json({ session_id: session.id, released: true });
  });

  app.get('/events', async (c) => {
    const me = c.get('agent');
    const header = c.req.header('last-event-id') ?? c.req.query('last_event_id');
    const lastId = header && /^\d{1,18}$/.test(header) ? Number(header) : undefined;
    await touchAgent(db, me.id);
    let agent = me;
    let replaying = false;
    /** Ids the replay wrote: a live copy of one of them is not written twice. */
    const replayed = new Set<number>();
    const held: PublishedAgentEvent[] = [];
    /** The newest kept event this stream has had (written, or not the agent's to see). */
    let newest = lastId;
    /** The stream once its `ready` is written: what comes before (subscribed first) waits for it. */
    let opened!: (stream: SSEStreamingApi) => void;
    const ready = new Promise<SSEStreamingApi>((resolve) => {
      opened = resolve;
    });
    let chain: Promise<unknown> = ready;
    const write = (e: PublishedAgentEvent) => {
      if (e.id !== null && e.id > (newest ?? 0)) newest = e.id;
      if ((e.id !== null && replayed.has(e.id)) || !canSee(agent, e)) return;
      if (replaying && e.id !== null) replayed.add(e.id);
      chain = chain.then(async () => (await ready).writeSSE(toSseEvent(e))).catch(() => undefined);
    };
    /**
     * Replays, one after another; live events are held from `hold` until every replay held for
     * is done, then written in their order, but for those a replay wrote or the stream had before.
     */
    let replays = Promise.resolve();
    let pending = 0;
    let heldAfter = 0;
    const hold = (after: number) => {
      if (pending++ === 0) heldAfter = after;
      replaying = true;
    };
    const unhold = () => {
      if (--pending > 0) return;
      replaying = false;
      // Kept events in their order, then those that were not kept (no replay could have had them).
      const order = (e: PublishedAgentEvent) => e.id ?? Number.MAX_SAFE_INTEGER;
      for (const e of held.splice(0).sort((a, b) => order(a) - order(b)))
        if (e.id === null || e.id > heldAfter) write(e);
    };
    /** Writes the kept events after `after` (held for with `hold(after)`). */
    const replay = (after: number): Promise<void> => {
      const next = replays
        .then(async () => {
          for (const e of await agentEventsAfter(db, after, MAX_REPLAY)) write(e);
        })
        .finally(unhold);
      replays = next.catch(() => undefined);
      return next;
    };
    let done!: () => void;
    const closed = new Promise<void>((resolve) => {
      done = resolve;
    });
    // The stream lasts only as long as the credential it was opened with: a sign-out, a new
    // password or token, a removal ends it (the client's reconnection is then refused). Its
    // agent's role, bots and queues are read again with it.
    const recheck = () =>
      authenticateAgent(c, db, config).then(
        ({ agent: current }) => {
          agent = current;
        },
        (err: unknown) => {
          if (err instanceof ApiError && err.status === 401) {
            logger.info({ event: 'agent.events_ended', agentId: me.id, reason: 'credential_ended' });
            done();
          } else
            logger.warn({
              event: 'agent.events_check_failed',
              agentId: me.id,
              err: (err as Error).message,
            });
        },
      );
    // Held from the start when the stream resumes: the replay comes first.
    if (lastId !== undefined) hold(lastId);
    // Subscribed before the answer, and before the replay is read, so nothing falls between the
    // two. A stream that cannot subscribe in time (Redis away) is refused 503 rather than answered
    // 200 with nothing after it: the console shows the connection lost and retries. Both topics at
    // once, under one bound.
    const [live, access] = await Promise.allSettled([
      subscribeWithin(bus, AGENTS_TOPIC, (raw) => {
        const e = raw as PublishedAgentEvent;
        if (replaying) held.push(e);
        else write(e);
      }),
      subscribeWithin(bus, AGENT_ACCESS_TOPIC, (raw) => {
        const notice = AccessNoticeSchema.safeParse(raw);
        if (notice.success && notice.data.agent_id === me.id) void recheck();
      }),
    ]);
    const unsubscribe = live.status === 'fulfilled' ? live.value : undefined;
    const unsubscribeAccess = access.status === 'fulfilled' ? access.value : undefined;
    if (!unsubscribe || !unsubscribeAccess) {
      if (unsubscribe) dropSubscription(unsubscribe);
      if (unsubscribeAccess) dropSubscription(unsubscribeAccess);
      if (live.status === 'rejected') throw live.reason;
      if (access.status === 'rejected') throw access.reason;
      logger.warn({ event: 'agent.events_unavailable', agentId: me.id });
      throw unavailable();
    }
    // What was published while this process's subscription was lost never arrived: it is read
    // from the kept events, after the newest this stream had (events not kept are gone).
    try {
      newest ??= await latestAgentEventId(db);
    } catch (err) {
      dropSubscription(unsubscribe);
      dropSubscription(unsubscribeAccess);
      throw err;
    }
    const offResubscribed = bus.onResubscribed(() => {
      const after = newest ?? 0;
      hold(after);
      replay(after).catch((err: unknown) =>
        logger.warn({ event: 'agent.events_replay_failed', agentId: me.id, err: (err as Error).message }),
      );
    });
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => done());
      // A stopping hub ends the stream rather than hold its server open: the console reconnects.
      const onStop = () => done();
      if (stopping?.aborted) done();
      else stopping?.addEventListener('abort', onStop, { once: true });
      const heartbeat = setInterval(() => {
        chain = chain
          .then(() => stream.write(': keep-alive\n\n'))
          .then(
            () => undefined,
            () => done(),
          );
      }, HEARTBEAT_MS);
      const presence = setInterval(() => {
        void touchAgent(db, me.id).catch(() => undefined);
        // What no notice announced (a sign-in that expired, a change from another tool) within a period.
        void recheck();
      }, PRESENCE_MS);
      try {
        await stream.writeSSE({ event: 'ready', data: JSON.stringify({ agent_id: me.id }), retry: 2000 });
        opened(stream);
        if (lastId !== undefined) await replay(lastId);
        await closed;
      } finally {
        offResubscribed();
        stopping?.removeEventListener('abort', onStop);
        clearInterval(heartbeat);
        clearInterval(presence);
        await unsubscribeAccess();
        await unsubscribe();
      }
    });
  });

  return app;
}
