import type { Db, Queryable } from '../store/db.ts';
import { STAT_BUCKETS, type StatBucket } from '../store/stats.ts';

/** The same buckets as the admin API's session stats. */
export const GRAINS = STAT_BUCKETS;
export type Grain = StatBucket;

/** One number of one bucket: a count per bot and channel, or a percentile (channel '*', bot '*' for all). */
export interface RollupRow {
  bucket: string;
  metric: string;
  bot: string;
  channel: string;
  key: string;
  value: number;
}

export const ALL = '*';
const HOUR_MS = 3_600_000;
const GRAIN_MS: Record<Grain, number> = { hour: HOUR_MS, day: 24 * HOUR_MS };
/**
 * A bucket is rolled up once it ended this long ago: late writes (a delivery that fails after its
 * retries, a handoff assigned later) still land in live buckets.
 */
export const ROLLUP_GRACE_MS = HOUR_MS;

export const bucketStart = (t: number, grain: Grain) => Math.floor(t / GRAIN_MS[grain]) * GRAIN_MS[grain];
export const bucketEnd = (t: number, grain: Grain) => Math.ceil(t / GRAIN_MS[grain]) * GRAIN_MS[grain];
export const grainMs = (grain: Grain) => GRAIN_MS[grain];

/**
 * A handoff's wait, from its request to an agent's first claim, in the bucket it was answered in:
 * one answered hours after it was asked (at night) would otherwise fall in a bucket already rolled
 * up, and the longest waits would never reach the percentiles. The first claim, not `assigned_at`
 * (the current holder's, which a transfer moves): a transfer is no second wait, and would count
 * the handoff again in a later bucket when the first claim's was already rolled up.
 */
const HANDOFF_WAITS = `SELECT date_trunc($3, first_assigned_at, 'UTC') AS b, bot,
    extract(epoch FROM first_assigned_at - requested_at) * 1000 AS ms
  FROM handoffs WHERE first_assigned_at >= $1 AND first_assigned_at < $2`;

/** Percentiles of `expr` per bucket, per bot and for all bots, as three rows: p50, p95, n. */
const percentiles = (metric: string, source: string) => `
  SELECT b, '${metric}' AS metric, COALESCE(bot, '${ALL}') AS bot, '${ALL}' AS channel,
    unnest(ARRAY['p50', 'p95', 'n']) AS key,
    unnest(ARRAY[percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
                 count(*)::float8]) AS value
  FROM (${source}) p GROUP BY GROUPING SETS ((b, bot), (b))`;

/**
 * Every metric of the buckets in [$1, $2) cut by $3 ('hour' or 'day', in UTC), in one statement.
 * A failed delivery counts in the bucket it failed in (the reply's `updated_at` once `failed`),
 * not the one it was written in: a reply retried for DELIVERY_GIVE_UP_AFTER_SECONDS (4 hours)
 * fails long after its own bucket was rolled up, and would never be counted. Response time is from the envelope's arrival at the adapter (the inbound row's payload
 * `receivedAt`) to the commit of its turn (the rows' `created_at`, the replies' too): every
 * message the bot handled, answered or not.
 */
const ROLLUP_SQL = `
WITH msg AS MATERIALIZED (
  SELECT date_trunc($3, m.created_at, 'UTC') AS b, s.bot, s.channel, m.role, m.session_id, m.created_at,
    CASE WHEN m.role = 'tool' THEN m.payload->>'tool' END AS tool,
    CASE WHEN m.role = 'user' THEN m.payload->>'receivedAt' END AS received_at
  FROM messages m JOIN sessions s ON s.id = m.session_id
  WHERE m.created_at >= $1 AND m.created_at < $2
), ev AS MATERIALIZED (
  SELECT date_trunc($3, created_at, 'UTC') AS b, bot, channel, type, data FROM session_events
  WHERE created_at >= $1 AND created_at < $2 AND type IN ('error', 'dialog.error', 'rating', 'kb.used')
)
SELECT b, 'messages' AS metric, bot, channel, CASE WHEN role = 'user' THEN 'in' ELSE 'out' END AS key, count(*)::float8 AS value
  FROM msg WHERE role IN ('user', 'assistant', 'agent') GROUP BY 1, 3, 4, 5
UNION ALL
SELECT b, 'sessions.active', bot, channel, '', count(DISTINCT session_id)::float8 FROM msg WHERE role = 'user' GROUP BY 1, 3, 4
UNION ALL
SELECT b, 'tools', bot, channel, tool, count(*)::float8 FROM msg WHERE tool IS NOT NULL GROUP BY 1, 3, 4, 5
UNION ALL
SELECT date_trunc($3, m.updated_at, 'UTC'), 'errors', s.bot, s.channel, 'failed_delivery', count(*)::float8
  FROM messages m JOIN sessions s ON s.id = m.session_id
  WHERE m.delivery_status = 'failed' AND m.updated_at >= $1 AND m.updated_at < $2 GROUP BY 1, 3, 4
UNION ALL
${percentiles(
  'response_ms',
  `SELECT u.b, u.bot, greatest(0, extract(epoch FROM u.created_at - u.received_at::timestamptz) * 1000) AS ms
   FROM msg u WHERE u.role = 'user' AND u.received_at IS NOT NULL`,
)}
UNION ALL
SELECT date_trunc($3, created_at, 'UTC'), 'sessions.new', bot, channel, '', count(*)::float8 FROM sessions
  WHERE created_at >= $1 AND created_at < $2 AND parent_id IS NULL GROUP BY 1, 3, 4
UNION ALL
SELECT date_trunc($3, s.ended_at, 'UTC'), 'resolution', s.bot, s.channel,
    CASE WHEN EXISTS (SELECT 1 FROM handoffs h WHERE h.session_id = s.id) THEN 'handed' ELSE 'bot' END, count(*)::float8
  FROM sessions s WHERE s.ended_at >= $1 AND s.ended_at < $2 AND s.parent_id IS NULL AND s.message_count > 0
  GROUP BY 1, 3, 4, 5
UNION ALL
SELECT date_trunc($3, requested_at, 'UTC'), 'handoffs', bot, channel, '', count(*)::float8 FROM handoffs
  WHERE requested_at >= $1 AND requested_at < $2 GROUP BY 1, 3, 4
UNION ALL
${percentiles('handoff_wait_ms', HANDOFF_WAITS)}
UNION ALL
SELECT b, 'errors', bot, channel, type, count(*)::float8 FROM ev WHERE type IN ('error', 'dialog.error') GROUP BY 1, 3, 4, 5
UNION ALL
SELECT b, 'rating', bot, channel, COALESCE(data->>'score', data->>'value'), count(*)::float8 FROM ev
  WHERE type = 'rating' AND COALESCE(data->>'score', data->>'value') IN ('1', '2', '3', '4', '5') GROUP BY 1, 3, 4, 5
UNION ALL
SELECT b, 'knowledge', bot, channel, kb, count(*)::float8 FROM ev, jsonb_array_elements_text(
    CASE WHEN jsonb_typeof(data->'kbs') = 'array' THEN data->'kbs' ELSE '[]'::jsonb END) AS kb
  WHERE type = 'kb.used' GROUP BY 1, 3, 4, 5`;

/**
 * The metrics of a day that cannot be summed from its hours (distinct sessions, percentiles): an
 * open day computes these live and takes its counts from the hourly rollup.
 */
const NON_ADDITIVE_SQL = `
WITH msg AS MATERIALIZED (
  SELECT date_trunc($3, m.created_at, 'UTC') AS b, s.bot, s.channel, m.session_id, m.created_at,
    m.payload->>'receivedAt' AS received_at
  FROM messages m JOIN sessions s ON s.id = m.session_id
  WHERE m.created_at >= $1 AND m.created_at < $2 AND m.role = 'user'
)
SELECT b, 'sessions.active' AS metric, bot, channel, '' AS key, count(DISTINCT session_id)::float8 AS value
  FROM msg GROUP BY 1, 3, 4
UNION ALL
${percentiles(
  'response_ms',
  `SELECT u.b, u.bot, greatest(0, extract(epoch FROM u.created_at - u.received_at::timestamptz) * 1000) AS ms
   FROM msg u WHERE u.received_at IS NOT NULL`,
)}
UNION ALL
${percentiles('handoff_wait_ms', HANDOFF_WAITS)}`;
const NON_ADDITIVE = new Set(['sessions.active', 'response_ms', 'handoff_wait_ms']);

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());

interface RawRow {
  b: Date | string;
  metric: string;
  bot: string;
  channel: string;
  key: string | null;
  value: number | string | null;
}

function toRows(raw: RawRow[]): RollupRow[] {
  return raw
    .filter((r) => r.value !== null && r.b !== null)
    .map((r) => ({
      bucket: iso(r.b),
      metric: r.metric,
      bot: r.bot,
      channel: r.channel,
      key: r.key ?? '',
      value: Number(r.value),
    }));
}

/** Computes every metric of [from, to) from the tables, without storing anything. */
export async function computeRows(q: Queryable, from: Date, to: Date, grain: Grain): Promise<RollupRow[]> {
  const { rows } = await q.query<RawRow>(ROLLUP_SQL, [from, to, grain]);
  return toRows(rows);
}

/**
 * Every metric of the buckets in [from, to) (bucket-aligned): rolled-up buckets are read from
 * analytics_rollup; closed buckets not yet rolled up are computed, stored and marked; buckets still
 * open (or within the grace period) are computed live.
 */
export async function metricRows(
  db: Db,
  from: number,
  to: number,
  grain: Grain,
  now = Date.now(),
): Promise<RollupRow[]> {
  const step = GRAIN_MS[grain];
  const { rows: marked } = await db.query<{ bucket: Date | string }>(
    'SELECT bucket FROM analytics_rolled WHERE grain = $1 AND bucket >= $2 AND bucket < $3',
    [grain, new Date(from), new Date(to)],
  );
  const rolled = new Set(marked.map((r) => Date.parse(iso(r.bucket))));
  const closedBefore = now - ROLLUP_GRACE_MS;
  const missingClosed: number[] = [];
  const open: number[] = [];
  for (let t = from; t < to; t += step) {
    if (rolled.has(t)) continue;
    if (t + step <= closedBefore) missingClosed.push(t);
    else open.push(t);
  }
  if (missingClosed.length > 0) await rollUp(db, missingClosed, grain);
  const { rows: stored } = await db.query<RawRow>(
    `SELECT bucket AS b, metric, bot, channel, key, value FROM analytics_rollup
     WHERE grain = $1 AND bucket >= $2 AND bucket < $3`,
    [grain, new Date(from), new Date(to)],
  );
  let live: RollupRow[] = [];
  if (open.length > 0 && grain === 'day') {
    for (const day of open) live.push(...(await openDayRows(db, day, now)));
  } else if (open.length > 0) live = await liveRows(db, open[0]!, open.at(-1)! + step, grain, now);
  const openSet = new Set(open);
  return [...toRows(stored), ...live.filter((r) => openSet.has(Date.parse(r.bucket)))];
}

/**
 * Open buckets computed live are shared for this long: the dashboard asks for its nine charts at
 * once (and again on every live refresh, from every viewer), and one computation answers them all.
 */
export const LIVE_SHARE_MS = 2_000;
const liveCache = new Map<string, { at: number; rows: Promise<RollupRow[]> }>();

/** Forgets the shared live rows (the bench times the computation itself). */
export function clearLiveRows(): void {
  liveCache.clear();
}

function liveRows(db: Db, from: number, to: number, grain: Grain, now: number): Promise<RollupRow[]> {
  for (const [k, v] of liveCache) if (now - v.at > LIVE_SHARE_MS) liveCache.delete(k);
  const key = `${grain}:${from}:${to}`;
  const hit = liveCache.get(key);
  if (hit) return hit.rows;
  const rows = computeRows(db, new Date(from), new Date(to), grain);
  rows.catch(() => liveCache.delete(key));
  liveCache.set(key, { at: now, rows });
  return rows;
}

/**
 * A day still open: its counts summed from its hours (closed ones rolled up, the last ones live),
 * and what cannot be summed computed live over the day.
 */
async function openDayRows(db: Db, day: number, now: number): Promise<RollupRow[]> {
  const dayIso = new Date(day).toISOString();
  const hoursTo = Math.min(day + GRAIN_MS.day, bucketEnd(now, 'hour'));
  const sums = new Map<string, RollupRow>();
  for (const r of await metricRows(db, day, hoursTo, 'hour', now)) {
    if (NON_ADDITIVE.has(r.metric)) continue;
    const k = JSON.stringify([r.metric, r.bot, r.channel, r.key]);
    const found = sums.get(k);
    if (found) found.value += r.value;
    else sums.set(k, { ...r, bucket: dayIso });
  }
  const key = `day-rest:${day}`;
  for (const [k, v] of liveCache) if (now - v.at > LIVE_SHARE_MS) liveCache.delete(k);
  let hit = liveCache.get(key);
  if (!hit) {
    const rows = db
      .query<RawRow>(NON_ADDITIVE_SQL, [new Date(day), new Date(day + GRAIN_MS.day), 'day'])
      .then((r) => toRows(r.rows));
    rows.catch(() => liveCache.delete(key));
    hit = { at: now, rows };
    liveCache.set(key, hit);
  }
  return [...sums.values(), ...(await hit.rows)];
}

/** Computes and stores these closed buckets (one statement over their span), marking each as rolled up. */
async function rollUp(db: Db, buckets: number[], grain: Grain): Promise<void> {
  const step = GRAIN_MS[grain];
  const wanted = new Set(buckets);
  const rows = (await computeRows(db, new Date(buckets[0]!), new Date(buckets.at(-1)! + step), grain)).filter(
    (r) => wanted.has(Date.parse(r.bucket)),
  );
  await db.transaction(async (tx) => {
    // Two dashboards rolling the same bucket at once: the first one's rows and mark win.
    await tx.query(
      `INSERT INTO analytics_rolled (grain, bucket) SELECT $1, b FROM unnest($2::timestamptz[]) AS b
       ON CONFLICT DO NOTHING`,
      [grain, buckets.map((b) => new Date(b))],
    );
    if (rows.length === 0) return;
    await tx.query(
      `INSERT INTO analytics_rollup (grain, bucket, metric, bot, channel, key, value)
       SELECT $1, r.bucket, r.metric, r.bot, r.channel, r.key, r.value
       FROM jsonb_to_recordset($2::jsonb) AS r(bucket timestamptz, metric text, bot text, channel text, key text, value float8)
       ON CONFLICT DO NOTHING`,
      [grain, JSON.stringify(rows)],
    );
  });
}
