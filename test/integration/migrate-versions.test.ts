import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/env.ts';
import type { Db } from '../../src/store/db.ts';
import {
  type ChannelMigrations,
  MIGRATION_LOCK_TIMEOUT_MS,
  MigrationLockTimeoutError,
  migrate,
  registeredChannelMigrations,
  requireMigrated,
} from '../../src/store/migrate.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { createTestDatabase, silentLogger, type TestDatabase, tempDir } from '../helpers/database.ts';
import { startTestHub } from '../helpers/hub.ts';

/** A channel of the test's own, whose one migration is `sql`: a version this database lacks. */
async function channelWith(channel: string, sql: string): Promise<ChannelMigrations> {
  const dir = await tempDir('sbt-migrations-');
  await fs.writeFile(path.join(dir, '0001_probe.sql'), sql);
  return { channel, storage: { migrationsDir: dir } };
}

describe('migrations against versions this build does not have (PostgreSQL)', () => {
  let database: TestDatabase;
  let db: Db;
  const versions = async () =>
    new Set(
      (await db.query<{ version: string }>('SELECT version FROM schema_migrations')).rows.map(
        (r) => r.version,
      ),
    );
  const recordFor = async (version: string, work: () => Promise<void>) => {
    await db.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
    try {
      await work();
    } finally {
      await db.query('DELETE FROM schema_migrations WHERE version = $1', [version]);
    }
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 4, logger: silentLogger });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  // A rollback, or one old process left behind, would otherwise run on a schema it does not
  // understand and fail later, message after message, with SQL errors.
  it('refuses a database a newer release migrated, naming the core version it does not know', async () => {
    await recordFor('9000_from_a_newer_release', async () => {
      const refused =
        /migrated by a newer Switchboard \(9000_from_a_newer_release, unknown to this version\)/;
      await expect(migrate(db)).rejects.toThrow(ConfigError);
      await expect(migrate(db)).rejects.toThrow(refused);
      await expect(requireMigrated(db)).rejects.toThrow(refused);
      // The start refuses with it, before anything is served.
      await expect(startTestHub({ databaseUrl: database.url })).rejects.toThrow(refused);
    });
  });

  it('refuses a channel version newer than the channel’s own newest, naming it', async () => {
    await recordFor('email/9000_from_a_newer_release', async () => {
      await expect(migrate(db)).rejects.toThrow(
        /migrated by a newer Switchboard \(email\/9000_from_a_newer_release, unknown to this version\)/,
      );
    });
  });

  it('leaves alone the core versions moved to a channel, older unknown ones, and channels this build lacks', async () => {
    for (const version of ['0006_email', '0011_email_failures', '0000_older_unknown', 'gone/9000_x'])
      await db.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
    expect(await migrate(db)).toEqual([]);
    await expect(requireMigrated(db)).resolves.toBeUndefined();
  });

  it('MIGRATE_ON_START=false: a start refuses while migrations are pending, naming them', async () => {
    const probe = await channelWith('probe', 'CREATE TABLE probe_rows (id int);');
    const channels = [...registeredChannelMigrations(), probe];
    await expect(requireMigrated(db, channels)).rejects.toThrow(
      /the database lacks 1 migration of this version \(probe\/0001_probe\) and MIGRATE_ON_START is false/,
    );
    expect(await migrate(db, silentLogger, channels)).toEqual(['probe/0001_probe']);
    await expect(requireMigrated(db, channels)).resolves.toBeUndefined();
  });

  it('MIGRATE_ON_START=false: a hub on a database never migrated refuses to start and applies nothing', async () => {
    const fresh = await createTestDatabase();
    try {
      await expect(startTestHub({ databaseUrl: fresh.url, migrateOnStart: false })).rejects.toThrow(
        /the database lacks \d+ migrations of this version \(0001_init, .* and \d+ more\) and MIGRATE_ON_START is false: run `switchboard migrate`/,
      );
      const c = new pg.Client({ connectionString: fresh.url });
      await c.connect();
      try {
        expect((await c.query(`SELECT to_regclass('schema_migrations') AS t`)).rows[0].t).toBeNull();
      } finally {
        await c.end();
      }
      // Once migrated (the separate step), it starts.
      const migrated = openPostgres({ url: fresh.url, poolSize: 2, logger: silentLogger });
      await migrate(migrated);
      await migrated.close();
      const running = await startTestHub({ databaseUrl: fresh.url, migrateOnStart: false });
      expect((await fetch(`${running.url}/readyz`)).status).toBe(200);
      await running.stop();
    } finally {
      await fresh.drop();
    }
  });

  // A DDL statement waiting for a table lock makes every later writer of that table wait behind
  // it: a migration gives up instead, and applies nothing.
  it(`gives up waiting for a table lock after ${MIGRATION_LOCK_TIMEOUT_MS} ms, naming the migration, applying nothing`, async () => {
    const probe = await channelWith('locked', 'ALTER TABLE sessions ADD COLUMN lock_probe int;');
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    try {
      // A long transaction of another process: it read `sessions`, and holds its lock until it ends.
      await locker.query('BEGIN');
      await locker.query('SELECT count(*) FROM sessions');
      const bound = MIGRATION_LOCK_TIMEOUT_MS + 10_000;
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        migrate(db, silentLogger, [...registeredChannelMigrations(), probe]).then(
          () => 'applied',
          (err: unknown) => err,
        ),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(`still waiting after ${bound} ms`), bound);
        }),
      ]);
      clearTimeout(timer);
      expect(outcome).toBeInstanceOf(MigrationLockTimeoutError);
      expect(outcome).toBeInstanceOf(ConfigError);
      expect((outcome as Error).message).toMatch(
        /^migration locked\/0001_probe waited 5 s for a lock on a table another transaction holds \(lock_timeout\).*nothing was applied/,
      );
    } finally {
      await locker.query('COMMIT');
      await locker.end();
    }
    expect((await versions()).has('locked/0001_probe')).toBe(false);
    const column = await db.query(
      `SELECT 1 FROM information_schema.columns WHERE table_name = 'sessions' AND column_name = 'lock_probe'`,
    );
    expect(column.rows).toEqual([]);
  }, 30_000);
});
