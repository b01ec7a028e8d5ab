import { describe, expect, it } from 'vitest';
import { meanWithError, median, tracingCpuAdded, tracingSummaryLines } from '../../bench/tracing-summary.ts';

const run = (perSecond: number, cpu: Record<string, number>) => ({ perSecond, cpuMsPerMessage: cpu });

describe('the tracing bench summary', () => {
  it('gives a mean with its standard error, and a median', () => {
    expect(meanWithError([1, 2, 3, 4])).toEqual({ mean: 2.5, se: Math.sqrt(5 / 3 / 4) });
    expect(meanWithError([0.9])).toEqual({ mean: 0.9, se: 0 });
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('adds up the workers and takes each pair’s difference before averaging', () => {
    const pairs = [
      {
        on: run(900, { gateway: 0.03, 'worker 1': 0.1, 'worker 2': 0.12, redis: 0.02, postgres: 0.06 }),
        off: run(1000, { gateway: 0.025, 'worker 1': 0.09, 'worker 2': 0.1, redis: 0.02, postgres: 0.06 }),
      },
      {
        on: run(800, { gateway: 0.04, 'worker 1': 0.13, 'worker 2': 0.13, redis: 0.03, postgres: 0.07 }),
        off: run(1000, { gateway: 0.03, 'worker 1': 0.1, 'worker 2': 0.1, redis: 0.02, postgres: 0.07 }),
      },
    ];
    const added = tracingCpuAdded(pairs);
    expect(added.gateway!.mean).toBeCloseTo(0.0075, 10);
    expect(added.workers!.mean).toBeCloseTo((0.03 + 0.06) / 2, 10);
    expect(added.workers!.se).toBeCloseTo(0.015, 10);
    expect(added.redis!.mean).toBeCloseTo(0.005, 10);
    expect(added.postgres!.mean).toBeCloseTo(0, 10);
    expect(added.all!.mean).toBeCloseTo((0.035 + 0.08) / 2, 10);
    const lines = tracingSummaryLines(pairs);
    expect(lines[0]).toBe(
      'tracing on / off, throughput ratio of the pairs: mean 0.850 ± 0.050 (standard error), median 0.850',
    );
    expect(lines[1]).toContain('workers +0.0450 ± 0.0150');
  });

  it('leaves out what a run did not measure', () => {
    const lines = tracingSummaryLines([{ on: { perSecond: 9 }, off: { perSecond: 10 } }]);
    expect(lines).toEqual([
      'tracing on / off, throughput ratio of the pairs: mean 0.900 ± 0.000 (standard error), median 0.900',
    ]);
  });
});
