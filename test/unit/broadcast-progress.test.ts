import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli-usage.ts';
import { pacing } from '../../src/outbound/broadcasts.ts';
import { progressLine, runBroadcastCommand } from '../../src/outbound/cli.ts';

const progress = (over: Partial<Parameters<typeof progressLine>[0]>) => ({
  broadcast_id: '0d9f4a52-5c43-4b7e-9f3e-1b2a3c4d5e6f',
  status: 'running' as const,
  total: 5_000,
  queued: 5_000,
  sent: 0,
  delivered: 0,
  failed: 0,
  opted_out: 0,
  rate_per_second: 200,
  ...over,
});

describe('the broadcast progress bar', () => {
  it('fills with the recipients done (sent, delivered, failed or opted out)', () => {
    expect(progressLine(progress({}), 10)).toBe(
      '[░░░░░░░░░░] 0/5,000   0%  sent 0 · delivered 0 · failed 0 · opted out 0 · queued 5,000',
    );
    expect(
      progressLine(progress({ queued: 2_000, sent: 2_500, delivered: 400, failed: 50, opted_out: 50 }), 10),
    ).toBe(
      '[██████░░░░] 3,000/5,000  60%  sent 2,500 · delivered 400 · failed 50 · opted out 50 · queued 2,000',
    );
    expect(progressLine(progress({ status: 'completed', queued: 0, sent: 4_990, opted_out: 10 }), 10)).toBe(
      '[██████████] 5,000/5,000 100%  sent 4,990 · delivered 0 · failed 0 · opted out 10 · queued 0',
    );
  });

  it('shows an empty broadcast as complete', () => {
    expect(progressLine(progress({ total: 0, queued: 0 }), 4)).toBe(
      '[████] 0/0 100%  sent 0 · delivered 0 · failed 0 · opted out 0 · queued 0',
    );
  });
});

describe('a broadcast pace', () => {
  it('ticks at least 200 ms apart, one recipient each when slow', () => {
    expect(pacing(200)).toEqual({ intervalMs: 200, batch: 40 });
    expect(pacing(80)).toEqual({ intervalMs: 200, batch: 16 });
    expect(pacing(2)).toEqual({ intervalMs: 500, batch: 1 });
    expect(pacing(0.5)).toEqual({ intervalMs: 2_000, batch: 1 });
  });
});

describe('broadcast --interval', () => {
  it('is a usage error unless it is whole milliseconds, at least 100, before the hub is asked', async () => {
    const io = { env: {}, out: { write: () => true } };
    for (const interval of ['abc', '0', '50', '1.5'])
      await expect(
        runBroadcastCommand(['status', 'some-id', '--watch', '--interval', interval], io),
      ).rejects.toThrow(new UsageError(`--interval takes milliseconds, at least 100, not ${interval}`));
  });
});
