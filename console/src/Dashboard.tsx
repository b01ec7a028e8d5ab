import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { ApiError, api } from './api.ts';
import { AXIS_SIZE_PX, axisValue, formatValue, type Unit, WHOLE_INCREMENTS } from './chart-format.ts';
import { type QueueStatus, Queues, type SchedulerStatus } from './Queues.tsx';
import {
  type DepthSample,
  storedHistory,
  TREND_STORAGE_KEY,
  type Trend,
  trends,
  withSample,
} from './queue-trend.ts';
import { useReloadTickets } from './reload-tickets.ts';

/** The shape every `GET /api/admin/analytics/{metric}` answers (README "Dashboard"). */
interface Series {
  name: string;
  unit: Unit;
  points: { t: string; v: number | null }[];
  total: number | null;
}
interface MetricAnswer {
  metric: string;
  bucket: 'hour' | 'day';
  bot: string | null;
  from: string;
  to: string;
  series: Series[];
}

export const CHARTS: [metric: string, title: string][] = [
  ['messages', 'Messages in and out, per channel'],
  ['sessions', 'New and active sessions'],
  ['response-time', 'Bot response time'],
  ['handoffs', 'Handoffs and their wait'],
  ['resolution', 'Resolved by the bot or handed to a human'],
  ['satisfaction', 'Satisfaction'],
  ['tools', 'Tool calls'],
  ['knowledge', 'Knowledge-base use'],
  ['errors', 'Errors and failed deliveries'],
];

const COLORS = ['#2456d6', '#e8710a', '#067647', '#b42318', '#7a2cc9', '#0e7c86', '#a15c07', '#c11574'];
/** How often "Live" reloads the charts. */
export const LIVE_MS = 5_000;
const DAY_MS = 86_400_000;

type Range = '24h' | '7d' | '30d' | 'custom';
interface Filters {
  range: Range;
  bot: string;
  /** Custom range: dates (YYYY-MM-DD, UTC) and bucket. */
  from: string;
  to: string;
  bucket: 'hour' | 'day';
}

/** The queue depths this tab read before the page was (re)loaded; none where storage is refused. */
function readStoredHistory(): DepthSample[] {
  try {
    return storedHistory(sessionStorage.getItem(TREND_STORAGE_KEY), Date.now());
  } catch {
    return [];
  }
}

function keepHistory(history: readonly DepthSample[]): void {
  try {
    sessionStorage.setItem(TREND_STORAGE_KEY, JSON.stringify(history));
  } catch {
    // Storage full or refused: the trend starts again at the next load of the page.
  }
}

const day = (t: number) => new Date(t).toISOString().slice(0, 10);

/** The query string of the analytics API for these filters. */
function queryOf(f: Filters): string {
  const p = new URLSearchParams();
  const now = Date.now();
  if (f.range === '24h') p.set('bucket', 'hour');
  else if (f.range === 'custom') {
    p.set('bucket', f.bucket);
    p.set('from', `${f.from}T00:00:00Z`);
    p.set('to', new Date(Date.parse(`${f.to}T00:00:00Z`) + DAY_MS).toISOString());
  } else {
    // Whole days (UTC), so that the query stays the same between refreshes of one day.
    p.set('bucket', 'day');
    p.set('from', `${day(now - (f.range === '7d' ? 6 : 29) * DAY_MS)}T00:00:00Z`);
  }
  if (f.bot) p.set('bot', f.bot);
  return p.toString();
}

function Plot(props: { answer: MetricAnswer }) {
  const el = useRef<HTMLDivElement>(null);
  const { answer } = props;
  useEffect(() => {
    const target = el.current;
    if (!target || answer.series.length === 0) return;
    const xs = answer.series[0]!.points.map((p) => Date.parse(p.t) / 1000);
    const data = [xs, ...answer.series.map((s) => s.points.map((p) => p.v))] as uPlot.AlignedData;
    const units = [...new Set(answer.series.map((s) => s.unit))];
    const axisOf = (unit: Unit): uPlot.Axis => ({
      scale: unit,
      values: (_u, ticks) => ticks.map((t) => axisValue(t, unit)),
      size: AXIS_SIZE_PX,
      ...(unit === 'count' || unit === 'ms' ? { incrs: WHOLE_INCREMENTS } : {}),
    });
    const axes: uPlot.Axis[] = [{}, axisOf(units[0]!)];
    if (units[1]) axes.push({ ...axisOf(units[1]), side: 1, grid: { show: false } });
    const plot = new uPlot(
      {
        width: Math.max(target.clientWidth, 320),
        height: 200,
        // The buckets are UTC hours and days: drawn in the browser's zone, a day west of UTC would
        // start the afternoon before, under the date before.
        tzDate: (ts: number) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
        series: [
          { value: answer.bucket === 'day' ? '{YYYY}-{MM}-{DD}' : '{YYYY}-{MM}-{DD} {HH}:{mm}' },
          ...answer.series.map((s, i) => ({
            label: s.name,
            scale: s.unit,
            stroke: COLORS[i % COLORS.length],
            width: 2,
            points: { show: true, size: 4 },
            value: (_u: uPlot, v: number | null) => formatValue(v, s.unit),
          })),
        ],
        scales: {
          x: { time: true },
          ...Object.fromEntries(
            units.map((u) => [
              u,
              { range: (_u: uPlot, min: number, max: number) => [Math.min(0, min), Math.max(max, 1)] },
            ]),
          ),
        },
        axes,
      } as uPlot.Options,
      data,
      target,
    );
    return () => plot.destroy();
  }, [answer]);
  return <div class="plot" ref={el} />;
}

function Chart(props: {
  metric: string;
  title: string;
  answer?: MetricAnswer;
  query: string;
  /** Why the last reload failed (the hub or its database away), and when the figures shown were read. */
  failure?: { error: string; shownSince?: Date };
}) {
  const { answer, metric, title, failure } = props;
  return (
    <figure class="chart" data-metric={metric} aria-label={title}>
      <figcaption>
        <h2>{title}</h2>
        <a class="csv" href={`/api/admin/analytics/${metric}?${props.query}&format=csv`} download>
          CSV<span class="visually-hidden"> of {title}</span>
        </a>
      </figcaption>
      {failure && (
        // Said in each chart: a chart still drawn would otherwise pass for the figures of now.
        <p class="error stale">
          {answer && failure.shownSince
            ? `Not up to date: these are the figures of ${failure.shownSince.toLocaleTimeString()}. `
            : 'Not read. '}
          {failure.error.charAt(0).toUpperCase() + failure.error.slice(1)}
        </p>
      )}
      {!answer ? (
        !failure && <p class="loading">Loading…</p>
      ) : answer.series.length === 0 ? (
        <p class="empty">Nothing in this range.</p>
      ) : (
        <>
          <ul class="totals" aria-label={`Totals of ${title}`}>
            {answer.series.map((s, i) => (
              <li data-series={s.name}>
                <span class="swatch" style={{ background: COLORS[i % COLORS.length] }} />
                {s.name}: <b class="total">{formatValue(s.total, s.unit)}</b>
              </li>
            ))}
          </ul>
          <Plot answer={answer} />
        </>
      )}
    </figure>
  );
}

/** `/console/dashboard`: the operator dashboard, for supervisors and admins. */
export function Dashboard() {
  const [bots, setBots] = useState<string[]>([]);
  const [filters, setFilters] = useState<Filters>({
    range: '24h',
    bot: '',
    from: day(Date.now() - 6 * DAY_MS),
    to: day(Date.now()),
    bucket: 'day',
  });
  const [live, setLive] = useState(true);
  const [answers, setAnswers] = useState<Record<string, MetricAnswer>>({});
  const [error, setError] = useState<string>();
  const [updatedAt, setUpdatedAt] = useState<Date>();
  const [queues, setQueues] = useState<{
    queues?: QueueStatus[];
    scheduler?: SchedulerStatus;
    trends?: Record<string, Trend>;
    error?: string;
  }>({});
  // The depths read lately, in this tab: the panel's trends (the server keeps no history).
  const depthHistory = useRef<DepthSample[]>(readStoredHistory());
  const query = queryOf(filters);

  useEffect(() => {
    api<{ bots: string[] }>('GET', '/api/admin/analytics')
      .then((r) => setBots(r.bots))
      .catch(() => undefined);
  }, []);

  // Apart from the charts: a queue that cannot be read (Redis away) must not hide them.
  const queuesTicket = useReloadTickets();
  const loadQueues = useCallback(async () => {
    const fresh = queuesTicket();
    try {
      const answer = await api<{ queues: QueueStatus[]; scheduler: SchedulerStatus }>(
        'GET',
        '/api/admin/queue',
      );
      const read = answer.queues;
      // An older reading that comes back late is not the queues' depth now.
      if (!fresh()) return;
      depthHistory.current = withSample(depthHistory.current, {
        at: Date.now(),
        depths: Object.fromEntries(read.map((q) => [q.queue, q.depth])),
      });
      keepHistory(depthHistory.current);
      setQueues({ queues: read, scheduler: answer.scheduler, trends: trends(depthHistory.current) });
    } catch (err) {
      if (fresh()) setQueues({ error: err instanceof ApiError ? err.message : 'The hub cannot be reached.' });
    }
  }, [queuesTicket]);

  const chartsTicket = useReloadTickets();
  const load = useCallback(async () => {
    void loadQueues();
    // The answer of filters changed since must not replace the charts of the filters shown.
    const fresh = chartsTicket();
    try {
      const results = await Promise.all(
        CHARTS.map(([metric]) => api<MetricAnswer>('GET', `/api/admin/analytics/${metric}?${query}`)),
      );
      if (!fresh()) return;
      setAnswers(Object.fromEntries(results.map((r) => [r.metric, r])));
      setError(undefined);
      setUpdatedAt(new Date());
    } catch (err) {
      if (fresh()) setError(err instanceof ApiError ? err.message : 'The hub cannot be reached.');
    }
  }, [query, loadQueues, chartsTicket]);

  useEffect(() => {
    setAnswers({});
    setError(undefined);
    void load();
    if (!live) return;
    const timer = setInterval(() => void load(), LIVE_MS);
    return () => clearInterval(timer);
  }, [load, live]);

  const set = (patch: Partial<Filters>) => setFilters((f) => ({ ...f, ...patch }));
  return (
    <main class="page dashboard">
      <form class="filters" aria-label="Dashboard filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Range{' '}
          <select
            aria-label="Range"
            value={filters.range}
            onChange={(e) => set({ range: e.currentTarget.value as Range })}
          >
            <option value="24h">Last 24 hours, by hour</option>
            <option value="7d">Last 7 days, by day</option>
            <option value="30d">Last 30 days, by day</option>
            <option value="custom">Dates…</option>
          </select>
        </label>
        {filters.range === 'custom' && (
          <>
            <label>
              From (UTC){' '}
              <input
                type="date"
                value={filters.from}
                onChange={(e) => set({ from: e.currentTarget.value })}
              />
            </label>
            <label>
              To (UTC){' '}
              <input type="date" value={filters.to} onChange={(e) => set({ to: e.currentTarget.value })} />
            </label>
            <label>
              By{' '}
              <select
                aria-label="By"
                value={filters.bucket}
                onChange={(e) => set({ bucket: e.currentTarget.value as 'hour' | 'day' })}
              >
                <option value="hour">hour</option>
                <option value="day">day</option>
              </select>
            </label>
          </>
        )}
        <label>
          Bot{' '}
          <select aria-label="Bot" value={filters.bot} onChange={(e) => set({ bot: e.currentTarget.value })}>
            <option value="">All bots</option>
            {bots.map((b) => (
              <option value={b}>{b}</option>
            ))}
          </select>
        </label>
        <label>
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.currentTarget.checked)} /> Live
        </label>
        <span class="muted">Times in UTC</span>
        {/* Not a live region: it changes at every reload (5 s), and a screen reader would read it
            out each time. A failed reload is announced (the alert below). */}
        <span class="muted updated">{updatedAt ? `Updated ${updatedAt.toLocaleTimeString()}` : ''}</span>
      </form>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <Queues {...queues} />
      <div class="charts">
        {CHARTS.map(([metric, title]) => (
          <Chart
            metric={metric}
            title={title}
            answer={answers[metric]}
            query={query}
            failure={error ? { error, shownSince: updatedAt } : undefined}
          />
        ))}
      </div>
    </main>
  );
}
