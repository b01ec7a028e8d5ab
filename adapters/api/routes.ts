import { randomUUID } from 'node:crypto';
import { type Context, Hono } from 'hono';
import { z } from 'zod';
import { formatIssues } from '../../src/config/env-parsing.ts';
import type { EnvelopeInput } from '../../src/envelope.ts';
import { UnknownFileError, uploadedAttachments } from '../../src/files/attach.ts';
import { clientAttachments, clientCards } from '../../src/files/client-view.ts';
import { contextAddress } from '../../src/http/client-address.ts';
import { ApiError, readJson } from '../../src/http/errors.ts';
import { requireSession, type SessionEnv } from '../../src/http/session-auth.ts';
import { toApiState } from '../../src/http/session-state-view.ts';
import { waitForTurn } from '../../src/http/turn-waiter.ts';
import { RateLimitedError } from '../../src/ingress.ts';
import {
  MINUTE_MS,
  type RateLimiter,
  retryAfterSeconds,
  sessionCreateKey,
} from '../../src/limits/rate-limiter.ts';
import type { AdapterHost, Ingress } from '../../src/ports.ts';
import type { MessageRecord } from '../../src/store/records.ts';
import { API_CHANNEL } from './channel.ts';

const DEFAULT_PAGE = 50;
/** Longest client message id (`message_id` or `Idempotency-Key`); the envelope id holds it. */
const MAX_MESSAGE_ID = 200;

/** What the routes use of the host: services only, never the database. */
export type SessionApiDeps = Pick<
  AdapterHost,
  'config' | 'bots' | 'ingress' | 'bus' | 'logger' | 'sessions' | 'history' | 'files' | 'stopping'
> & {
  /** Counts sessions opened per client address (SESSION_CREATE_PER_MINUTE). */
  rateLimiter: RateLimiter;
};

export const CreateSessionBody = z.object({ bot: z.string().max(100).optional() }).strict();
export const ChatBody = z
  .object({
    text: z.string({ error: 'text is required and must be a string' }),
    /** The client's id for this message: a resend with the same id is processed once. */
    message_id: z.string().min(1).max(MAX_MESSAGE_ID).optional(),
    /** Files uploaded with `POST /api/session/files`; the text may then be empty. */
    files: z.array(z.uuid()).max(10).optional(),
  })
  .strict();
export const HistoryQuery = z.object({
  after: z.coerce.number().int().min(0).optional(),
  before: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(DEFAULT_PAGE),
});

type ApiRow = Pick<MessageRecord, 'seq' | 'role' | 'content' | 'createdAt' | 'payload'> &
  Partial<MessageRecord>;

/** A history row for API clients; `link` makes a file's signed link. */
export function toApiMessage(m: ApiRow, link: (fileId: string) => string = (id) => `/api/files/${id}`) {
  const attachments = clientAttachments(m.payload.attachments, link).map(({ fileId, ...a }) => ({
    ...a,
    ...(fileId ? { file_id: fileId } : {}),
  }));
  const cards = clientCards(m.payload.cards, link);
  return {
    seq: m.seq,
    role: m.role,
    text: m.content,
    created_at: m.createdAt,
    ...(m.deliveryStatus ? { delivery_status: m.deliveryStatus } : {}),
    ...(m.payload.suggestions ? { suggestions: m.payload.suggestions } : {}),
    ...(attachments.length ? { attachments } : {}),
    ...(cards.length ? { cards } : {}),
  };
}

function clientMeta(c: Context, trustProxy: number): Record<string, unknown> {
  return { ip: contextAddress(c, trustProxy), userAgent: c.req.header('user-agent') };
}

/** Accepts an envelope; a message over its session's rate limit is a 429 with Retry-After. */
async function acceptOrRefuse(ingress: Ingress, envelope: EnvelopeInput) {
  try {
    return await ingress.accept(envelope);
  } catch (err) {
    if (!(err instanceof RateLimitedError)) throw err;
    throw new ApiError(429, 'rate_limited', err.message, {
      'Retry-After': retryAfterSeconds(err.retryAfterMs),
    });
  }
}

/** The session API as a sub-app; its paths are absolute (`/api/session`, `/api/chat`). */
export function sessionApiRoutes(deps: SessionApiDeps): Hono<SessionEnv> {
  const { config, bots, ingress, bus, logger, rateLimiter, sessions, history, files, stopping } = deps;
  const toApi = (m: ApiRow) => toApiMessage(m, (id) => files.signedPath(id));
  const app = new Hono<SessionEnv>();
  const authenticated = requireSession(sessions);

  app.post('/api/session', async (c) => {
    const body = await readJson(c, CreateSessionBody, { allowEmpty: true });
    const bot = body.bot ?? 'default';
    if (!bots.has(bot)) throw new ApiError(404, 'unknown_bot', `there is no bot named "${bot}"`);
    const address = contextAddress(c, config.trustProxy) ?? 'unknown';
    const allowed = await rateLimiter.hit(
      sessionCreateKey(address),
      config.sessionCreatePerMinute,
      MINUTE_MS,
    );
    if (!allowed.allowed) {
      logger.info({ event: 'session.create_limited', channel: API_CHANNEL });
      throw new ApiError(
        429,
        'rate_limited',
        `this address opened ${config.sessionCreatePerMinute} sessions in the last minute; retry later`,
        { 'Retry-After': retryAfterSeconds(allowed.retryAfterMs) },
      );
    }
    const { session, token } = await sessions.open({
      bot,
      channel: API_CHANNEL,
      meta: clientMeta(c, config.trustProxy),
    });
    logger.info({ event: 'session.created', sessionId: session.id, bot, channel: API_CHANNEL });
    return c.json({ session_id: session.id, token, expires_at: session.expiresAt, bot }, 201);
  });

  app.get('/api/session', authenticated, async (c) => {
    const session = c.var.session;
    const snapshot = await sessions.snapshot(session.id);
    if (!snapshot) throw new ApiError(404, 'not_found', 'the session no longer exists');
    const { state } = snapshot;
    const s = snapshot.session;
    return c.json({
      session_id: s.id,
      bot: s.bot,
      channel: s.channel,
      auth_level: s.authLevel,
      user_id: s.userId,
      created_at: s.createdAt,
      last_activity_at: s.lastActivityAt,
      expires_at: s.expiresAt,
      message_count: s.messageCount,
      last_seq: s.lastSeq,
      state: toApiState(state),
    });
  });

  app.delete('/api/session', authenticated, async (c) => {
    const session = c.var.session;
    await sessions.end(session, 'ended by user');
    logger.info({ event: 'session.end_requested', sessionId: session.id });
    return c.json({ session_id: session.id, ended: true });
  });

  app.get('/api/session/messages', authenticated, async (c) => {
    const session = c.var.session;
    const parsed = HistoryQuery.safeParse(c.req.query());
    if (!parsed.success) throw new ApiError(400, 'invalid_request', formatIssues(parsed.error.issues));
    const { after, before, limit } = parsed.data;
    if (after !== undefined && before !== undefined)
      throw new ApiError(400, 'invalid_request', 'use either after or before, not both');
    const messages = await history.page(session.id, { afterSeq: after, beforeSeq: before, limit });
    const last = messages.at(-1);
    return c.json({
      session_id: session.id,
      messages: messages.map(toApi),
      next_after: last ? last.seq : (after ?? 0),
    });
  });

  app.post('/api/chat', authenticated, async (c) => {
    const body = await readJson(c, ChatBody);
    const bytes = Buffer.byteLength(body.text, 'utf8');
    if (bytes > config.maxTextBytes) {
      throw new ApiError(413, 'text_too_long', `text is ${bytes} bytes; the limit is ${config.maxTextBytes}`);
    }
    if (body.text.trim() === '' && !body.files?.length)
      throw new ApiError(400, 'empty_text', 'text must not be empty');
    const session = await sessions.forMessage(c.var.session, c.var.sessionToken, body.text);
    const attachments = await uploadedAttachments(files, body.files, c.var.session.id, session.id).catch(
      (err: unknown) => {
        if (err instanceof UnknownFileError) throw new ApiError(400, 'unknown_file', err.message);
        throw err;
      },
    );
    const idempotencyKey = c.req.header('idempotency-key');
    if (idempotencyKey !== undefined && idempotencyKey.length > MAX_MESSAGE_ID)
      throw new ApiError(
        400,
        'invalid_text',
        `Idempotency-Key is ${idempotencyKey.length} characters; the limit is ${MAX_MESSAGE_ID}`,
      );
    const messageId = body.message_id ?? idempotencyKey ?? randomUUID();
    // A token session's messages go to its own channel's lane (a web session's token works here
    // too): the turn runs in the session, and its sockets see the message and the replies.
    const envelopeId = `${session.channel}:${session.id}:${messageId}`;
    const wait = c.req.query('wait') !== 'false' && config.chatWaitMs > 0;
    const waiter = wait
      ? await waitForTurn(bus, session.id, envelopeId, config.chatWaitMs, stopping)
      : undefined;
    // The bus (Redis) did not answer in time: no wait, as ?wait=false; the accept says whether it is away.
    if (wait && !waiter) logger.warn({ event: 'chat.wait_unavailable', sessionId: session.id });
    try {
      const accepted = await acceptOrRefuse(ingress, {
        id: envelopeId,
        channel: session.channel,
        bot: session.bot,
        from: { id: session.id },
        text: body.text,
        attachments,
        meta: clientMeta(c, config.trustProxy),
        receivedAt: new Date().toISOString(),
      });
      const queued = { envelope_id: envelopeId, status: 'queued' as const };
      if (!waiter) return c.json(queued, 202);
      if (accepted.status === 'duplicate' && (await history.isRecorded(envelopeId))) {
        const replies = await history.repliesTo(envelopeId);
        return c.json({
          envelope_id: envelopeId,
          status: 'completed',
          duplicate: true,
          replies: replies.map(toApi),
        });
      }
      const turn = await waiter.result;
      if (!turn)
        return c.json({ ...queued, message: 'still working; the replies will be in the history' }, 202);
      // From the history, through the person's reader, not from the bus event: one filter for every path.
      const replies = await history.repliesTo(envelopeId);
      return c.json({ envelope_id: envelopeId, status: 'completed', replies: replies.map(toApi) });
    } finally {
      waiter?.cancel();
    }
  });
  return app;
}
