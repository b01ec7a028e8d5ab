import { describe, expect, it } from 'vitest';
import { axisValue, formatValue, WHOLE_INCREMENTS } from '../../console/src/chart-format.ts';

describe("the dashboard's numbers", () => {
  it('writes totals in full, grouped by thousands', () => {
    expect(formatValue(123_456_789, 'count')).toBe('123,456,789');
    expect(formatValue(0, 'count')).toBe('0');
    expect(formatValue(null, 'count')).toBe('–');
    expect(formatValue(850, 'ms')).toBe('850 ms');
    expect(formatValue(64.5, 'percent')).toBe('64.5%');
  });

  it("keeps an axis' labels short at any count: they fit beside the plot", () => {
    const ticks = [0, 50_000_000, 100_000_000, 150_000_000];
    const labels = ticks.map((t) => axisValue(t, 'count'));
    expect(labels).toEqual(['0', '50M', '100M', '150M']);
    expect(axisValue(1_250, 'count')).toBe('1.25K');
    for (const label of labels) expect(label.length).toBeLessThanOrEqual(7);
  });

  it('gives every tick of a milliseconds axis a label of its own', () => {
    const ticks = [1_000, 1_250, 1_500, 1_750, 2_000];
    expect(ticks.map((t) => axisValue(t, 'ms'))).toEqual(['1 s', '1.25 s', '1.5 s', '1.75 s', '2 s']);
    // Counts and milliseconds tick at whole steps only: no 0.25 ms, read as "0 ms".
    expect(WHOLE_INCREMENTS.every((step) => Number.isInteger(step) && step >= 1)).toBe(true);
    expect(WHOLE_INCREMENTS.slice(0, 6)).toEqual([1, 2, 5, 10, 20, 50]);
  });
});
