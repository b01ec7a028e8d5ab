import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChannelStorage } from '../channels/declaration.ts';
import { channels } from '../channels/registry.ts';
import type { Logger } from '../logger.ts';
import type { Db, Queryable } from './db.ts';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
/** Any fixed number: every process that migrates takes this lock, so they migrate one at a time. */
const MIGRATION_LOCK_KEY = 7_340_211;

/*
 * Migrations that moved out of the core. A channel's tables once made by a core migration now
 * come from that channel's own migrations (`adapters/<name>/migrations/`). The core file is
 * removed, never renumbered: a database that applied it keeps its row in `schema_migrations`,
 * and this runner leaves a recorded version that has no file alone (it only applies files not
 * yet recorded; it never re-runs, renames or deletes a row). The channel's migration that makes
 * the same tables names the core one in `ChannelStorage.adopts`: on such a database it is
 * recorded as adopted instead of run, and a new database gets the tables from it. A moved name
 * is never reused: `0006_email` and `0011_email_failures` went to `adapters/email/`.
 */

export interface Migration {
  version: string;
  sql: string;
}

export async function readMigrations(dir = MIGRATIONS_DIR, prefix = ''): Promise<Migration[]> {
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: `${prefix}${file.replace(/\.sql$/, '')}`,
      sql: await fs.readFile(path.join(dir, file), 'utf8'),
    })),
  );
}

/** The migrations of one channel, versioned `<channel>/<file>`, and the core versions they adopt. */
export interface ChannelMigrations {
  channel: string;
  storage: ChannelStorage;
}

/** Every registered channel that keeps tables of its own, in registration order. */
export function registeredChannelMigrations(): ChannelMigrations[] {
  return channels
    .all()
    .filter((d) => d.storage?.migrationsDir)
    .map((d) => ({ channel: d.name, storage: d.storage! }));
}

/**
 * Applies every migration not yet applied, in one transaction under an advisory lock (several
 * processes starting at once apply each exactly once): the core's in file-name order, then each
 * registered channel's own (`adapters/<name>/migrations/`), recorded as `<channel>/<version>`.
 * Returns the versions it applied (adopted ones included).
 */
export async function migrate(
  db: Db,
  logger?: Logger,
  channelMigrations: ChannelMigrations[] = registeredChannelMigrations(),
): Promise<string[]> {
  const core = await readMigrations();
  const perChannel = await Promise.all(
    channelMigrations.map(async ({ channel, storage }) => ({
      storage,
      channel,
      migrations: storage.migrationsDir ? await readMigrations(storage.migrationsDir, `${channel}/`) : [],
    })),
  );
  // Every start but the first after an upgrade finds nothing to apply: one read then, no
  // transaction, no lock and no DDL (on PGlite those first statements of a start cost ~10 ms of
  // CPU; on PostgreSQL, processes starting together no longer queue on the lock). A recorded
  // version is never removed, so what this read finds applied stays applied.
  const recorded = await recordedVersions(db);
  const files = [...core, ...perChannel.flatMap((c) => c.migrations)];
  if (recorded && files.every((m) => recorded.has(m.version))) return [];
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set(
      (await tx.query<{ version: string }>('SELECT version FROM schema_migrations')).rows.map(
        (r) => r.version,
      ),
    );
    const applied: string[] = [];
    for (const m of core) {
      if (done.has(m.version)) continue;
      await apply(tx, m);
      applied.push(m.version);
      logger?.info({ event: 'db.migrated', version: m.version });
    }
    for (const { channel, storage, migrations } of perChannel) {
      for (const m of migrations) {
        if (done.has(m.version)) continue;
        const local = m.version.slice(channel.length + 1);
        const adopted = storage.adopts?.[local];
        if (adopted !== undefined && done.has(adopted)) {
          // The core migration made these tables already: record, do not run.
          await record(tx, m.version);
          logger?.info({ event: 'db.migration_adopted', version: m.version, from: adopted });
        } else {
          await apply(tx, m);
          logger?.info({ event: 'db.migrated', version: m.version });
        }
        applied.push(m.version);
      }
    }
    return applied;
  });
}

/** PostgreSQL's undefined_table: a database no migration has run on yet. */
const UNDEFINED_TABLE = '42P01';

/** The versions `schema_migrations` records; undefined when there is no such table yet. */
async function recordedVersions(db: Db): Promise<Set<string> | undefined> {
  try {
    const { rows } = await db.query<{ version: string }>('SELECT version FROM schema_migrations');
    return new Set(rows.map((r) => r.version));
  } catch (err) {
    if ((err as { code?: string }).code === UNDEFINED_TABLE) return undefined;
    throw err;
  }
}

async function apply(tx: Queryable, m: Migration): Promise<void> {
  await tx.exec(m.sql);
  await record(tx, m.version);
}

async function record(tx: Queryable, version: string): Promise<void> {
  await tx.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
}
