import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiAdapter } from '../../adapters/api/index.ts';
import { READINESS_TIMEOUT_MS } from '../../src/http/ops-api.ts';
import type { ChannelAdapter } from '../../src/ports.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import { TEST_DATABASE_URL } from '../setup/services.ts';

const POOL_SIZE = 2;

/**
 * `/readyz` says whether this process can take requests: its database, queue (and Redis) answer
 * and its start has finished. What it must not say "no" to: a channel's connection to a third
 * party, and a pool whose connections are all busy (a burst, not an outage). Both would take
 * every gateway out of a load balancer's rotation at the same moment.
 */
describe('/readyz and what it depends on (PostgreSQL)', () => {
  let database: TestDatabase;
  let running: RunningHub;
  let mailDown = true;
  // A channel whose connection to its server (as email's IMAP) is away.
  const mailLike: ChannelAdapter = {
    channel: 'mail-like',
    async ping() {
      if (mailDown) throw new Error('IMAP not connected: INBOX');
    },
  };
  const name = () => new URL(database.url).pathname.slice(1);
  const admin = async <T>(work: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await c.connect();
    try {
      return await work(c);
    } finally {
      await c.end();
    }
  };
  const readyz = async () => {
    const started = Date.now();
    const res = await fetch(`${running.url}/readyz`);
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown>,
      ms: Date.now() - started,
    };
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    running = await startTestHub(
      { databaseUrl: database.url, databasePoolSize: POOL_SIZE },
      { adapters: [createApiAdapter(), mailLike] },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await admin((c) => c.query(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS true`)).catch(() => undefined);
    await database?.drop();
  });

  it('stays 200 while a channel is disconnected, and says so in the body without gating on it', async () => {
    mailDown = true;
    try {
      expect(await readyz()).toMatchObject({
        status: 200,
        body: {
          status: 'ready',
          checks: { database: 'ok', queue: 'ok' },
          channels: { 'mail-like': 'disconnected' },
        },
      });
    } finally {
      mailDown = false;
    }
    expect(await readyz()).toMatchObject({ status: 200, body: { channels: { 'mail-like': 'connected' } } });
  });

  it('stays 200 while every connection of the pool waits on a lock: a busy pool is no lost database', async () => {
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE');
      // More readers than the pool has connections: every one is checked out, the rest queue.
      const blocked = Array.from({ length: POOL_SIZE + 2 }, () =>
        running.hub.db.query('SELECT count(*) FROM sessions'),
      );
      // Every connection of the pool is taken: waiting on the lock, or held for good by the
      // embedded queue's advisory lock (src/queue/in-process.ts).
      await until(
        () =>
          admin(
            async (c) =>
              (
                await c.query<{ n: number }>(
                  `SELECT count(*)::int AS n FROM pg_stat_activity a WHERE datname = $1
                     AND (wait_event_type = 'Lock'
                          OR EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory'))`,
                  [name()],
                )
              ).rows[0]!.n,
          ),
        (n) => n === POOL_SIZE,
      );
      const answer = await readyz();
      expect(answer).toMatchObject({ status: 200, body: { status: 'ready', checks: { database: 'ok' } } });
      expect(answer.ms).toBeLessThan(READINESS_TIMEOUT_MS);
      await locker.query('COMMIT');
      await Promise.all(blocked);
    } finally {
      await locker.end();
    }
  });

  it('is 503 while the database refuses every connection, and 200 again once it accepts them', async () => {
    expect((await readyz()).status).toBe(200);
    await admin(async (c) => {
      await c.query(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS false`);
      await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name()]);
    });
    try {
      const away = await until(readyz, (r) => r.status === 503, 30_000, 100);
      expect(away.body).toMatchObject({ status: 'not_ready', checks: { database: 'failing' } });
    } finally {
      await admin((c) => c.query(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS true`));
    }
    await until(readyz, (r) => r.status === 200, 30_000, 100);
  });
});
