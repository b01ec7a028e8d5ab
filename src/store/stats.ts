import type { Queryable } from './db.ts';

export const STAT_BUCKETS = ['hour', 'day'] as const;
export type StatBucket = (typeof STAT_BUCKETS)[number];

export interface StatsRange {
  from: Date;
  to: Date;
  bucket: StatBucket;
}

/** One bot and channel in one time bucket (UTC). */
export interface BucketStats {
  bucket: string;
  bot: string;
  channel: string;
  sessions_started: number;
  sessions_ended: number;
  ended_by_reason: Record<string, number>;
  /** Messages people sent (role user). */
  messages_in: number;
  /** Replies (role assistant). */
  messages_out: number;
}

export interface Percentiles {
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

/** Sessions of one bot and channel that ended in the range: how long they lasted, how much was said. */
export interface EndedSessionStats {
  bot: string;
  channel: string;
  sessions: number;
  duration_seconds: Percentiles;
  message_count: Percentiles;
}

export interface BotErrorRate {
  bot: string;
  errors: number;
  turns: number;
  /** errors / turns; null without turns. */
  error_rate: number | null;
}

export interface Stats {
  from: string;
  to: string;
  bucket: StatBucket;
  buckets: BucketStats[];
  ended_sessions: EndedSessionStats[];
  errors: BotErrorRate[];
  events: { type: string; count: number }[];
}

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());
// Buckets are cut in UTC whatever the server's time zone, so every process reports the same ones.
const bucketOf = (column: string) => `date_trunc($3, ${column}, 'UTC')`;
const PERCENTILES = `ARRAY[0.5, 0.9, 0.99]::float8[]`;

function percentiles(values: unknown): Percentiles {
  const [p50, p90, p99] = Array.isArray(values) ? values.map((v) => (v === null ? null : Number(v))) : [];
  return { p50: p50 ?? null, p90: p90 ?? null, p99: p99 ?? null };
}

async function bucketRows(q: Queryable, range: StatsRange): Promise<BucketStats[]> {
  const params = [range.from, range.to, range.bucket];
  const [started, ended, messages] = await Promise.all([
    q.query<{ bucket: Date; bot: string; channel: string; n: number }>(
      `SELECT ${bucketOf('created_at')} AS bucket, bot, channel, count(*)::int AS n FROM sessions
       WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2, 3`,
      params,
    ),
    q.query<{ bucket: Date; bot: string; channel: string; reason: string | null; n: number }>(
      `SELECT ${bucketOf('ended_at')} AS bucket, bot, channel, end_reason AS reason, count(*)::int AS n FROM sessions
       WHERE ended_at >= $1 AND ended_at < $2 GROUP BY 1, 2, 3, 4`,
      params,
    ),
    q.query<{ bucket: Date; bot: string; channel: string; n_in: number; n_out: number }>(
      `SELECT ${bucketOf('m.created_at')} AS bucket, s.bot, s.channel,
         count(*) FILTER (WHERE m.role = 'user')::int AS n_in,
         count(*) FILTER (WHERE m.role = 'assistant')::int AS n_out
       FROM messages m JOIN sessions s ON s.id = m.session_id
       WHERE m.created_at >= $1 AND m.created_at < $2 AND m.role IN ('user', 'assistant')
       GROUP BY 1, 2, 3`,
      params,
    ),
  ]);
  const byKey = new Map<string, BucketStats>();
  const entry = (bucket: Date, bot: string, channel: string): BucketStats => {
    const key = JSON.stringify([iso(bucket), bot, channel]);
    let found = byKey.get(key);
    if (!found) {
      found = {
        bucket: iso(bucket),
        bot,
        channel,
        sessions_started: 0,
        sessions_ended: 0,
        ended_by_reason: {},
        messages_in: 0,
        messages_out: 0,
      };
      byKey.set(key, found);
    }
    return found;
  };
  for (const r of started.rows) entry(r.bucket, r.bot, r.channel).sessions_started += r.n;
  for (const r of ended.rows) {
    const e = entry(r.bucket, r.bot, r.channel);
    e.sessions_ended += r.n;
    const reason = r.reason ?? 'unknown';
    e.ended_by_reason[reason] = (e.ended_by_reason[reason] ?? 0) + r.n;
  }
  for (const r of messages.rows) {
    const e = entry(r.bucket, r.bot, r.channel);
    e.messages_in += r.n_in;
    e.messages_out += r.n_out;
  }
  return [...byKey.values()].sort(
    (a, b) =>
      a.bucket.localeCompare(b.bucket) || a.bot.localeCompare(b.bot) || a.channel.localeCompare(b.channel),
  );
}

async function endedSessionRows(q: Queryable, range: StatsRange): Promise<EndedSessionStats[]> {
  const { rows } = await q.query<{
    bot: string;
    channel: string;
    n: number;
    duration: unknown;
    message_count: unknown;
  }>(
    `SELECT bot, channel, count(*)::int AS n,
       percentile_cont(${PERCENTILES}) WITHIN GROUP (ORDER BY extract(epoch FROM ended_at - created_at)) AS duration,
       percentile_cont(${PERCENTILES}) WITHIN GROUP (ORDER BY message_count) AS message_count
     FROM sessions WHERE ended_at >= $1 AND ended_at < $2
     GROUP BY bot, channel ORDER BY bot, channel`,
    [range.from, range.to],
  );
  return rows.map((r) => ({
    bot: r.bot,
    channel: r.channel,
    sessions: r.n,
    duration_seconds: percentiles(r.duration),
    message_count: percentiles(r.message_count),
  }));
}

/** Bot errors (the engine logs a throwing bot as a session event of type `error`) per turn. */
async function errorRows(q: Queryable, range: StatsRange): Promise<BotErrorRate[]> {
  const { rows } = await q.query<{ bot: string; errors: number; turns: number }>(
    `WITH e AS (
       SELECT bot, count(*)::int AS n FROM session_events
       WHERE type = 'error' AND created_at >= $1 AND created_at < $2 GROUP BY bot
     ), t AS (
       SELECT s.bot, count(*)::int AS n FROM messages m JOIN sessions s ON s.id = m.session_id
       WHERE m.role = 'user' AND m.created_at >= $1 AND m.created_at < $2 GROUP BY s.bot
     )
     SELECT COALESCE(e.bot, t.bot) AS bot, COALESCE(e.n, 0) AS errors, COALESCE(t.n, 0) AS turns
     FROM e FULL JOIN t ON t.bot = e.bot ORDER BY 1`,
    [range.from, range.to],
  );
  return rows.map((r) => ({
    bot: r.bot,
    errors: r.errors,
    turns: r.turns,
    error_rate: r.turns > 0 ? r.errors / r.turns : null,
  }));
}

async function eventRows(q: Queryable, range: StatsRange): Promise<{ type: string; count: number }[]> {
  const { rows } = await q.query<{ type: string; count: number }>(
    `SELECT type, count(*)::int AS count FROM session_events
     WHERE created_at >= $1 AND created_at < $2 GROUP BY type ORDER BY type`,
    [range.from, range.to],
  );
  return rows;
}

/** Usage over [from, to): per bucket, per bot and channel; distributions; error rates; events. */
export async function sessionStats(q: Queryable, range: StatsRange): Promise<Stats> {
  const [buckets, ended, errors, events] = await Promise.all([
    bucketRows(q, range),
    endedSessionRows(q, range),
    errorRows(q, range),
    eventRows(q, range),
  ]);
  return {
    from: range.from.toISOString(),
    to: range.to.toISOString(),
    bucket: range.bucket,
    buckets,
    ended_sessions: ended,
    errors,
    events,
  };
}
