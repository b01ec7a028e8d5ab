import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { InvalidIdentityError } from '../channels/declaration.ts';
import { channels } from '../channels/registry.ts';
import type { BotRegistry } from '../config/bots.ts';
import { outboundEnvelope } from '../engine/outbound.ts';
import { BotNameSchema, identityOfNativeKey } from '../envelope.ts';
import { errorMessage } from '../errors.ts';
import { ApiError } from '../http/errors.ts';
import type { Logger } from '../logger.ts';
import type { ChannelAdapter, Ingress } from '../ports.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { Db, Queryable } from '../store/db.ts';
import type { SessionRecord } from '../store/records.ts';
import { toSessionRecord } from '../store/records.ts';
import { createContactSession, findOpenSnapshotByKey, loadSnapshot } from '../store/sessions.ts';
import { isUniqueViolation } from '../store/turns.ts';
import type {
  ChannelOutbound,
  OutboundDecision,
  OutboundDraft,
  OutboundRefusal,
  OutboundTemplate,
} from './capability.ts';
import { isOptedOut } from './opt-out.ts';
import {
  deliveryOf,
  findByIdempotencyKey,
  findOutboundMessage,
  insertOutboundMessage,
  moveOutboundMessage,
  OPERATOR_ORIGIN,
  type OutboundMessage,
  SESSION_ENDED_ERROR,
} from './store.ts';

/** The scheduler job that sends a message at its `send_at` (payload `{ messageId }`). */
export const OUTBOUND_SEND_JOB = 'outbound.send';
const SendJobPayload = z.object({ messageId: z.uuid() });
/** The scheduled job id of a message to send later. */
export const sendJobId = (messageId: string) => `outbound:${messageId}`;
/** The error of a message whose request failed (503) before it was queued or scheduled, with no idempotency key. */
export const NOT_ACCEPTED_ERROR = 'not accepted: the request failed before the message was queued (503)';

export const TemplateSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9_]{1,512}$/, 'a template name is lower-case letters, digits and _'),
    language: z.string().regex(/^[a-z]{2,3}(_[A-Za-z]{2,4})?$/, 'a language code such as "en" or "en_US"'),
    parameters: z.array(z.string().min(1).max(1024)).max(100).optional(),
    components: z.array(z.record(z.string(), z.unknown())).min(1).max(20).optional(),
  })
  .strict()
  .refine((t) => !(t.parameters && t.components), {
    message: 'give body "parameters" or "components", not both',
  });

const USER_PREFIX = 'user:';

export const SendRequestSchema = z
  .object({
    bot: BotNameSchema,
    channel: z.string().min(1).max(32).optional(),
    to: z.string().min(1).max(500),
    text: z.string().min(1).max(20_000).optional(),
    template: TemplateSchema.optional(),
    subject: z.string().min(1).max(998).optional(),
    send_at: z.iso.datetime({ offset: true }).optional(),
    idempotency_key: z.string().min(1).max(200).optional(),
  })
  .strict()
  .refine((r) => (r.text === undefined) !== (r.template === undefined), {
    message: 'give "text" or "template" (one of them)',
  })
  .refine((r) => r.channel !== undefined || r.to.startsWith(USER_PREFIX), {
    message: '"channel" is needed unless "to" is "user:<id>"',
    path: ['channel'],
  });
export type SendRequest = z.infer<typeof SendRequestSchema>;

export interface SendAnswer {
  message_id: string;
  session_id: string | null;
  status: 'queued' | 'scheduled';
}

export interface MessageStatus {
  status: 'queued' | 'scheduled' | 'sent' | 'delivered' | 'read' | 'failed' | 'cancelled';
  error?: string;
  session_id?: string;
}

export interface OutboundServiceDeps {
  db: Db;
  bots: BotRegistry;
  ingress: Ingress;
  scheduler: Scheduler;
  logger: Logger;
  /** The adapters this hub runs, by channel: a channel without one here cannot be written to. */
  adapters: ReadonlyMap<string, Pick<ChannelAdapter, 'channel' | 'outbound'>>;
  now?: () => Date;
}

/** Where a message goes, once its channel accepted it (see `OutboundService.place`). */
export interface Placement {
  ok: true;
  /** The person's native id. */
  to: string;
  /** The session key it enters. */
  nativeKey: string;
  open?: SessionRecord;
  /** What a session the message opens needs. */
  replyTo?: unknown;
}

/** The recipient, resolved: which channel, which session key, and the session it already has. */
interface Target {
  channel: string;
  nativeKey: string;
  open?: SessionRecord;
  replyTo?: unknown;
}

/** A stable hash of a request body (keys sorted), to tell a replay from another request under the same key. */
export function requestHash(body: unknown): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canonical(body)))
    .digest('hex');
}

const describeTemplate = (t: OutboundTemplate) =>
  `[template ${t.name} (${t.language})${t.parameters?.length ? `: ${t.parameters.join(', ')}` : ''}]`;

/**
 * Messages the business sends first (`POST /api/admin/messages`): resolves the recipient to the
 * session inbound would key, asks the channel's adapter whether and how it can be written to,
 * records the message, and puts it into the session through its lane (an outbound envelope) now
 * or at `send_at` (the durable scheduler).
 */
export class OutboundService {
  private readonly now: () => Date;
  constructor(private readonly o: OutboundServiceDeps) {
    this.now = o.now ?? (() => new Date());
  }

  /** Registers the scheduled-send job (every role: workers run it). */
  register(): void {
    this.o.scheduler.handle(OUTBOUND_SEND_JOB, async (payload) => {
      // A run that finds the database or the queue away throws: the scheduler runs the job again
      // later without counting that run among its starts (src/scheduler/scheduler.ts).
      await this.fire(SendJobPayload.parse(payload).messageId);
    });
  }

  /**
   * Sends or schedules. `replayed`: the idempotency key was used before with this body, and the
   * answer is the first one. Refusals are ApiErrors.
   */
  async send(request: SendRequest, hash: string): Promise<{ answer: SendAnswer; replayed: boolean }> {
    if (request.idempotency_key) {
      const replay = await this.replay(request.idempotency_key, hash);
      if (replay) return { answer: replay, replayed: true };
    }
    const { bots, db } = this.o;
    if (!bots.has(request.bot)) throw new ApiError(404, 'unknown_bot', `no bot "${request.bot}"`);
    const now = this.now();
    const sendAt = request.send_at ? new Date(request.send_at) : undefined;
    if (sendAt && sendAt.getTime() <= now.getTime())
      throw new ApiError(400, 'invalid_send_at', `send_at ${request.send_at} is not in the future`);
    const target = await this.resolve(request);
    const adapter = this.o.adapters.get(target.channel);
    if (!adapter)
      throw new ApiError(
        400,
        'channel_not_configured',
        `channel "${target.channel}" is not configured on this hub`,
      );
    const outbound = adapter.outbound;
    if (request.template && !outbound?.templates)
      throw new ApiError(422, 'not_supported', `channel "${target.channel}" has no template messages`);

    const id = randomUUID();
    const placed = await this.place(outbound, {
      key: id,
      bot: request.bot,
      channel: target.channel,
      nativeKey: target.nativeKey,
      ...(target.open ? { open: target.open } : {}),
      ...(request.text !== undefined ? { text: request.text } : {}),
      ...(request.template ? { template: request.template } : {}),
      ...(request.subject !== undefined ? { subject: request.subject } : {}),
      now,
    });
    if (!placed.ok) throw new ApiError(placed.status, placed.code, placed.message);
    if (await isOptedOut(db, { bot: request.bot, channel: target.channel, nativeId: placed.to }))
      throw new ApiError(
        409,
        'opted_out',
        `${placed.to} has opted out of messages from bot "${request.bot}" on ${target.channel}`,
      );
    target.nativeKey = placed.nativeKey;
    if (placed.open) target.open = placed.open;
    else delete target.open;
    const decision = placed;
    const message: Omit<OutboundMessage, 'error'> = {
      id,
      bot: request.bot,
      channel: target.channel,
      nativeKey: target.nativeKey,
      sessionId: target.open?.id ?? null,
      replyTo: target.open ? null : (decision.replyTo ?? null),
      text: request.text ?? describeTemplate(request.template!),
      template: request.template ?? null,
      subject: request.subject ?? null,
      status: sendAt ? 'scheduled' : 'queued',
      sendAt: sendAt?.toISOString() ?? null,
      broadcastId: null,
      idempotencyKey: request.idempotency_key ?? null,
      requestHash: request.idempotency_key ? hash : null,
    };
    const inserted = await insertOutboundMessage(db, message);
    if (!inserted) {
      // Another request with the same key got there first.
      const replay = await this.replay(request.idempotency_key!, hash);
      if (replay) return { answer: replay, replayed: true };
      throw new ApiError(409, 'idempotency_conflict', 'the idempotency key is being used');
    }
    if (sendAt) {
      await this.orAbandon(inserted, () => this.schedule(inserted));
      this.o.logger.info({
        event: 'outbound.scheduled',
        messageId: message.id,
        bot: message.bot,
        channel: message.channel,
        sendAt: message.sendAt,
      });
      return {
        answer: { message_id: message.id, session_id: message.sessionId, status: 'scheduled' },
        replayed: false,
      };
    }
    const sessionId = await this.orAbandon(inserted, () => this.enter(inserted));
    return {
      answer: { message_id: message.id, session_id: sessionId ?? null, status: 'queued' },
      replayed: false,
    };
  }

  /**
   * Where a message to `nativeKey` goes and whether its channel takes it now: the session key it
   * enters (the person's latest thread, or a new one the adapter opens), the open session, and
   * what a session the message opens needs; or the channel's refusal.
   */
  async place(
    outbound: ChannelOutbound | undefined,
    input: {
      bot: string;
      channel: string;
      nativeKey: string;
      open?: SessionRecord;
      text?: string;
      template?: OutboundTemplate;
      subject?: string;
      key?: string;
      now: Date;
    },
  ): Promise<Placement | OutboundRefusal> {
    let nativeKey = input.nativeKey;
    let open = input.open;
    const latest = open ?? (await latestSession(this.o.db, input.bot, input.channel, nativeKey));
    if (!open && latest && latest.nativeKey !== nativeKey) {
      // The person's conversations are threads (a Teams chat, an email thread): the latest one.
      nativeKey = latest.nativeKey;
      if (!latest.endedAt) open = latest;
    }
    const draft: OutboundDraft = {
      bot: input.bot,
      to: identityOfNativeKey(nativeKey).from.id,
      ...(open ? { open } : {}),
      ...(latest ? { latest } : {}),
      ...(input.text !== undefined ? { text: input.text } : {}),
      ...(input.template ? { template: input.template } : {}),
      ...(input.subject !== undefined ? { subject: input.subject } : {}),
      ...(input.key !== undefined ? { key: input.key } : {}),
      now: input.now,
    };
    const decision = await (outbound
      ? outbound.prepare(draft)
      : this.insideConversation(input.channel, draft));
    if (!decision.ok) return decision;
    if (decision.thread) {
      // A conversation of its own (a new email thread): a session keyed with the new thread.
      nativeKey = `${draft.to}#${decision.thread}`;
      open = undefined;
    }
    return {
      ok: true,
      to: draft.to,
      nativeKey,
      ...(open ? { open } : {}),
      ...(decision.replyTo !== undefined ? { replyTo: decision.replyTo } : {}),
    };
  }

  async find(id: string): Promise<OutboundMessage | undefined> {
    return findOutboundMessage(this.o.db, id);
  }

  async status(id: string): Promise<MessageStatus | undefined> {
    const message = await findOutboundMessage(this.o.db, id);
    if (!message) return undefined;
    const session = message.sessionId ? { session_id: message.sessionId } : {};
    if (message.status === 'opted_out') return { status: 'failed', error: 'opted_out', ...session };
    if (message.status === 'scheduled' || message.status === 'cancelled')
      return { status: message.status, ...session };
    // Once its session recorded it, its delivery says (a request that failed after its envelope
    // was queued settled the message failed, yet it went).
    const delivery = await deliveryOf(this.o.db, id);
    if (!delivery) {
      if (message.status === 'failed')
        return { status: 'failed', ...(message.error ? { error: message.error } : {}), ...session };
      return { status: 'queued', ...session };
    }
    return {
      status: delivery.status as MessageStatus['status'],
      ...(delivery.error ? { error: delivery.error } : {}),
      session_id: delivery.sessionId,
    };
  }

  /** Cancels a message not yet sent: 'cancelled', or 'sent' once it has gone into its session. */
  async cancel(id: string): Promise<'cancelled' | 'sent' | undefined> {
    const message = await findOutboundMessage(this.o.db, id);
    if (!message) return undefined;
    if (message.status === 'cancelled') return 'cancelled';
    if (message.status !== 'scheduled') return 'sent';
    // The row's state decides, not the job: a job already running sees 'cancelled' and sends nothing.
    if (!(await moveOutboundMessage(this.o.db, id, 'scheduled', 'cancelled'))) return 'sent';
    await this.o.scheduler.cancel(sendJobId(id)).catch(() => false);
    this.o.logger.info({ event: 'outbound.cancelled', messageId: id });
    return 'cancelled';
  }

  /** The scheduled send: once, however many workers and restarts (the row moves from scheduled once). */
  async fire(messageId: string): Promise<void> {
    const message = await findOutboundMessage(this.o.db, messageId);
    if (!message) return;
    if (message.status === 'scheduled') {
      // The person may have sent a stop word since the message was scheduled: it is not sent.
      const nativeId = identityOfNativeKey(message.nativeKey).from.id;
      if (await isOptedOut(this.o.db, { bot: message.bot, channel: message.channel, nativeId })) {
        if (await moveOutboundMessage(this.o.db, messageId, 'scheduled', 'failed', { error: 'opted_out' }))
          this.o.logger.info({ event: 'outbound.opted_out', messageId, channel: message.channel });
        return;
      }
      if (!(await moveOutboundMessage(this.o.db, messageId, 'scheduled', 'queued'))) return;
    } else if (message.status !== 'queued' || (await deliveryOf(this.o.db, messageId))) {
      return;
    }
    // A run that died between the move and the queue comes back here; the envelope id dedupes.
    await this.enter({ ...message, status: 'queued' });
  }

  /** Schedules a message's send at its `send_at` (again: the same job id replaces the job there is). */
  private async schedule(message: OutboundMessage): Promise<void> {
    await this.o.scheduler.schedule(
      OUTBOUND_SEND_JOB,
      { messageId: message.id },
      { at: new Date(message.sendAt!), id: sendJobId(message.id) },
    );
  }

  /**
   * Runs the step that queues or schedules a message just recorded. When it fails (the queue or
   * the scheduler away) the request answers 503 and the message is not accepted. With an
   * idempotency key it stays as recorded: the client's retry with the key (`replay`) does the
   * step again. Without one nothing could tell a retry from a new message, so it is settled
   * failed: never sent later, behind a client that sends it again.
   */
  private async orAbandon<T>(message: OutboundMessage, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (err) {
      if (!message.idempotencyKey) {
        const settled = await moveOutboundMessage(this.o.db, message.id, message.status, 'failed', {
          error: NOT_ACCEPTED_ERROR,
        }).catch(() => false);
        this.o.logger.warn({
          event: 'outbound.not_accepted',
          messageId: message.id,
          settled,
          err: errorMessage(err),
        });
      }
      throw err;
    }
  }

  /** Puts a queued message into its session's lane; its session id, or undefined when it failed. */
  private async enter(message: OutboundMessage): Promise<string | undefined> {
    const session = await this.sessionFor(message);
    if (!session) {
      await moveOutboundMessage(this.o.db, message.id, 'queued', 'failed', { error: SESSION_ENDED_ERROR });
      this.o.logger.warn({ event: 'outbound.no_session', messageId: message.id });
      return undefined;
    }
    if (session.id !== message.sessionId)
      await moveOutboundMessage(this.o.db, message.id, 'queued', 'queued', { sessionId: session.id });
    await this.handOver(session, message);
    return session.id;
  }

  /**
   * Queues the envelope that puts `message` into `session` through its lane. Handing the same
   * message over again is a no-op downstream (its envelope id is deduplicated).
   */
  async handOver(session: SessionRecord, message: OutboundMessage): Promise<void> {
    await this.o.ingress.accept(
      outboundEnvelope(session, {
        id: message.id,
        text: message.text,
        role: 'assistant',
        origin: { type: OPERATOR_ORIGIN, id: message.id },
        ...(message.template ? { template: message.template } : {}),
        ...(message.subject !== null ? { subject: message.subject } : {}),
      }),
    );
    this.o.logger.info({
      event: 'outbound.queued',
      messageId: message.id,
      sessionId: session.id,
      channel: message.channel,
      ...(message.broadcastId ? { broadcastId: message.broadcastId } : {}),
    });
  }

  /**
   * The open session the message goes into: the one it was accepted for while open, else the
   * open one of its key, else (keyed channels) a new one, made as a person's first message
   * would make it, with what the adapter prepared as its address. A web session is never made.
   */
  async sessionFor(message: OutboundMessage): Promise<SessionRecord | undefined> {
    const { db } = this.o;
    // A message accepted for an open session keeps no address of its own: that session's serves.
    let replyTo = message.replyTo;
    if (message.sessionId) {
      const snap = await loadSnapshot(db, message.sessionId);
      if (snap && !snap.session.endedAt) return snap.session;
      replyTo ??= snap?.session.replyTo ?? null;
    }
    const key = { bot: message.bot, channel: message.channel, nativeKey: message.nativeKey };
    const open = await findOpenSnapshotByKey(db, key);
    if (open) return open.session;
    const declaration = channels.get(message.channel);
    if (!declaration || declaration.sessions === 'explicit') return undefined;
    const id = identityOfNativeKey(message.nativeKey).from.id;
    try {
      const made = await createContactSession(db, {
        ...key,
        identity: declaration.identified ? { nativeId: id } : null,
        replyTo,
        meta: {},
      });
      return made.session;
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      // The person wrote (or another send opened it) a moment ago.
      return (await findOpenSnapshotByKey(db, key))?.session;
    }
  }

  /**
   * The first answer to a key used before with this body, once what that request left undone is
   * done: it may have answered 503 after recording the message (the queue or the scheduler was
   * away), and its retry is how the message is sent. A message never put into its lane is put
   * there (its envelope id makes a second hand-over a no-op downstream); a scheduled one is
   * scheduled again (the same job id replaces the job, if there is one).
   */
  private async replay(key: string, hash: string): Promise<SendAnswer | undefined> {
    const first = await findByIdempotencyKey(this.o.db, key);
    if (!first) return undefined;
    if (first.requestHash !== hash)
      throw new ApiError(409, 'idempotency_conflict', 'this idempotency_key was used with another request');
    let sessionId = first.sessionId;
    if (first.status === 'scheduled') await this.schedule(first);
    else if (first.status === 'queued' && !(await deliveryOf(this.o.db, first.id)))
      sessionId = (await this.enter(first)) ?? sessionId;
    return {
      message_id: first.id,
      session_id: sessionId,
      status: first.sendAt ? 'scheduled' : 'queued',
    };
  }

  /** A channel that declares no outbound rules: only inside a conversation the person opened. */
  private insideConversation(channel: string, draft: OutboundDraft): OutboundDecision {
    if (draft.open) return { ok: true };
    if (channels.get(channel)?.sessions !== 'explicit' && draft.latest?.replyTo)
      return { ok: true, replyTo: draft.latest.replyTo };
    return {
      ok: false,
      status: 409,
      code: 'no_conversation',
      message: `channel "${channel}" can only be written to in a conversation the person started`,
    };
  }

  /** Which channel and session key `to` names; 4xx when it names none. */
  private async resolve(request: SendRequest): Promise<Target> {
    const { db } = this.o;
    let channel = request.channel;
    let to = request.to;
    if (to.startsWith(USER_PREFIX)) {
      const userId = to.slice(USER_PREFIX.length);
      if (!z.uuid().safeParse(userId).success)
        throw new ApiError(400, 'invalid_recipient', '"user:<id>" takes a user id (a UUID)');
      const found = await recipientOfUser(db, request.bot, userId, channel);
      if (!found)
        throw new ApiError(
          404,
          'unknown_recipient',
          channel
            ? `user ${userId} has no identity on channel "${channel}"`
            : `user ${userId} has never talked with bot "${request.bot}"`,
        );
      channel = found.channel;
      to = found.nativeKey;
      if (found.sessionId) {
        const snap = await loadSnapshot(db, found.sessionId);
        if (snap && !snap.session.endedAt)
          return { channel, nativeKey: snap.session.nativeKey, open: snap.session };
      }
    }
    const declaration = channels.get(channel!);
    if (!declaration)
      throw new ApiError(
        400,
        'unknown_channel',
        `unknown channel "${channel}"; channels: ${channels.names().join(', ')}`,
      );
    if (declaration.sessions === 'explicit') {
      // A session such a channel's client opened and holds: it cannot be opened from outside.
      const session = z.uuid().safeParse(to).success ? await openSessionById(db, to) : undefined;
      if (!session || session.bot !== request.bot || session.channel !== declaration.name)
        throw new ApiError(
          404,
          'unknown_session',
          `no open ${declaration.name} session ${to} of bot "${request.bot}"`,
        );
      return { channel: declaration.name, nativeKey: session.nativeKey, open: session };
    }
    let nativeKey: string;
    try {
      const parts = identityOfNativeKey(to);
      nativeKey = parts.thread
        ? `${declaration.nativeId.normalize(parts.from.id)}#${parts.thread}`
        : declaration.nativeId.normalize(to);
    } catch (err) {
      if (err instanceof InvalidIdentityError)
        throw new ApiError(
          400,
          'invalid_recipient',
          `"${to}" is not a ${declaration.name} id: ${err.message}`,
        );
      throw err;
    }
    const open = await findOpenSnapshotByKey(db, { bot: request.bot, channel: declaration.name, nativeKey });
    return { channel: declaration.name, nativeKey, ...(open ? { open: open.session } : {}) };
  }
}

async function openSessionById(q: Queryable, id: string): Promise<SessionRecord | undefined> {
  const snap = await loadSnapshot(q, id);
  return snap && !snap.session.endedAt ? snap.session : undefined;
}

async function latestSession(
  q: Queryable,
  bot: string,
  channel: string,
  nativeKey: string,
): Promise<SessionRecord | undefined> {
  const { rows } = await q.query(
    `SELECT * FROM sessions WHERE bot = $1 AND channel = $2
       AND (native_key = $3 OR ($4 AND starts_with(native_key, $3 || '#')))
     ORDER BY (ended_at IS NULL) DESC, last_activity_at DESC LIMIT 1`,
    [bot, channel, nativeKey, !nativeKey.includes('#')],
  );
  return rows[0] ? toSessionRecord(rows[0]) : undefined;
}

/**
 * Where to reach a user: on `channel` when given (their identity there, their latest session
 * on it), else the channel of their latest session with the bot.
 */
async function recipientOfUser(
  q: Queryable,
  bot: string,
  userId: string,
  channel: string | undefined,
): Promise<{ channel: string; nativeKey: string; sessionId?: string } | undefined> {
  const { rows } = await q.query(
    `SELECT id, channel, native_key FROM sessions WHERE user_id = $1 AND bot = $2 AND ($3::text IS NULL OR channel = $3)
     ORDER BY last_activity_at DESC LIMIT 1`,
    [userId, bot, channel ?? null],
  );
  if (rows[0]) {
    const row = rows[0];
    return {
      channel: row.channel as string,
      nativeKey: row.native_key as string,
      sessionId: row.id as string,
    };
  }
  if (!channel) return undefined;
  const identity = await q.query(
    'SELECT native_id FROM user_identities WHERE user_id = $1 AND channel = $2',
    [userId, channel],
  );
  return identity.rows[0] ? { channel, nativeKey: identity.rows[0].native_id as string } : undefined;
}

export type { ChannelOutbound };
