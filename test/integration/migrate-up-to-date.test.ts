import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { createTestDatabase, silentLogger, type TestDatabase } from '../helpers/database.ts';

/** The key every migrating process locks (src/store/migrate.ts). */
const MIGRATION_LOCK_KEY = 7_340_211;

describe('migrating a database that is up to date', () => {
  let test: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    test = await createTestDatabase();
    db = openPostgres({ url: test.url, poolSize: 4, logger: silentLogger });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
    await test?.drop();
  });

  // Processes starting together each migrate first: with nothing to apply, none waits for
  // another's lock (one that is applying migrations, or, as here, holding the lock meanwhile).
  it('applies nothing and takes no lock: it answers while another process holds the migration lock', async () => {
    const release = await db.holdLock(MIGRATION_LOCK_KEY);
    expect(release).toBeDefined();
    try {
      expect(await migrate(db)).toEqual([]);
    } finally {
      await release?.();
    }
  });
});
