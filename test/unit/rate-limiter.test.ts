import { describe, expect, it } from 'vitest';
import { createMemoryRateLimiter } from '../../src/limits/memory-rate-limiter.ts';
import { RateLimitArgumentError } from '../../src/limits/rate-limiter.ts';

/** The in-process limiter on a clock the test moves. */
function limiterAt(start = 1_000_000) {
  let now = start;
  const limiter = createMemoryRateLimiter({ now: () => now });
  return { limiter, advance: (ms: number) => (now += ms) };
}

describe('in-process sliding-window rate limiter', () => {
  it('allows `limit` hits in a window, refuses the next, and says how long to wait', async () => {
    const { limiter, advance } = limiterAt();
    const decisions = [];
    for (let i = 0; i < 3; i++) {
      decisions.push(await limiter.hit('s1', 3, 60_000));
      advance(1_000);
    }
    expect(decisions.map((d) => [d.allowed, d.remaining])).toEqual([
      [true, 2],
      [true, 1],
      [true, 0],
    ]);
    // 3 s after the first hit: it leaves the window 57 s from now.
    expect(await limiter.hit('s1', 3, 60_000)).toEqual({
      allowed: false,
      retryAfterMs: 57_000,
      remaining: 0,
    });
    advance(56_999);
    expect((await limiter.hit('s1', 3, 60_000)).allowed).toBe(false);
    advance(1);
    expect(await limiter.hit('s1', 3, 60_000)).toEqual({ allowed: true, retryAfterMs: 0, remaining: 0 });
    // The second hit (at +1 s) is next to leave.
    expect((await limiter.hit('s1', 3, 60_000)).retryAfterMs).toBe(1_000);
  });

  it('holds in every window, not per calendar minute: the 61st message in any minute is refused', async () => {
    const { limiter, advance } = limiterAt(59_000);
    for (let i = 0; i < 60; i++) expect((await limiter.hit('s', 60, 60_000)).allowed).toBe(true);
    advance(2_000); // across a minute boundary
    expect((await limiter.hit('s', 60, 60_000)).allowed).toBe(false);
  });

  it('does not count refused hits', async () => {
    const { limiter, advance } = limiterAt();
    await limiter.hit('k', 1, 1_000);
    for (let i = 0; i < 10; i++) {
      advance(50);
      expect((await limiter.hit('k', 1, 1_000)).allowed).toBe(false);
    }
    advance(500);
    expect((await limiter.hit('k', 1, 1_000)).allowed).toBe(true);
  });

  it('keeps keys apart', async () => {
    const { limiter } = limiterAt();
    expect((await limiter.hit('a', 1, 1_000)).allowed).toBe(true);
    expect((await limiter.hit('a', 1, 1_000)).allowed).toBe(false);
    expect((await limiter.hit('b', 1, 1_000)).allowed).toBe(true);
  });

  it('refuses nonsense arguments', async () => {
    const { limiter } = limiterAt();
    await expect(limiter.hit('', 1, 1_000)).rejects.toThrow(RateLimitArgumentError);
    await expect(limiter.hit('k', 0, 1_000)).rejects.toThrow(RateLimitArgumentError);
    await expect(limiter.hit('k', 1.5, 1_000)).rejects.toThrow(RateLimitArgumentError);
    await expect(limiter.hit('k', 1, 0)).rejects.toThrow(RateLimitArgumentError);
  });
});
