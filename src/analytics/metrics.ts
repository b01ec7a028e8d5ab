import type { Db } from '../store/db.ts';
import { ALL, type Grain, grainMs, metricRows, type RollupRow } from './rollup.ts';

/** The metrics `GET /api/admin/analytics/{metric}` answers, each with the same shape. */
export const METRICS = [
  'messages',
  'sessions',
  'response-time',
  'handoffs',
  'resolution',
  'satisfaction',
  'tools',
  'knowledge',
  'errors',
] as const;
export type MetricName = (typeof METRICS)[number];

export type Unit = 'count' | 'ms' | 'percent' | 'stars';

export interface Point {
  /** The bucket's start, ISO 8601 UTC. */
  t: string;
  /** null where the bucket has nothing to measure (a percentile of no values). */
  v: number | null;
}

export interface Series {
  name: string;
  unit: Unit;
  points: Point[];
  /** The sum over the range for counts; the whole range's value for shares and averages; null for percentiles. */
  total: number | null;
}

export interface MetricAnswer {
  metric: MetricName;
  bucket: Grain;
  bot: string | null;
  from: string;
  to: string;
  series: Series[];
}

export interface MetricQuery {
  metric: MetricName;
  /** One bot; undefined: every bot of `within`. */
  bot?: string;
  /** The bots the asker may see (undefined: every bot): without `bot`, the answer is theirs. */
  within?: readonly string[];
  /** Bucket-aligned, ms since the epoch. */
  from: number;
  to: number;
  bucket: Grain;
}

const round = (v: number, digits = 2) => Math.round(v * 10 ** digits) / 10 ** digits;

class Frame {
  readonly buckets: number[] = [];
  constructor(
    readonly rows: RollupRow[],
    readonly q: MetricQuery,
  ) {
    for (let t = q.from; t < q.to; t += grainMs(q.bucket)) this.buckets.push(t);
  }

  /** Whether a bot's rows count: the chosen bot's, or every bot's the asker may see. */
  private shown(bot: string): boolean {
    if (this.q.bot !== undefined) return bot === this.q.bot;
    return this.q.within === undefined || this.q.within.includes(bot);
  }

  /** Count rows of one metric for the chosen bot (all bots: every bot's rows, never the '*' rows). */
  counts(metric: string, where: (r: RollupRow) => boolean = () => true): RollupRow[] {
    return this.rows.filter((r) => r.metric === metric && r.bot !== ALL && this.shown(r.bot) && where(r));
  }

  /** A count series: the matching rows summed per bucket. */
  countSeries(name: string, rows: RollupRow[]): Series {
    const by = new Map<number, number>();
    for (const r of rows) {
      const t = Date.parse(r.bucket);
      by.set(t, (by.get(t) ?? 0) + r.value);
    }
    const points = this.buckets.map((t) => ({ t: new Date(t).toISOString(), v: by.get(t) ?? 0 }));
    return { name, unit: 'count', points, total: points.reduce((s, p) => s + (p.v ?? 0), 0) };
  }

  /** One series per distinct value of `group`, sorted by name. */
  grouped(rows: RollupRow[], group: (r: RollupRow) => string): Series[] {
    const names = [...new Set(rows.map(group))].sort();
    return names.map((n) =>
      this.countSeries(
        n,
        rows.filter((r) => group(r) === n),
      ),
    );
  }

  /**
   * A percentile series (key p50/p95) of the chosen bot, or of all bots. Percentiles are kept per
   * bot and for every bot together, and the ones of a few bots cannot be made from those: an asker
   * limited to several bots gets them for one bot at a time (null points without `bot`).
   */
  percentile(metric: string, key: 'p50' | 'p95', name: string): Series {
    const { within } = this.q;
    const bot = this.q.bot ?? (within === undefined ? ALL : within.length === 1 ? within[0] : undefined);
    const by = new Map<number, number>();
    for (const r of this.rows)
      if (r.metric === metric && r.bot === bot && r.key === key) by.set(Date.parse(r.bucket), r.value);
    return {
      name,
      unit: 'ms',
      points: this.buckets.map((t) => {
        const v = by.get(t);
        return { t: new Date(t).toISOString(), v: v === undefined ? null : Math.round(v) };
      }),
      total: null,
    };
  }

  /** a / (a + b) per bucket, in percent. */
  share(name: string, a: Series, b: Series): Series {
    const points = a.points.map((p, i) => {
      const x = p.v ?? 0;
      const y = b.points[i]!.v ?? 0;
      return { t: p.t, v: x + y > 0 ? round((100 * x) / (x + y), 1) : null };
    });
    const ta = a.total ?? 0;
    const tb = b.total ?? 0;
    return { name, unit: 'percent', points, total: ta + tb > 0 ? round((100 * ta) / (ta + tb), 1) : null };
  }
}

function shape(f: Frame): Series[] {
  switch (f.q.metric) {
    case 'messages':
      // Per channel and direction: "web in", "web out", ...
      return f.grouped(f.counts('messages'), (r) => `${r.channel} ${r.key}`);
    case 'sessions':
      return [
        f.countSeries('new', f.counts('sessions.new')),
        f.countSeries('active', f.counts('sessions.active')),
      ];
    case 'response-time':
      return [f.percentile('response_ms', 'p50', 'p50'), f.percentile('response_ms', 'p95', 'p95')];
    case 'handoffs':
      return [
        f.countSeries('handoffs', f.counts('handoffs')),
        f.percentile('handoff_wait_ms', 'p50', 'wait p50'),
        f.percentile('handoff_wait_ms', 'p95', 'wait p95'),
      ];
    case 'resolution': {
      const bot = f.countSeries(
        'resolved by bot',
        f.counts('resolution', (r) => r.key === 'bot'),
      );
      const handed = f.countSeries(
        'handed to a human',
        f.counts('resolution', (r) => r.key === 'handed'),
      );
      return [bot, handed, f.share('bot share', bot, handed)];
    }
    case 'satisfaction': {
      const rows = f.counts('rating');
      const stars = [1, 2, 3, 4, 5].map((n) =>
        f.countSeries(
          `${n} star${n > 1 ? 's' : ''}`,
          rows.filter((r) => r.key === String(n)),
        ),
      );
      const ratings = f.countSeries('ratings', rows);
      const average = (i: number | null) => {
        let sum = 0;
        let n = 0;
        stars.forEach((s, k) => {
          const v = i === null ? (s.total ?? 0) : (s.points[i]!.v ?? 0);
          sum += (k + 1) * v;
          n += v;
        });
        return n > 0 ? round(sum / n) : null;
      };
      return [
        {
          name: 'average',
          unit: 'stars',
          points: ratings.points.map((p, i) => ({ t: p.t, v: average(i) })),
          total: average(null),
        },
        ratings,
        ...stars,
      ];
    }
    case 'tools':
      return f.grouped(f.counts('tools'), (r) => r.key);
    case 'knowledge':
      return f.grouped(f.counts('knowledge'), (r) => r.key);
    case 'errors':
      return [
        f.countSeries(
          'bot errors',
          f.counts('errors', (r) => r.key === 'error'),
        ),
        f.countSeries(
          'dialog errors',
          f.counts('errors', (r) => r.key === 'dialog.error'),
        ),
        f.countSeries(
          'failed deliveries',
          f.counts('errors', (r) => r.key === 'failed_delivery'),
        ),
      ];
  }
}

/** One metric over [from, to) in buckets, for one bot or all. */
export async function analytics(db: Db, q: MetricQuery, now = Date.now()): Promise<MetricAnswer> {
  const rows = await metricRows(db, q.from, q.to, q.bucket, now);
  return {
    metric: q.metric,
    bucket: q.bucket,
    bot: q.bot ?? null,
    from: new Date(q.from).toISOString(),
    to: new Date(q.to).toISOString(),
    series: shape(new Frame(rows, q)),
  };
}
