/** How the dashboard writes its numbers: totals and legends in full, axes short enough to fit. */

export type Unit = 'count' | 'ms' | 'percent' | 'stars';

/** The console is in English: its numbers are grouped the English way, whatever the browser's locale. */
const whole = new Intl.NumberFormat('en', { maximumFractionDigits: 2 });
/** 1.2K, 35M: an axis label stays within its column (`AXIS_SIZE_PX`) at any count. */
const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 2 });

/** Room for an axis' labels beside the plot, in CSS pixels: about seven characters. */
export const AXIS_SIZE_PX = 60;

/**
 * The steps an axis of counts or milliseconds may tick at: whole numbers only, so that no two
 * labels of an axis read the same once rounded (0.25 and 0.5 ms were both "0 ms").
 */
export const WHOLE_INCREMENTS: number[] = Array.from({ length: 13 }, (_, e) =>
  [1, 2, 5].map((m) => m * 10 ** e),
).flat();

const seconds = (ms: number, digits: number) => `${Number((ms / 1000).toFixed(digits))} s`;

/** A total or a legend's value, in full: 1,234,567; 850 ms; 1.2 s; 64.5%; 4.2 ★. */
export function formatValue(v: number | null, unit: Unit): string {
  if (v === null) return '–';
  switch (unit) {
    case 'ms':
      return v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
    case 'percent':
      return `${v}%`;
    case 'stars':
      return `${v} ★`;
    default:
      return whole.format(v);
  }
}

/** An axis' tick label, short: 35M, 1.25 s. */
export function axisValue(v: number, unit: Unit): string {
  switch (unit) {
    case 'ms':
      return v >= 1000 ? seconds(v, 2) : `${Math.round(v)} ms`;
    case 'percent':
      return `${v}%`;
    case 'stars':
      return `${v} ★`;
    default:
      return compact.format(v);
  }
}
