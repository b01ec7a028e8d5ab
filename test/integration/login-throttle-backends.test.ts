import { describe, expect, it } from 'vitest';
import { LoginThrottle, MAX_FAILURES_PER_EMAIL } from '../../src/agents/login-throttle.ts';
import type { Db } from '../../src/store/db.ts';
import { type Backend, useTestDb } from '../helpers/database.ts';

/** The sign-in throttle's own rows, on both databases (its rows are taken back by ctid). */
describe.each(['postgres', 'pglite'] as Backend[])('LoginThrottle on %s', (backend) => {
  let db: Db;
  useTestDb(backend, (opened) => {
    db = opened;
  });
  const rows = async () =>
    (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM agent_login_failures')).rows[0]!.n;

  it('lets at most the limit through at once, and takes back what it refused', async () => {
    const throttle = new LoginThrottle(db);
    const attempts = await Promise.all(
      Array.from({ length: 12 }, () => throttle.attempt('ana@example.com', '203.0.113.5')),
    );
    const through = attempts.filter((a) => a.retryAfterMs === 0);
    expect(through.length).toBeLessThanOrEqual(MAX_FAILURES_PER_EMAIL);
    // Each attempt let through is one failure under the address and one under the client.
    expect(await rows()).toBe(2 * through.length);
  });

  it('forgets a right password and the failures before it', async () => {
    const throttle = new LoginThrottle(db);
    await db.query('DELETE FROM agent_login_failures');
    for (let i = 0; i < MAX_FAILURES_PER_EMAIL - 1; i++)
      expect((await throttle.attempt('bo@example.com', '203.0.113.6')).retryAfterMs).toBe(0);
    const right = await throttle.attempt('bo@example.com', '203.0.113.6');
    expect(right.retryAfterMs).toBe(0);
    await throttle.succeeded('bo@example.com', right);
    // The client's earlier failures stay (they count across addresses); this attempt's row went.
    expect(
      (await db.query<{ key: string }>('SELECT key FROM agent_login_failures ORDER BY key')).rows.map(
        (r) => r.key,
      ),
    ).toEqual(Array(MAX_FAILURES_PER_EMAIL - 1).fill('ip:203.0.113.6'));
  });
});
