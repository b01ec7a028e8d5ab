import { describe, expect, it } from 'vitest';
import { cachedRefresh } from '../../src/http/metrics-refresh.ts';

describe('the refresh behind /metrics', () => {
  it('runs once for scrapes that come together and for those within its age, then again', async () => {
    let clock = 0;
    let runs = 0;
    let finish!: () => void;
    const refresh = cachedRefresh(
      () => {
        runs++;
        return new Promise<void>((resolve) => {
          finish = resolve;
        });
      },
      () => undefined,
      { maxAgeMs: 5_000, waitMs: 60_000, now: () => clock },
    );
    const together = [refresh(), refresh(), refresh()];
    expect(runs).toBe(1);
    finish();
    await Promise.all(together);
    clock += 4_999;
    await refresh();
    expect(runs).toBe(1);
    clock += 1;
    const again = refresh();
    expect(runs).toBe(2);
    finish();
    await again;
  });

  it('counts a failed refresh too, so an outage is not asked again at every scrape', async () => {
    let clock = 0;
    let runs = 0;
    const errors: string[] = [];
    const refresh = cachedRefresh(
      async () => {
        runs++;
        throw new Error('connect ECONNREFUSED');
      },
      (err) => errors.push(err.message),
      { maxAgeMs: 5_000, now: () => clock },
    );
    await refresh();
    await refresh();
    expect({ runs, errors }).toEqual({ runs: 1, errors: ['connect ECONNREFUSED'] });
    clock += 5_000;
    await refresh();
    expect(runs).toBe(2);
  });

  it('answers after waitMs while a refresh is still under way, which the next scrape then shares', async () => {
    let runs = 0;
    let finish!: () => void;
    const refresh = cachedRefresh(
      () => {
        runs++;
        return new Promise<void>((resolve) => {
          finish = resolve;
        });
      },
      () => undefined,
      { waitMs: 10 },
    );
    await refresh();
    await refresh();
    expect(runs).toBe(1);
    finish();
  });
});
