import { type Context, Hono } from 'hono';
import { z } from 'zod';
import { dialogPosition } from '../analytics/dialog-position.ts';
import { analytics, METRICS, type MetricAnswer } from '../analytics/metrics.ts';
import { bucketEnd, bucketStart, GRAINS, grainMs } from '../analytics/rollup.ts';
import { personOfSession, searchMessages, sessionsOfPerson } from '../analytics/transcripts.ts';
import { BotNameSchema, ChannelSchema } from '../envelope.ts';
import type { QueueStatus } from '../queue/lane-status.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import { type AuditAction, listAudit, recordAudit } from '../store/audit.ts';
import type { Db } from '../store/db.ts';
import { recentEvents } from '../store/events.ts';
import { listMessages, MAX_PAGE_SIZE } from '../store/messages.ts';
import type { MessageRecord } from '../store/records.ts';
import { loadSnapshot } from '../store/sessions.ts';
import { listIdentities } from '../store/users.ts';
import type { AdminGuardOptions } from './admin-auth.ts';
import type { ProxySettings } from './client-address.ts';
import {
  auditActor,
  checkViewerBot,
  type DashboardEnv,
  requireSupervisor,
  viewerBots,
  viewerServes,
} from './dashboard-auth.ts';
import { ApiError, parseInput as parse } from './errors.ts';

export interface DashboardApiDeps {
  db: Db;
  /** ADMIN_TOKEN and its guess throttle. */
  admin: AdminGuardOptions;
  /** TRUST_PROXY and PUBLIC_URL: the audit log's client address, the console's own origin. */
  proxy: ProxySettings;
  /** Where config/bots lives, to tell the line a dialog waits at. */
  configDir: string;
  /** The configured bots, for the dashboard's filter. */
  botNames: () => string[];
  /** What the queues hold now (`GET /api/admin/queue`): counts only, no content. */
  queueStatus: () => Promise<QueueStatus[]>;
  /** The durable scheduler's jobs set aside (`GET /api/admin/queue`, `switchboard scheduler failed`). */
  schedulerStatus: () => Promise<SchedulerStatus>;
}

/** What `GET /api/admin/queue` tells of the durable scheduler: a count, no job. */
export interface SchedulerStatus {
  driver: Scheduler['driver'];
  /** One-off jobs set aside after failing their last attempt. */
  failed: number;
}

const DAY_MS = 86_400_000;
/** Buckets one answer may hold: a month by hour, a year by day. */
const MAX_BUCKETS = { hour: 24 * 31, day: 366 } as const;
const DEFAULT_SPAN = { hour: DAY_MS, day: 30 * DAY_MS } as const;
/** A transcript shown or exported at most this long (messages). */
const MAX_TRANSCRIPT = 5_000;
const RECENT_EVENTS = 50;
const DEBUG_SNAPSHOTS = 20;

const Time = z.iso.datetime({ offset: true });
export const AnalyticsQuery = z.object({
  bot: BotNameSchema.optional(),
  from: Time.optional(),
  to: Time.optional(),
  bucket: z.enum(GRAINS).default('hour'),
  format: z.enum(['json', 'csv']).default('json'),
});
export const AuditQuery = z.object({
  /** An agent id, or "operator" for the ADMIN_TOKEN's rows. */
  actor: z.union([z.uuid(), z.literal('operator')]).optional(),
  session_id: z.uuid().optional(),
  from: Time.optional(),
  to: Time.optional(),
  before: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(100),
});
export const SearchQuery = z.object({
  q: z.string().trim().min(1).max(200),
  bot: BotNameSchema.optional(),
  channel: ChannelSchema.optional(),
  from: Time.optional(),
  to: Time.optional(),
  agent_id: z.uuid().optional(),
  user_id: z.uuid().optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(50),
});
const SessionParams = z.object({ id: z.uuid() });
export const ExportQuery = z.object({ format: z.enum(['text', 'json']).default('json') });

const csvCell = (v: string | number | null) => {
  if (v === null) return '';
  const text = String(v);
  // Quoted when needed; a leading =, +, - or @ (or a tab or carriage return before one, which
  // some spreadsheets skip) would be a formula to a spreadsheet.
  const safe = /^[=+\-@\t\r]/.test(text) && typeof v === 'string' ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
};

/** One row per bucket: `t` and each series' value. */
export function toCsv(answer: MetricAnswer): string {
  const header = ['t', ...answer.series.map((s) => s.name)];
  const rows = (answer.series[0]?.points ?? []).map((p, i) => [
    p.t,
    ...answer.series.map((s) => s.points[i]!.v),
  ]);
  if (answer.series.length === 0) {
    for (let t = Date.parse(answer.from); t < Date.parse(answer.to); t += grainMs(answer.bucket))
      rows.push([new Date(t).toISOString()]);
  }
  return `${[header, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n')}\r\n`;
}

const notFound = (id: string) => new ApiError(404, 'not_found', `there is no session ${id}`);
/** The agent API's answer for a conversation of a bot the agent does not serve. */
const notYourBot = () =>
  new ApiError(403, 'forbidden', 'that conversation belongs to a bot you do not serve');

function toEntry(m: MessageRecord) {
  return {
    seq: m.seq,
    role: m.role,
    text: m.content,
    agent_id: typeof m.payload.agentId === 'string' ? m.payload.agentId : null,
    delivery_status: m.deliveryStatus,
    created_at: m.createdAt,
  };
}

async function wholeTranscript(db: Db, sessionId: string): Promise<MessageRecord[]> {
  const all: MessageRecord[] = [];
  for (;;) {
    const page = await listMessages(db, sessionId, { afterSeq: all.at(-1)?.seq ?? 0, limit: MAX_PAGE_SIZE });
    all.push(...page);
    if (page.length < MAX_PAGE_SIZE || all.length >= MAX_TRANSCRIPT) return all.slice(0, MAX_TRANSCRIPT);
  }
}

/**
 * The operator dashboard's JSON, for supervisors, admins and ADMIN_TOKEN (mounted at /api/admin):
 * analytics, the queues' status, the audit log, transcript search and export, session inspection. Every read of a
 * transcript is written to the audit log before it is answered. A supervisor or admin agent sees
 * the sessions and numbers of its own bots only (`viewerBots`); ADMIN_TOKEN sees every bot.
 */
export function dashboardRoutes(deps: DashboardApiDeps): Hono<DashboardEnv> {
  const { db } = deps;
  const app = new Hono<DashboardEnv>();
  const guard = requireSupervisor(db, deps.admin, deps.proxy);
  for (const p of ['/analytics', '/analytics/*', '/audit', '/transcripts/*', '/people/*', '/queue'])
    app.use(p, guard);

  app.get('/analytics', (c) => {
    const viewer = c.get('viewer');
    const bots = deps.botNames().filter((bot) => viewerServes(viewer, bot));
    return c.json({ metrics: METRICS, bots, buckets: GRAINS });
  });
  app.get('/queue', async (c) => {
    const [queues, scheduler] = await Promise.all([deps.queueStatus(), deps.schedulerStatus()]);
    return c.json({ queues, scheduler });
  });

  const audit = (
    c: Parameters<typeof auditActor>[0],
    action: AuditAction,
    sessionId: string | null,
    detail?: Record<string, unknown>,
  ) =>
    recordAudit(db, {
      ...auditActor(c, c.get('viewer'), deps.proxy.trustProxy),
      action,
      sessionId,
      ...(detail ? { detail } : {}),
    });

  /**
   * The session `id` (404 when there is none, 403 when the viewer does not serve its bot), its
   * reading recorded in the audit log.
   */
  const auditedSnapshot = async (
    c: Context<DashboardEnv>,
    action: AuditAction,
    id: string,
    detail?: Record<string, unknown>,
  ) => {
    const snapshot = await loadSnapshot(db, id);
    if (!snapshot) throw notFound(id);
    if (!viewerServes(c.get('viewer'), snapshot.session.bot)) throw notYourBot();
    await audit(c, action, id, detail);
    return snapshot;
  };

  app.get('/analytics/:metric', async (c) => {
    const metric = parse(z.enum(METRICS), c.req.param('metric'));
    const q = parse(AnalyticsQuery, c.req.query());
    const viewer = c.get('viewer');
    checkViewerBot(viewer, q.bot);
    const to = bucketEnd(q.to ? Date.parse(q.to) : Date.now(), q.bucket);
    const from = bucketStart(q.from ? Date.parse(q.from) : to - DEFAULT_SPAN[q.bucket], q.bucket);
    if (from >= to) throw new ApiError(400, 'invalid_request', 'from must be before to');
    if ((to - from) / grainMs(q.bucket) > MAX_BUCKETS[q.bucket])
      throw new ApiError(400, 'invalid_request', `at most ${MAX_BUCKETS[q.bucket]} buckets of a ${q.bucket}`);
    const answer = await analytics(db, {
      metric,
      bot: q.bot,
      within: viewerBots(viewer),
      from,
      to,
      bucket: q.bucket,
    });
    if (q.format === 'json') return c.json(answer);
    c.header('Content-Disposition', `attachment; filename="${metric}-${q.bucket}.csv"`);
    return c.text(toCsv(answer), 200, { 'Content-Type': 'text/csv; charset=utf-8' });
  });

  app.get('/audit', async (c) => {
    const q = parse(AuditQuery, c.req.query());
    const viewer = c.get('viewer');
    const bots = viewerBots(viewer);
    const rows = await listAudit(db, {
      ...(bots && viewer.kind === 'agent' ? { within: { bots, self: viewer.agent.id } } : {}),
      ...(q.actor === 'operator' ? { actor: 'operator' as const } : q.actor ? { agentId: q.actor } : {}),
      sessionId: q.session_id,
      from: q.from ? new Date(q.from) : undefined,
      to: q.to ? new Date(q.to) : undefined,
      before: q.before,
      limit: q.limit,
    });
    return c.json({
      entries: rows.map((r) => ({
        id: r.id,
        at: r.at,
        actor: r.actor,
        agent_id: r.agentId,
        agent_name: r.agentName,
        action: r.action,
        session_id: r.sessionId,
        via: r.via,
        ip: r.ip,
        user_agent: r.userAgent,
        detail: r.detail,
        erased: r.erased,
      })),
      next_before: rows.length === q.limit ? rows.at(-1)!.id : null,
    });
  });

  app.get('/transcripts/search', async (c) => {
    const q = parse(SearchQuery, c.req.query());
    checkViewerBot(c.get('viewer'), q.bot);
    const hits = await searchMessages(db, {
      text: q.q,
      bot: q.bot,
      channel: q.channel,
      from: q.from ? new Date(q.from) : undefined,
      to: q.to ? new Date(q.to) : undefined,
      agentId: q.agent_id,
      userId: q.user_id,
      bots: viewerBots(c.get('viewer')),
      limit: q.limit,
    });
    // The filters and how many matched; never the words searched for.
    await audit(c, 'transcript.search', null, {
      filters: Object.fromEntries(
        Object.entries({ bot: q.bot, channel: q.channel, agent_id: q.agent_id, user_id: q.user_id }).filter(
          ([, v]) => v,
        ),
      ),
      results: hits.length,
    });
    return c.json({
      results: hits.map((h) => ({
        session_id: h.sessionId,
        seq: h.seq,
        role: h.role,
        bot: h.bot,
        channel: h.channel,
        user_id: h.userId,
        created_at: h.createdAt,
        snippet: h.snippet,
      })),
    });
  });

  app.get('/transcripts/:id', async (c) => {
    const { id } = parse(SessionParams, c.req.param());
    const snapshot = await auditedSnapshot(c, 'transcript.read', id);
    const { session } = snapshot;
    const userId = await personOfSession(db, id);
    const [messages, identities, sessions] = await Promise.all([
      wholeTranscript(db, id),
      userId ? listIdentities(db, userId) : Promise.resolve([]),
      userId ? sessionsOfPerson(db, userId, viewerBots(c.get('viewer'))) : Promise.resolve([]),
    ]);
    return c.json({
      session_id: id,
      bot: session.bot,
      channel: session.channel,
      native_key: session.nativeKey,
      user_id: userId,
      created_at: session.createdAt,
      ended_at: session.endedAt,
      messages: messages.map(toEntry),
      identities: identities.map((i) => ({ channel: i.channel, native_id: i.nativeId, name: i.displayName })),
      person_sessions: sessions.map((s) => ({
        session_id: s.sessionId,
        bot: s.bot,
        channel: s.channel,
        created_at: s.createdAt,
        ended_at: s.endedAt,
        message_count: s.messageCount,
      })),
    });
  });

  app.get('/transcripts/:id/export', async (c) => {
    const { id } = parse(SessionParams, c.req.param());
    const { format } = parse(ExportQuery, c.req.query());
    const snapshot = await auditedSnapshot(c, 'transcript.export', id, { format });
    const { session } = snapshot;
    const messages = (await wholeTranscript(db, id)).filter((m) => m.role !== 'tool');
    c.header(
      'Content-Disposition',
      `attachment; filename="transcript-${id}.${format === 'json' ? 'json' : 'txt'}"`,
    );
    if (format === 'json')
      return c.json({
        session_id: id,
        bot: session.bot,
        channel: session.channel,
        created_at: session.createdAt,
        ended_at: session.endedAt,
        messages: messages.map(toEntry),
      });
    const lines = [
      `Conversation ${id}`,
      `Bot: ${session.bot}  Channel: ${session.channel}  Started: ${session.createdAt}${session.endedAt ? `  Ended: ${session.endedAt}` : ''}`,
      '',
      ...messages.map((m) => `[${m.createdAt}] ${m.role}: ${m.content}`),
      '',
    ];
    return c.text(lines.join('\n'), 200, { 'Content-Type': 'text/plain; charset=utf-8' });
  });

  app.get('/transcripts/:id/inspect', async (c) => {
    const { id } = parse(SessionParams, c.req.param());
    const snapshot = await auditedSnapshot(c, 'session.inspect', id);
    const { session, state } = snapshot;
    const [position, events, debug] = await Promise.all([
      dialogPosition(deps.configDir, session.bot, state.dialog),
      recentEvents(db, id, RECENT_EVENTS),
      db.query<{ id: string; data: Record<string, unknown>; created_at: Date | string }>(
        `SELECT id, data, created_at FROM session_events WHERE session_id = $1 AND type = 'session.debug'
         ORDER BY id DESC LIMIT $2`,
        [id, DEBUG_SNAPSHOTS],
      ),
    ]);
    return c.json({
      session_id: id,
      bot: session.bot,
      channel: session.channel,
      ended_at: session.endedAt,
      variables: state.variables,
      context: state.context,
      kbs: state.kbs,
      tools: state.tools,
      suggestions: state.suggestions,
      handoff: state.handoff ?? null,
      dialog: position,
      debug: debug.rows.map((r) => ({
        id: Number(r.id),
        topic: r.data.topic ?? null,
        snapshot: r.data.snapshot ?? null,
        created_at: new Date(r.created_at).toISOString(),
      })),
      events: events.map((e) => ({ type: e.type, data: e.data, created_at: e.createdAt })),
    });
  });

  app.get('/people/:id/sessions', async (c) => {
    const { id } = parse(SessionParams, c.req.param());
    const bots = viewerBots(c.get('viewer'));
    const sessions = await sessionsOfPerson(db, id, bots);
    // A person with no session of the viewer's bots is, to the viewer, a person it does not know.
    const identities = bots === undefined || sessions.length > 0 ? await listIdentities(db, id) : [];
    return c.json({
      user_id: id,
      identities: identities.map((i) => ({ channel: i.channel, native_id: i.nativeId, name: i.displayName })),
      sessions: sessions.map((s) => ({
        session_id: s.sessionId,
        bot: s.bot,
        channel: s.channel,
        created_at: s.createdAt,
        ended_at: s.endedAt,
        message_count: s.messageCount,
      })),
    });
  });

  return app;
}
