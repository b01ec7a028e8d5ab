import fs from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import {
  type Db,
  INT8_OID,
  type PreparedStatement,
  parseInt8,
  type Queryable,
  type QueryResult,
} from './db.ts';

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
}

const LOCK_FILE = 'switchboard.pid';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite is one Postgres in one process: a second process opening the same files would corrupt
 * them. A pid file keeps the data directory to one live process at a time.
 */
async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  const lockPath = path.join(dir, LOCK_FILE);
  for (;;) {
    try {
      await fs.writeFile(lockPath, String(process.pid), { flag: 'wx' });
      return () => fs.rm(lockPath, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number.parseInt(await fs.readFile(lockPath, 'utf8').catch(() => ''), 10);
      if (Number.isFinite(holder) && holder !== process.pid && isAlive(holder)) {
        throw new DataDirLockedError(
          `the embedded database in ${dir} is in use by process ${holder}; stop it, or set DATA_DIR or DATABASE_URL`,
        );
      }
      await fs.rm(lockPath, { force: true });
    }
  }
}

function wrap(db: Pick<PGlite, 'query' | 'exec'>): Queryable {
  return {
    async query<Row>(
      sql: string | PreparedStatement,
      params?: readonly unknown[],
    ): Promise<QueryResult<Row>> {
      // One connection, in process: nothing to gain from naming statements.
      const text = typeof sql === 'string' ? sql : sql.text;
      const result = await db.query<Row>(text, params as unknown[] | undefined);
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await db.exec(sql);
    },
  };
}

/** Opens the embedded PostgreSQL (PGlite) whose files live under `dataDir/pglite`. */
export async function openPglite(dataDir: string): Promise<Db> {
  await fs.mkdir(dataDir, { recursive: true });
  const unlock = await lockDataDir(dataDir);
  let pglite: PGlite;
  try {
    pglite = await PGlite.create({
      dataDir: path.join(dataDir, 'pglite'),
      parsers: { [INT8_OID]: parseInt8 },
    });
  } catch (err) {
    await unlock();
    throw err;
  }
  const queryable = wrap(pglite);
  return {
    kind: 'pglite',
    query: queryable.query,
    exec: queryable.exec,
    transaction: (work) => pglite.transaction((tx) => work(wrap(tx))),
    // One process per data directory already (the pid file): there is nobody to lock out.
    holdLock: async () => async () => undefined,
    async ping() {
      await pglite.query('SELECT 1');
    },
    async close() {
      await pglite.close();
      await unlock();
    },
  };
}
