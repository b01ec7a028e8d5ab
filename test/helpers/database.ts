import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPglite } from '../../src/store/pglite.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { TEST_DATABASE_URL } from '../setup/services.ts';

export const silentLogger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

export interface TestDatabase {
  /** Connection string of a database of its own, made for this test and dropped after. */
  url: string;
  drop(): Promise<void>;
}

/** A fresh, empty PostgreSQL database on the test server. */
export async function createTestDatabase(adminUrl = TEST_DATABASE_URL): Promise<TestDatabase> {
  const name = `sbt_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export async function tempDir(prefix = 'sbt-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export type Backend = 'postgres' | 'pglite';

/** A migrated database on either backend, and how to get rid of it. */
export async function openTestDb(backend: Backend): Promise<{ db: Db; cleanup: () => Promise<void> }> {
  if (backend === 'postgres') {
    const test = await createTestDatabase();
    const db = openPostgres({ url: test.url, poolSize: 10, logger: silentLogger });
    await migrate(db);
    return {
      db,
      async cleanup() {
        await db.close();
        await test.drop();
      },
    };
  }
  const dir = await tempDir('sbt-pglite-');
  const db = await openPglite(dir);
  await migrate(db);
  return {
    db,
    async cleanup() {
      await db.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * For one describe: a migrated database on `backend`, opened before its tests (handed to `opened`)
 * and removed after them.
 */
export function useTestDb(backend: Backend, opened: (db: Db) => void): void {
  let cleanup: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const test = await openTestDb(backend);
    cleanup = test.cleanup;
    opened(test.db);
  });
  afterAll(async () => {
    await cleanup?.();
  });
}
