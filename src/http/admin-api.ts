import { Hono } from 'hono';
import { z } from 'zod';
import type { HubConfig } from '../config/env.ts';
import { BotNameSchema, ChannelSchema } from '../envelope.ts';
import { type ErasureDeps, eraseSession, eraseUser } from '../erasure.ts';
import type { Logger } from '../logger.ts';
import type { Ingress } from '../ports.ts';
import { endSessionThroughQueue } from '../sessions.ts';
import {
  findSession,
  type IdleTimeout,
  type ListedSession,
  lifeState,
  listSessions,
  SESSION_STATES,
} from '../store/admin-sessions.ts';
import { recordAudit } from '../store/audit.ts';
import type { Db } from '../store/db.ts';
import { listMessages, MAX_PAGE_SIZE } from '../store/messages.ts';
import type { MessageRecord } from '../store/records.ts';
import { loadSnapshot } from '../store/sessions.ts';
import { STAT_BUCKETS, sessionStats } from '../store/stats.ts';
import { type AdminGuardOptions, requireAdmin } from './admin-auth.ts';
import { adminDebugRoutes } from './admin-debug.ts';
import { contextAddress } from './client-address.ts';
import { ApiError, parseInput as parse, readJson } from './errors.ts';
import { encodePageCursor, PageCursorSchema } from './page-cursor.ts';
import { toApiState } from './session-state-view.ts';

/** A session is idle after this long when no rules are given (the hub passes each bot's own). */
export const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60_000;
const DEFAULT_PAGE = 50;
const DAY_MS = 86_400_000;
const DEFAULT_STATS_DAYS = 7;
const MAX_STATS_DAYS = 366;

/** The erasure's dependencies (database, cache, rate limiter, Redis queue traces) and these. */
export interface AdminApiDeps extends ErasureDeps {
  config: HubConfig;
  db: Db;
  ingress: Ingress;
  logger: Logger;
  /** How long a session of a bot on a channel may be quiet before it lists as idle. */
  idleTimeoutMs?: IdleTimeout;
  /** ADMIN_TOKEN, its guess throttle, and how an agent's token is told (not a guess: 403). */
  admin: AdminGuardOptions;
}

export const SessionListQuery = z.object({
  bot: BotNameSchema.optional(),
  channel: ChannelSchema.optional(),
  state: z.enum(SESSION_STATES).optional(),
  user_id: z.uuid().optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE),
  before: PageCursorSchema.transform(({ us, id }) => ({ createdAtUs: us, id })).optional(),
});
const SessionParams = z.object({ id: z.uuid() });
const UserParams = z.object({ id: z.uuid() });
export const TranscriptQuery = z.object({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE),
});
export const EndBody = z.object({ reason: z.string().min(1).max(200).optional() }).strict();
export const StatsQuery = z
  .object({
    from: z.iso.datetime({ offset: true }).optional(),
    to: z.iso.datetime({ offset: true }).optional(),
    bucket: z.enum(STAT_BUCKETS).default('day'),
  })
  .transform((q) => {
    const to = q.to ? new Date(q.to) : new Date();
    const from = q.from ? new Date(q.from) : new Date(to.getTime() - DEFAULT_STATS_DAYS * DAY_MS);
    return { from, to, bucket: q.bucket };
  })
  .refine((r) => r.from < r.to, { message: 'from must be before to' })
  .refine((r) => r.to.getTime() - r.from.getTime() <= MAX_STATS_DAYS * DAY_MS, {
    message: `the range is at most ${MAX_STATS_DAYS} days`,
  });

function toListedSession(s: ListedSession) {
  return {
    session_id: s.id,
    bot: s.bot,
    channel: s.channel,
    native_key: s.nativeKey,
    user_id: s.userId,
    auth_level: s.authLevel,
    state: s.state,
    created_at: s.createdAt,
    last_activity_at: s.lastActivityAt,
    ended_at: s.endedAt,
    end_reason: s.endReason,
    message_count: s.messageCount,
  };
}

function toTranscriptEntry(m: MessageRecord) {
  return {
    seq: m.seq,
    role: m.role,
    text: m.content,
    delivery_status: m.deliveryStatus,
    delivery_attempts: m.deliveryAttempts,
    delivery_error: m.deliveryError,
    envelope_id: m.envelopeId,
    in_reply_to: m.inReplyTo,
    payload: m.payload,
    created_at: m.createdAt,
  };
}

const notFound = (id: string) => new ApiError(404, 'not_found', `there is no session ${id}`);

/**
 * The operator API, behind `Authorization: Bearer <ADMIN_TOKEN>`: list and inspect sessions,
 * end or erase one, erase a person, usage statistics.
 */
export function adminRoutes(deps: AdminApiDeps): Hono {
  const app = new Hono();
  const { db, ingress, logger } = deps;
  const idleTimeoutMs = deps.idleTimeoutMs ?? (() => DEFAULT_IDLE_TIMEOUT_MS);
  const admin = requireAdmin(deps.admin);
  app.use('/api/admin/*', admin);

  app.get('/api/admin/sessions', async (c) => {
    const q = parse(SessionListQuery, c.req.query());
    const { sessions, next } = await listSessions(
      db,
      { bot: q.bot, channel: q.channel, userId: q.user_id, state: q.state, before: q.before, limit: q.limit },
      idleTimeoutMs,
    );
    return c.json({
      sessions: sessions.map(toListedSession),
      next_before: next ? encodePageCursor({ us: next.createdAtUs, id: next.id }) : null,
    });
  });

  app.get('/api/admin/sessions/:id', async (c) => {
    const { id } = parse(SessionParams, c.req.param());
    const [session, snapshot] = await Promise.all([findSession(db, id), loadSnapshot(db, id)]);
    if (!session || !snapshot) throw notFound(id);
    // The bot's variables leave with it: audited like the console's inspection of the same session,
    // and written before it leaves, as a transcript read is.
    await recordAudit(db, {
      actor: 'operator',
      agentId: null,
      action: 'session.inspect',
      sessionId: id,
      via: 'admin-api',
      ip: contextAddress(c, deps.config.trustProxy) ?? null,
      userAgent: c.req.header('user-agent') ?? null,
    });
    const { state } = snapshot;
    return c.json({
      ...toListedSession({ ...session, state: lifeState(session, idleTimeoutMs, Date.now()) }),
      expires_at: session.expiresAt,
      last_seq: session.lastSeq,
      meta: session.meta,
      // `state` is the life state, as in the listing; this is what the bot keeps.
      session_state: toApiState(state),
    });
  });

  app.route('/', adminDebugRoutes(db, deps.config.trustProxy));

  app.get('/api/admin/sessions/:id/messages', async (c) => {
    const { id } = parse(SessionParams, c.req.param());
    const { after, limit } = parse(TranscriptQuery, c.req.query());
    if (!(await findSession(db, id))) throw notFound(id);
    // Written before the transcript leaves: a read that is not in the audit log did not happen.
    await recordAudit(db, {
      actor: 'operator',
      agentId: null,
      action: 'transcript.read',
      sessionId: id,
      via: 'admin-api',
      ip: contextAddress(c, deps.config.trustProxy) ?? null,
      userAgent: c.req.header('user-agent') ?? null,
    });
    const messages = await listMessages(db, id, { afterSeq: after, limit });
    return c.json({
      session_id: id,
      messages: messages.map(toTranscriptEntry),
      next_after: messages.at(-1)?.seq ?? after,
    });
  });

  app.post('/api/admin/sessions/:id/end', async (c) => {
    const { id } = parse(SessionParams, c.req.param());
    const body = await readJson(c, EndBody, { allowEmpty: true });
    const session = await findSession(db, id);
    if (!session) throw notFound(id);
    if (session.endedAt)
      throw new ApiError(409, 'already_ended', `session ${id} ended at ${session.endedAt}`);
    const reason = body.reason ?? 'ended by operator';
    const accepted = await endSessionThroughQueue({ db, ingress }, session, reason);
    logger.info({ event: 'admin.session_end_requested', sessionId: id, reason });
    return c.json({ session_id: id, status: 'ending', envelope_id: accepted.envelopeId }, 202);
  });

  // Erasure on request for someone with no user to erase (an anonymous web or API visitor,
  // unverified mail), or of one conversation: the session, its sub-sessions, and what is theirs.
  app.delete('/api/admin/sessions/:id', async (c) => {
    const { id } = parse(SessionParams, c.req.param());
    const result = await eraseSession(deps, id);
    if (!result) throw notFound(id);
    return c.json({
      session_id: id,
      erased: { sessions: result.sessions.length, messages: result.messages, memory: result.memory },
      cache_cleared: result.cacheCleared,
    });
  });

  app.get('/api/admin/stats', async (c) => {
    const range = parse(StatsQuery, c.req.query());
    return c.json(await sessionStats(db, range));
  });

  app.delete('/api/users/:id', admin, async (c) => {
    const { id } = parse(UserParams, c.req.param());
    const result = await eraseUser(deps, id);
    if (!result) throw new ApiError(404, 'not_found', `there is no user ${id}`);
    return c.json({
      user_id: id,
      erased: {
        sessions: result.sessions.length,
        messages: result.messages,
        identities: result.identities,
        memory: result.memory,
      },
      cache_cleared: result.cacheCleared,
    });
  });
  return app;
}
