/**
 * Which way each queue has been going, from the depths the dashboard has read while it is open
 * (every reload of "Live"), kept in the tab across a reload of the page: the server keeps no
 * history of them (Prometheus has `switchboard_queue_depth` for that).
 */

/** The depths read at one moment, by queue. */
export interface DepthSample {
  at: number;
  depths: Record<string, number>;
}

/** How long samples are kept. */
export const TREND_WINDOW_MS = 60_000;
/** The shortest span a trend is drawn from (two reloads of "Live", which come every 5 s). */
export const TREND_MIN_SPAN_MS = 9_000;

/** Items a second, over the span: positive when the queue grows. */
export interface Trend {
  perSecond: number;
  spanMs: number;
}

/** Where the page keeps its readings across a reload of the page (this tab only: sessionStorage). */
export const TREND_STORAGE_KEY = 'switchboard.console.queueDepths';

const isSample = (value: unknown): value is DepthSample => {
  if (typeof value !== 'object' || value === null) return false;
  const { at, depths } = value as Partial<DepthSample>;
  return (
    typeof at === 'number' &&
    Number.isFinite(at) &&
    typeof depths === 'object' &&
    depths !== null &&
    Object.values(depths).every((d) => typeof d === 'number' && Number.isFinite(d))
  );
};

/**
 * The readings an earlier load of the page kept (`TREND_STORAGE_KEY`), those of the window
 * before `now` and well-formed; none when there are none or the text is not theirs.
 */
export function storedHistory(text: string | null, now: number): DepthSample[] {
  if (!text) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  return parsed
    .filter(isSample)
    .filter((s) => s.at <= now && now - s.at <= TREND_WINDOW_MS)
    .sort((a, b) => a.at - b.at);
}

/** The history with `sample` added and the samples older than the window dropped. */
export function withSample(history: readonly DepthSample[], sample: DepthSample): DepthSample[] {
  return [...history.filter((s) => sample.at - s.at <= TREND_WINDOW_MS && s.at < sample.at), sample];
}

/**
 * The trend of each queue of the newest sample: against the newest sample at least
 * TREND_MIN_SPAN_MS older that has the queue (where it is going now, not over the whole window);
 * none for a queue until there is one.
 */
export function trends(history: readonly DepthSample[]): Record<string, Trend> {
  const newest = history.at(-1);
  if (!newest) return {};
  const out: Record<string, Trend> = {};
  for (const [queue, depth] of Object.entries(newest.depths)) {
    const before = history.findLast((s) => newest.at - s.at >= TREND_MIN_SPAN_MS && queue in s.depths);
    if (!before) continue;
    const spanMs = newest.at - before.at;
    out[queue] = { perSecond: ((depth - before.depths[queue]!) * 1000) / spanMs, spanMs };
  }
  return out;
}

const rate = (perSecond: number) => {
  const abs = Math.abs(perSecond);
  if (abs >= 10) return `${Math.round(abs)}/s`;
  if (abs >= 1) return `${abs.toFixed(1)}/s`;
  return `${Math.max(1, Math.round(abs * 60))}/min`;
};

const duration = (seconds: number) =>
  seconds < 90 ? `${Math.max(1, Math.round(seconds))} s` : `${Math.round(seconds / 60)} min`;

/** What the panel says of a trend: "↑ 12/s", "↓ 40/s, empty in ~25 s", "steady". */
export function describeTrend(trend: Trend, depth: number): string {
  if (trend.perSecond === 0) return 'steady';
  if (trend.perSecond > 0) return `↑ ${rate(trend.perSecond)}`;
  const draining = `↓ ${rate(trend.perSecond)}`;
  return depth > 0 ? `${draining}, empty in ~${duration(depth / -trend.perSecond)}` : draining;
}
