import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRICS_REFRESH_WAIT_MS } from '../../src/http/metrics-refresh.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_DATABASE_URL } from '../setup/services.ts';

const METRICS_TOKEN = 'metrics-endpoint-test-token-0123456789abcdef';

describe('/metrics on the public port (PostgreSQL)', () => {
  let database: TestDatabase;
  let running: RunningHub;
  const scrape = (token?: string) =>
    fetch(`${running.url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

  beforeAll(async () => {
    database = await createTestDatabase();
    running = await startTestHub({ databaseUrl: database.url, metricsToken: METRICS_TOKEN });
  });
  afterAll(async () => {
    await running?.stop();
    await database?.drop();
  });

  // Each scrape read the database (active sessions) through the shared pool: scrapers, or anyone
  // hammering the route, could hold the pool's connections, and a scrape waited as long as the
  // pool did. Now scrapes share one refresh, and answer with the values they have after a while.
  // First: the hub has not refreshed its metrics yet, so the first scrape reads the database.
  it('shares one database read between scrapes, and answers while the pool waits', async () => {
    const name = new URL(database.url).pathname.slice(1);
    const locker = new pg.Client({ connectionString: database.url });
    const watcher = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await Promise.all([locker.connect(), watcher.connect()]);
    const waitingReads = async () =>
      (
        await watcher.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE '%count(*)::int AS count FROM sessions%'`,
          [name],
        )
      ).rows[0]!.n;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE');
      const bound = METRICS_REFRESH_WAIT_MS + 10_000;
      let timer: NodeJS.Timeout | undefined;
      const answers = await Promise.race([
        Promise.all(
          Array.from({ length: 6 }, async () => {
            const started = Date.now();
            const res = await scrape(METRICS_TOKEN);
            await res.text();
            return { status: res.status, ms: Date.now() - started };
          }),
        ),
        new Promise<string>((resolve) => {
          timer = setTimeout(() => resolve(`no answer within ${bound} ms`), bound);
        }),
      ]);
      clearTimeout(timer);
      expect(answers).toHaveLength(6);
      for (const a of answers as { status: number; ms: number }[]) {
        expect(a.status).toBe(200);
        expect(a.ms).toBeLessThan(METRICS_REFRESH_WAIT_MS + 2_000);
      }
      // One read waits on the lock for all of them, not one per scrape.
      expect(await waitingReads()).toBe(1);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await Promise.all([locker.end(), watcher.end()]);
    }
  });

  it('with METRICS_TOKEN, answers only a request bearing it', async () => {
    for (const res of [await scrape(), await scrape('not-the-metrics-token')]) {
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="switchboard-metrics"');
      expect(await res.json()).toEqual({
        error: {
          code: 'unauthorized',
          message: 'send the metrics token as "Authorization: Bearer <METRICS_TOKEN>"',
        },
      });
    }
    const res = await scrape(METRICS_TOKEN);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('switchboard_queue_depth');
  });
});
