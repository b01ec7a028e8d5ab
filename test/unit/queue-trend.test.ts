import { describe, expect, it } from 'vitest';
import {
  type DepthSample,
  describeTrend,
  storedHistory,
  TREND_WINDOW_MS,
  trends,
  withSample,
} from '../../console/src/queue-trend.ts';

const sample = (at: number, inbound: number, outbound = 0): DepthSample => ({
  at,
  depths: { inbound, outbound },
});

const history = (...samples: DepthSample[]) => samples.reduce<DepthSample[]>(withSample, []);

describe("the dashboard's queue trends", () => {
  it('draws none until the samples span two reloads', () => {
    expect(trends([])).toEqual({});
    expect(trends(history(sample(0, 0), sample(5_000, 4)))).toEqual({});
    expect(trends(history(sample(0, 0), sample(5_000, 4), sample(10_000, 10)))).toEqual({
      inbound: { perSecond: 1, spanMs: 10_000 },
      outbound: { perSecond: 0, spanMs: 10_000 },
    });
  });

  it('compares with the newest sample at least 9 s old: the last ~10 s, not the whole minute', () => {
    // Up, then back down to where it started: the last 10 s went down.
    const h = history(sample(0, 0), sample(5_000, 20), sample(10_000, 20), sample(15_000, 0));
    expect(trends(h).inbound).toEqual({ perSecond: -2, spanMs: 10_000 });
  });

  it('keeps a minute of samples, and drops a queue the newest sample does not have', () => {
    const h = history(sample(0, 0), sample(30_000, 1), sample(TREND_WINDOW_MS + 1, 2));
    expect(h.map((s) => s.at)).toEqual([30_000, TREND_WINDOW_MS + 1]);
    const onlyInbound = withSample(h, { at: TREND_WINDOW_MS + 20_000, depths: { inbound: 4 } });
    expect(Object.keys(trends(onlyInbound))).toEqual(['inbound']);
    // A sample read twice at the same moment counts once.
    expect(withSample(h, sample(TREND_WINDOW_MS + 1, 2))).toHaveLength(2);
  });

  it('says which way a queue goes, per second or per minute, and when a draining one empties', () => {
    expect(describeTrend({ perSecond: 0, spanMs: 10_000 }, 5)).toBe('steady');
    expect(describeTrend({ perSecond: 0.2, spanMs: 10_000 }, 2)).toBe('↑ 12/min');
    expect(describeTrend({ perSecond: 0.001, spanMs: 10_000 }, 2)).toBe('↑ 1/min');
    expect(describeTrend({ perSecond: 2.5, spanMs: 10_000 }, 40)).toBe('↑ 2.5/s');
    expect(describeTrend({ perSecond: 123.4, spanMs: 10_000 }, 900)).toBe('↑ 123/s');
    expect(describeTrend({ perSecond: -40, spanMs: 10_000 }, 1_000)).toBe('↓ 40/s, empty in ~25 s');
    expect(describeTrend({ perSecond: -2, spanMs: 10_000 }, 600)).toBe('↓ 2.0/s, empty in ~5 min');
    expect(describeTrend({ perSecond: -0.2, spanMs: 10_000 }, 0)).toBe('↓ 12/min');
  });

  it('takes back the readings kept before a reload: those of the window, well-formed, in order', () => {
    const now = 1_000_000;
    const kept = [sample(now - 5_000, 3), sample(now - TREND_WINDOW_MS - 1, 9), sample(now - 10_000, 1)];
    expect(storedHistory(JSON.stringify(kept), now)).toEqual([
      sample(now - 10_000, 1),
      sample(now - 5_000, 3),
    ]);
    // The first reading after the reload has its trend at once.
    expect(trends(withSample(storedHistory(JSON.stringify(kept), now), sample(now, 5))).inbound).toEqual({
      perSecond: 0.4,
      spanMs: 10_000,
    });
  });

  it('takes back nothing from a text that is not its readings', () => {
    expect(storedHistory(null, 1_000)).toEqual([]);
    expect(storedHistory('not json', 1_000)).toEqual([]);
    expect(storedHistory('{"at":1}', 1_000)).toEqual([]);
    expect(
      storedHistory(
        JSON.stringify([{ at: 900, depths: { inbound: 'x' } }, { at: 'soon' }, null, sample(950, 2)]),
        1_000,
      ),
    ).toEqual([sample(950, 2)]);
    // Readings from the page's future (a clock set back) are not a past to compare with.
    expect(storedHistory(JSON.stringify([sample(2_000, 2)]), 1_000)).toEqual([]);
  });
});
