import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { InvalidIdentityError } from '../channels/declaration.ts';
import { channels } from '../channels/registry.ts';
import type { BotRegistry } from '../config/bots.ts';
import { BotNameSchema, identityOfNativeKey } from '../envelope.ts';
import { errorMessage } from '../errors.ts';
import { ApiError } from '../http/errors.ts';
import type { Logger } from '../logger.ts';
import type { ChannelAdapter } from '../ports.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { Db } from '../store/db.ts';
import { emitKeyed, factEventId, subscribedTypes } from '../webhooks/store.ts';
import { type Audience, AudienceSchema, audienceQuery, identityChannels } from './audience.ts';
import {
  abandonRecipients,
  type Broadcast,
  type BroadcastCounts,
  broadcastCounts,
  claimRecipients,
  findBroadcast,
  findBroadcastByKey,
  hasWaitingRecipients,
  insertBroadcast,
  leftoverRecipients,
  listBroadcasts,
  markBroadcastCompleted,
  markBroadcastFinished,
  type RecipientSource,
  runHasBegun,
  settleRecipient,
} from './broadcast-store.ts';
import { isOptedOut } from './opt-out.ts';
import { type OutboundService, TemplateSchema } from './service.ts';
import { type OutboundMessage, SESSION_ENDED_ERROR } from './store.ts';

/** The scheduler job that runs one tick of a broadcast (payload `{ broadcastId }`). */
export const BROADCAST_TICK_JOB = 'broadcast.tick';
/**
 * `last`: when the previous tick started (ms since the epoch) and `carry` the fraction of a
 * recipient it left: a tick hands over what the pace allows for the time really passed since, so
 * the scheduler's own delay does not slow the broadcast down. `reportedAt` and `reported`: when
 * the last `broadcast.progress` event was written and the counts it had (the throttle).
 */
const TickPayload = z.object({
  broadcastId: z.uuid(),
  last: z.number().optional(),
  carry: z.number().min(0).max(1).optional(),
  reportedAt: z.number().optional(),
  reported: z.string().optional(),
});
type Report = { reportedAt?: number; reported?: string };
const tickJobId = (id: string) => `broadcast:${id}`;

/** A broadcast on a channel whose adapter declares no pace goes at most this fast. */
export const DEFAULT_BROADCAST_RATE = 100;
/** Ticks are at least this far apart; a slow pace makes them further (one recipient each). */
const MIN_TICK_MS = 200;
/** Recipients of one tick handed over at once. */
const HANDOVER_CONCURRENCY = 16;
/** A tick that failed (the database, the queue) tries again this much later. */
const TICK_RETRY_MS = 2_000;
/** The error of the recipients of a broadcast whose request failed (503) before its run was scheduled, with no idempotency key. */
export const NOT_STARTED_ERROR = 'not sent: the request failed before the broadcast was scheduled (503)';
const MAX_RECIPIENTS = 100_000;
/** The broadcast events the run writes (the others come from triggers, migration 0040). */
const RUN_EVENTS = ['broadcast.progress', 'broadcast.completed'] as const;
/** `broadcast.progress` at most this often by default (`WEBHOOK_BROADCAST_PROGRESS_MS`). */
export const DEFAULT_PROGRESS_MS = 5_000;
/** After its dispatch a broadcast is watched for completion this long at most. */
const WATCH_LIMIT_MS = 24 * 60 * 60 * 1000;

export const BroadcastRequestSchema = z
  .object({
    bot: BotNameSchema,
    channel: z.string().min(1).max(32),
    audience: AudienceSchema.optional(),
    to: z.array(z.string().min(1).max(500)).min(1).max(MAX_RECIPIENTS).optional(),
    text: z.string().min(1).max(20_000).optional(),
    template: TemplateSchema.optional(),
    subject: z.string().min(1).max(998).optional(),
    rate_per_second: z.number().positive().max(10_000).optional(),
    idempotency_key: z.string().min(1).max(200).optional(),
  })
  .strict()
  .refine((r) => (r.text === undefined) !== (r.template === undefined), {
    message: 'give "text" or "template" (one of them)',
  })
  .refine((r) => (r.audience === undefined) !== (r.to === undefined), {
    message: 'give "audience" or "to" (one of them)',
  });
export type BroadcastRequest = z.infer<typeof BroadcastRequestSchema>;

export interface BroadcastAnswer {
  broadcast_id: string;
  total: number;
  opted_out: number;
  rate_per_second: number;
}

export interface BroadcastProgress extends BroadcastCounts {
  broadcast_id: string;
  bot: string;
  channel: string;
  /** `running` while any recipient is waiting or in the outbox; `completed` after. */
  status: 'running' | 'completed';
  rate_per_second: number;
  created_at: string;
  /** When every recipient had been handed to their session (or set aside). */
  dispatched_at: string | null;
}

export interface BroadcastServiceDeps {
  db: Db;
  bots: BotRegistry;
  scheduler: Scheduler;
  logger: Logger;
  outbound: OutboundService;
  adapters: ReadonlyMap<string, Pick<ChannelAdapter, 'channel' | 'outbound'>>;
  /** `BROADCAST_RATE_LIMITS`: caps by channel over the adapters' declared ones. */
  rateLimits: Readonly<Record<string, number>>;
  /** Event webhooks: `broadcast.progress` at most this often, and the completion watch's interval. */
  progressMs?: number;
  now?: () => Date;
}

const describeTemplate = (t: { name: string; language: string; parameters?: string[] }) =>
  `[template ${t.name} (${t.language})${t.parameters?.length ? `: ${t.parameters.join(', ')}` : ''}]`;

/** How often a broadcast at `rate` ticks, and how many recipients each tick hands over. */
export function pacing(rate: number): { intervalMs: number; batch: number } {
  const intervalMs = Math.max(MIN_TICK_MS, 1_000 / rate);
  return { intervalMs, batch: Math.max(1, Math.round((rate * intervalMs) / 1_000)) };
}

/**
 * Broadcasts (`POST /api/admin/broadcasts`): one message to many people. The recipients are
 * fixed when it is accepted (one `outbound_messages` row each, unique per person, opted-out
 * people recorded as such); a run on the durable scheduler then hands them to their sessions'
 * lanes at the broadcast's pace, one tick at a time, each tick a job that schedules the next.
 * A tick claims its recipients before handing them over and settles each after: a worker that
 * dies mid-tick leaves them claimed, and the next tick (on any worker, once the job's lease is
 * over) hands them over again, which the queue drops as duplicates of the same envelope id.
 * So nobody gets a broadcast twice, and the run resumes after a restart.
 */
export class BroadcastService {
  private readonly now: () => Date;
  private readonly progressMs: number;
  constructor(private readonly o: BroadcastServiceDeps) {
    this.now = o.now ?? (() => new Date());
    this.progressMs = o.progressMs ?? DEFAULT_PROGRESS_MS;
  }

  register(): void {
    this.o.scheduler.handle(BROADCAST_TICK_JOB, async (payload) => {
      const { broadcastId, last, carry, reportedAt, reported } = TickPayload.parse(payload);
      await this.tick(
        broadcastId,
        last === undefined ? undefined : { last, carry: carry ?? 0 },
        reportedAt === undefined ? {} : { reportedAt, ...(reported === undefined ? {} : { reported }) },
      );
    });
  }

  /** The highest pace on a channel, messages per second. */
  cap(channel: string): number {
    return (
      this.o.rateLimits[channel] ?? channels.get(channel)?.limits.messagesPerSecond ?? DEFAULT_BROADCAST_RATE
    );
  }

  async start(
    request: BroadcastRequest,
    hash: string,
  ): Promise<{ answer: BroadcastAnswer; replayed: boolean }> {
    const { db, bots } = this.o;
    if (request.idempotency_key) {
      const replay = await this.replay(request.idempotency_key, hash);
      if (replay) return { answer: replay, replayed: true };
    }
    if (!bots.has(request.bot)) throw new ApiError(404, 'unknown_bot', `no bot "${request.bot}"`);
    const declaration = channels.get(request.channel);
    if (!declaration)
      throw new ApiError(
        400,
        'unknown_channel',
        `unknown channel "${request.channel}"; channels: ${channels.names().join(', ')}`,
      );
    const adapter = this.o.adapters.get(declaration.name);
    if (!adapter)
      throw new ApiError(
        400,
        'channel_not_configured',
        `channel "${declaration.name}" is not configured on this hub`,
      );
    if (request.template && !adapter.outbound?.templates)
      throw new ApiError(422, 'not_supported', `channel "${declaration.name}" has no template messages`);
    if (request.audience?.has_identity && request.audience.has_identity !== 'email') {
      if (identityChannels(request.audience.has_identity).length === 0)
        throw new ApiError(
          400,
          'invalid_audience',
          `has_identity "${request.audience.has_identity}" is neither an identity kind (email, phone) nor a channel`,
        );
    }
    const cap = this.cap(declaration.name);
    const rate = Math.min(request.rate_per_second ?? cap, cap);
    const explicit = declaration.sessions === 'explicit';
    const recipients: RecipientSource = request.to
      ? await this.listed(request, explicit)
      : { kind: 'query', ...audienceQuery(request.audience as Audience, explicit, 7) };

    const id = randomUUID();
    const recorded = await db.transaction((tx) =>
      insertBroadcast(
        tx,
        {
          id,
          bot: request.bot,
          channel: declaration.name,
          text: request.text ?? describeTemplate(request.template!),
          template: request.template ?? null,
          subject: request.subject ?? null,
          ratePerSecond: rate,
          audience: request.audience ?? { to: request.to!.length },
          idempotencyKey: request.idempotency_key ?? null,
          requestHash: request.idempotency_key ? hash : null,
        },
        recipients,
      ),
    );
    if (!recorded) {
      const replay = await this.replay(request.idempotency_key!, hash);
      if (replay) return { answer: replay, replayed: true };
      throw new ApiError(409, 'idempotency_conflict', 'the idempotency key is being used');
    }
    try {
      await this.firstTick(id);
    } catch (err) {
      // The request answers 503. With an idempotency key the client's retry schedules the run
      // (`replay`); without one nothing could tell its retry from a new broadcast, so this one is
      // never run: its recipients are settled failed (and the broadcast reads completed).
      if (!request.idempotency_key) {
        const settled = await abandonRecipients(db, id, NOT_STARTED_ERROR).catch(() => undefined);
        this.o.logger.warn({
          event: 'broadcast.not_started',
          broadcastId: id,
          settled,
          err: errorMessage(err),
        });
      }
      throw err;
    }
    this.o.logger.info({
      event: 'broadcast.started',
      broadcastId: id,
      bot: request.bot,
      channel: declaration.name,
      total: recorded.total,
      optedOut: recorded.optedOut,
      ratePerSecond: rate,
    });
    return {
      answer: {
        broadcast_id: id,
        total: recorded.total,
        opted_out: recorded.optedOut,
        rate_per_second: rate,
      },
      replayed: false,
    };
  }

  async find(id: string): Promise<Broadcast | undefined> {
    return findBroadcast(this.o.db, id);
  }

  async progress(id: string): Promise<BroadcastProgress | undefined> {
    const b = await findBroadcast(this.o.db, id);
    if (!b) return undefined;
    const counts = await broadcastCounts(this.o.db, id);
    return {
      broadcast_id: b.id,
      bot: b.bot,
      channel: b.channel,
      status: counts.queued === 0 ? 'completed' : 'running',
      rate_per_second: b.ratePerSecond,
      ...counts,
      created_at: b.createdAt,
      dispatched_at: b.finishedAt,
    };
  }

  async list(bots: string[] | undefined) {
    const found = await listBroadcasts(this.o.db, bots, 50);
    return found.map((b) => ({
      broadcast_id: b.id,
      bot: b.bot,
      channel: b.channel,
      total: b.total,
      rate_per_second: b.ratePerSecond,
      created_at: b.createdAt,
      dispatched_at: b.finishedAt,
    }));
  }

  /**
   * One tick: recipients a dead tick left claimed, then the next ones up to the pace's batch,
   * handed to their lanes; then the next tick, or the end of the run. Once every recipient is
   * handed over, ticks only watch for completion, and only while a webhook wants to hear of it.
   */
  async tick(id: string, previous?: { last: number; carry: number }, report: Report = {}): Promise<void> {
    try {
      await this.runTick(id, previous, report);
    } catch (err) {
      // Any step (a read, the hand-over, the next tick's schedule): the same tick a little later,
      // so that a database or queue away for a while does not halt the run (nor use up the job).
      this.o.logger.warn({ event: 'broadcast.tick_failed', broadcastId: id, err: errorMessage(err) });
      await this.o.scheduler.schedule(
        BROADCAST_TICK_JOB,
        { broadcastId: id, ...report },
        { id: tickJobId(id), delayMs: TICK_RETRY_MS },
      );
    }
  }

  /** One tick's work (see `tick`); throws what failed. */
  private async runTick(id: string, previous: { last: number; carry: number } | undefined, report: Report) {
    const { db, logger, scheduler } = this.o;
    const b = await findBroadcast(db, id);
    if (!b || b.completedAt) return;
    if (b.finishedAt) return this.watch(b, report);
    const started = Date.now();
    const { intervalMs, batch: nominal } = pacing(b.ratePerSecond);
    // What the pace allows since the previous tick; never more than two ticks' worth at once
    // (after a restart the broadcast goes on at its pace, it does not catch up in a burst).
    let budget = nominal;
    let carry = 0;
    if (previous) {
      const allowed = Math.min(
        (b.ratePerSecond * Math.max(0, started - previous.last)) / 1_000 + previous.carry,
        nominal * 2,
      );
      budget = Math.floor(allowed);
      carry = Math.min(1, allowed - budget);
    }
    const next = (delayMs: number, r: Report) =>
      scheduler.schedule(
        BROADCAST_TICK_JOB,
        { broadcastId: id, last: started, carry, ...r },
        { id: tickJobId(id), delayMs },
      );
    const leftovers = await leftoverRecipients(db, id);
    const claimed = await claimRecipients(db, id, budget - leftovers.length);
    await eachLimited([...leftovers, ...claimed], HANDOVER_CONCURRENCY, (m) => this.dispatch(b, m));
    if (await hasWaitingRecipients(db, id)) {
      const reported = await this.reportProgress(b, report);
      await next(Math.max(0, intervalMs - (Date.now() - started)), reported);
      return;
    }
    if (await markBroadcastFinished(db, id))
      logger.info({ event: 'broadcast.dispatched', broadcastId: id, total: b.total });
    await this.watch({ ...b, finishedAt: this.now().toISOString() }, report);
  }

  /**
   * After the dispatch: `broadcast.completed` once no recipient is queued any more (each sent,
   * delivered, failed or opted out), `broadcast.progress` meanwhile; every `progressMs` until
   * then. Not at all when no endpoint of the bot subscribes to either (the run ends at dispatch).
   */
  private async watch(b: Broadcast, report: Report): Promise<void> {
    const { db, logger, scheduler } = this.o;
    const wanted = await subscribedTypes(db, b.bot, RUN_EVENTS);
    if (wanted.size === 0) return;
    const counts = await broadcastCounts(db, b.id);
    if (counts.queued === 0) {
      const completed = await db.transaction(async (tx) => {
        if (!(await markBroadcastCompleted(tx, b.id))) return false;
        await emitKeyed(tx, {
          bot: b.bot,
          key: broadcastKey(b.id),
          type: 'broadcast.completed',
          data: progressData(b, counts, 'completed'),
        });
        return true;
      });
      if (completed) logger.info({ event: 'broadcast.completed', broadcastId: b.id, ...counts });
      return;
    }
    if (b.finishedAt && Date.now() - Date.parse(b.finishedAt) > WATCH_LIMIT_MS) {
      logger.warn({ event: 'broadcast.watch_given_up', broadcastId: b.id, queued: counts.queued });
      return;
    }
    const reported = wanted.has('broadcast.progress') ? await this.reportProgress(b, report, counts) : report;
    await scheduler.schedule(
      BROADCAST_TICK_JOB,
      { broadcastId: b.id, ...reported },
      { id: tickJobId(b.id), delayMs: this.progressMs },
    );
  }

  /**
   * `broadcast.progress`, throttled: at most once per `progressMs` (from the broadcast's start),
   * only when the counts changed since the last one, and only when an endpoint subscribes (a
   * caller giving `known` counts has asked). Returns the throttle's state for the next tick.
   */
  private async reportProgress(b: Broadcast, report: Report, known?: BroadcastCounts): Promise<Report> {
    const since = report.reportedAt ?? Date.parse(b.createdAt);
    if (Date.now() - since < this.progressMs) return report;
    const at = { ...report, reportedAt: Date.now() };
    if (!known && !(await subscribedTypes(this.o.db, b.bot, ['broadcast.progress'])).size) return at;
    const counts = known ?? (await broadcastCounts(this.o.db, b.id));
    const signature = [counts.queued, counts.sent, counts.delivered, counts.failed, counts.opted_out].join(
      ',',
    );
    if (signature === report.reported) return at;
    // The throttle's state lives in the next tick's payload: a tick that dies after this write and
    // before scheduling the next one runs again with the old state, and a second runner may run
    // the same tick. The event's id is the progress point's own (these counts of this broadcast),
    // so such a second write is no second event.
    await emitKeyed(this.o.db, {
      bot: b.bot,
      key: broadcastKey(b.id),
      type: 'broadcast.progress',
      data: progressData(b, counts, 'running'),
      eventId: factEventId(b.id, `broadcast.progress:${signature}`),
    });
    // From when it was written, not when it was due: two events are never closer than progressMs.
    return { reportedAt: Date.now(), reported: signature };
  }

  /** Hands one claimed recipient to their session's lane, or sets them aside with the reason. */
  private async dispatch(b: Broadcast, row: OutboundMessage): Promise<void> {
    const { db, logger, outbound } = this.o;
    const nativeId = identityOfNativeKey(row.nativeKey).from.id;
    if (await isOptedOut(db, { bot: b.bot, channel: b.channel, nativeId })) {
      await settleRecipient(db, row.id, 'opted_out', { error: 'opted_out' });
      return;
    }
    let message = row;
    if (!row.sessionId) {
      const placed = await outbound.place(this.o.adapters.get(b.channel)?.outbound, {
        bot: b.bot,
        channel: b.channel,
        nativeKey: row.nativeKey,
        ...(b.template ? { template: b.template } : { text: b.text }),
        ...(b.subject !== null ? { subject: b.subject } : {}),
        key: row.id,
        now: this.now(),
      });
      if (!placed.ok) {
        await settleRecipient(db, row.id, 'failed', { error: `${placed.code}: ${placed.message}` });
        logger.info({ event: 'broadcast.refused', broadcastId: b.id, messageId: row.id, code: placed.code });
        return;
      }
      message = {
        ...row,
        nativeKey: placed.nativeKey,
        sessionId: placed.open?.id ?? null,
        replyTo: placed.open ? null : (placed.replyTo ?? null),
      };
    }
    const session = await outbound.sessionFor(message);
    if (!session) {
      await settleRecipient(db, row.id, 'failed', { error: SESSION_ENDED_ERROR });
      return;
    }
    await outbound.handOver(session, message);
    await settleRecipient(db, row.id, 'queued', {
      nativeKey: session.nativeKey,
      sessionId: session.id,
      replyTo: message.replyTo,
    });
  }

  /** An explicit recipient list: each a native id of the channel (or an open session's id). */
  private async listed(request: BroadcastRequest, explicit: boolean): Promise<RecipientSource> {
    const declaration = channels.require(request.channel);
    const to = [...new Set(request.to!)];
    if (explicit) {
      const bad = to.filter((t) => !z.uuid().safeParse(t).success);
      const { rows } = bad.length
        ? { rows: [] as Record<string, unknown>[] }
        : await this.o.db.query(
            `SELECT id, native_key FROM sessions WHERE id = ANY($1::uuid[]) AND bot = $2 AND channel = $3 AND ended_at IS NULL`,
            [to, request.bot, declaration.name],
          );
      const found = new Map(rows.map((r) => [r.id as string, r.native_key as string]));
      const missing = to.filter((t) => !found.has(t));
      if (missing.length)
        throw new ApiError(
          404,
          'unknown_session',
          `no open ${declaration.name} session of bot "${request.bot}": ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`,
        );
      return { kind: 'keys', nativeKeys: to.map((t) => found.get(t)!), sessionIds: to };
    }
    const keys = new Set<string>();
    const bad: string[] = [];
    for (const t of to) {
      try {
        keys.add(declaration.nativeId.normalize(t));
      } catch (err) {
        if (!(err instanceof InvalidIdentityError)) throw err;
        bad.push(`"${t}" (${err.message})`);
      }
    }
    if (bad.length)
      throw new ApiError(
        400,
        'invalid_recipient',
        `not ${declaration.name} ids: ${bad.slice(0, 5).join(', ')}${bad.length > 5 ? ` and ${bad.length - 5} more` : ''}`,
      );
    return { kind: 'keys', nativeKeys: [...keys] };
  }

  /** Schedules a broadcast's first tick (again: the same job id replaces the job there is). */
  private async firstTick(id: string): Promise<void> {
    await this.o.scheduler.schedule(BROADCAST_TICK_JOB, { broadcastId: id }, { id: tickJobId(id) });
  }

  /**
   * The first answer to a key used before with this body, once the run is scheduled: the first
   * request may have answered 503 after recording the broadcast (the scheduler was away), and
   * its retry is how the broadcast starts. Only a run that has not begun is scheduled again (a
   * running one keeps its ticks, and its pace).
   */
  private async replay(key: string, hash: string): Promise<BroadcastAnswer | undefined> {
    const first = await findBroadcastByKey(this.o.db, key);
    if (!first) return undefined;
    if (first.requestHash !== hash)
      throw new ApiError(409, 'idempotency_conflict', 'this idempotency_key was used with another request');
    if (!first.finishedAt && !(await runHasBegun(this.o.db, first.id))) await this.firstTick(first.id);
    return {
      broadcast_id: first.id,
      total: first.total,
      opted_out: first.optedOut,
      rate_per_second: first.ratePerSecond,
    };
  }
}

/** A broadcast's ordering key for its session-less webhook events (migration 0040). */
export const broadcastKey = (id: string) => `broadcast:${id}`;

const progressData = (b: Broadcast, counts: BroadcastCounts, status: 'running' | 'completed') => ({
  broadcast_id: b.id,
  channel: b.channel,
  status,
  ...counts,
});

/** Runs `work` on every item, at most `limit` at once; the first failure is thrown after all settle. */
async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await work(item).catch((err: unknown) => {
        failure ??= err;
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure;
}
