import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChannelStorage } from '../channels/declaration.ts';
import { channels } from '../channels/registry.ts';
import { ConfigError } from '../config/env.ts';
import type { Logger } from '../logger.ts';
import type { Db, Queryable } from './db.ts';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
/** Any fixed number: every process that migrates takes this lock, so they migrate one at a time. */
const MIGRATION_LOCK_KEY = 7_340_211;
/**
 * The longest a migration waits for a lock on a table (`SET LOCAL lock_timeout`, taken once the
 * migration lock is held: waiting for another process's migrations is no table lock). A DDL
 * statement waiting for a lock another transaction holds (a long one of an old process, a
 * `pg_dump`) makes every later writer of that table wait behind it: all messages stop. It fails
 * instead, nothing is applied, and the operator runs it again (MigrationLockTimeoutError).
 */
export const MIGRATION_LOCK_TIMEOUT_MS = 5_000;
/** PostgreSQL's lock_not_available: `lock_timeout` expired. */
const LOCK_NOT_AVAILABLE = '55P03';

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

/**
 * Core versions a database may record without a file here: the ones moved to a channel (above).
 * Any other recorded version this build does not know, past its newest, was applied by a newer
 * release (`newerVersions`).
 */
const REMOVED_CORE_VERSIONS: ReadonlySet<string> = new Set(['0006_email', '0011_email_failures']);

/** At most this many pending versions are named when a start refuses (MIGRATE_ON_START=false). */
const NAMED_PENDING_MAX = 10;

/** A migration gave up waiting for a table lock (MIGRATION_LOCK_TIMEOUT_MS); nothing was applied. */
export class MigrationLockTimeoutError extends ConfigError {
  override name = 'MigrationLockTimeoutError';
}

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

interface MigrationPlan {
  core: Migration[];
  perChannel: { channel: string; storage: ChannelStorage; migrations: Migration[] }[];
}

async function readPlan(channelMigrations: ChannelMigrations[]): Promise<MigrationPlan> {
  const core = await readMigrations();
  const perChannel = await Promise.all(
    channelMigrations.map(async ({ channel, storage }) => ({
      storage,
      channel,
      migrations: storage.migrationsDir ? await readMigrations(storage.migrationsDir, `${channel}/`) : [],
    })),
  );
  return { core, perChannel };
}

const filesOf = (plan: MigrationPlan): Migration[] => [
  ...plan.core,
  ...plan.perChannel.flatMap((c) => c.migrations),
];

/**
 * Recorded versions this build does not know that sort after its newest of their kind (the
 * core's, or one channel's `<channel>/…`): a newer release migrated this database, and this
 * code would run on a schema it does not understand (a constraint it relies on gone, a column
 * renamed) and fail at run time, message after message. Core versions moved to a channel
 * (REMOVED_CORE_VERSIONS) and versions of a channel this build does not have are left alone.
 */
export function newerVersions(recorded: Iterable<string>, plan: MigrationPlan): string[] {
  const known = new Set(filesOf(plan).map((m) => m.version));
  const newestOf = new Map<string, string | undefined>([
    ['', plan.core.at(-1)?.version],
    ...plan.perChannel.map((c) => [`${c.channel}/`, c.migrations.at(-1)?.version] as const),
  ]);
  const newer: string[] = [];
  for (const version of recorded) {
    if (known.has(version) || REMOVED_CORE_VERSIONS.has(version)) continue;
    const slash = version.indexOf('/');
    const newest = newestOf.get(slash < 0 ? '' : version.slice(0, slash + 1));
    if (newest !== undefined && version > newest) newer.push(version);
  }
  return newer.sort();
}

function newerSchemaError(versions: string[]): ConfigError {
  return new ConfigError(
    `the database was migrated by a newer Switchboard (${versions.join(', ')}, unknown to this version): ` +
      'run that version (or a later one), or restore the database from before it',
  );
}

/**
 * Applies every migration not yet applied, in one transaction under an advisory lock (several
 * processes starting at once apply each exactly once): the core's in file-name order, then each
 * registered channel's own (`adapters/<name>/migrations/`), recorded as `<channel>/<version>`.
 * Returns the versions it applied (adopted ones included). Refuses (ConfigError) a database a
 * newer release migrated (`newerVersions`), and gives up (MigrationLockTimeoutError, nothing
 * applied) when a migration waits longer than MIGRATION_LOCK_TIMEOUT_MS for a table's lock.
 */
export async function migrate(
  db: Db,
  logger?: Logger,
  channelMigrations: ChannelMigrations[] = registeredChannelMigrations(),
): Promise<string[]> {
  const plan = await readPlan(channelMigrations);
  const { core, perChannel } = plan;
  // Every start but the first after an upgrade finds nothing to apply: one read then, no
  // transaction, no lock and no DDL (on PGlite those first statements of a start cost ~10 ms of
  // CPU; on PostgreSQL, processes starting together no longer queue on the lock). A recorded
  // version is never removed, so what this read finds applied stays applied.
  const recorded = await recordedVersions(db);
  if (recorded) {
    const newer = newerVersions(recorded, plan);
    if (newer.length > 0) throw newerSchemaError(newer);
    if (filesOf(plan).every((m) => recorded.has(m.version))) return [];
  }
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.exec(`SET LOCAL lock_timeout = ${MIGRATION_LOCK_TIMEOUT_MS}`);
    await tx.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set(
      (await tx.query<{ version: string }>('SELECT version FROM schema_migrations')).rows.map(
        (r) => r.version,
      ),
    );
    // A newer release may have migrated while this process waited for the lock.
    const newer = newerVersions(done, plan);
    if (newer.length > 0) throw newerSchemaError(newer);
    const applied: string[] = [];
    let current: string | undefined;
    try {
      for (const m of core) {
        if (done.has(m.version)) continue;
        current = m.version;
        await apply(tx, m);
        applied.push(m.version);
        logger?.info({ event: 'db.migrated', version: m.version });
      }
      for (const { channel, storage, migrations } of perChannel) {
        for (const m of migrations) {
          if (done.has(m.version)) continue;
          current = m.version;
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
    } catch (err) {
      if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw err;
      throw new MigrationLockTimeoutError(
        `migration ${current} waited ${MIGRATION_LOCK_TIMEOUT_MS / 1000} s for a lock on a table another ` +
          'transaction holds (lock_timeout), and gave up so that writers do not queue behind it: nothing ' +
          'was applied. Find the long transaction (pg_stat_activity), end it or wait for it, and run ' +
          '`switchboard migrate` again',
      );
    }
    return applied;
  });
}

/**
 * For a start that does not migrate (MIGRATE_ON_START=false): refuses (ConfigError) a database
 * that lacks a migration of this version, naming them (a separate `switchboard migrate` comes
 * first), or that a newer release migrated.
 */
export async function requireMigrated(
  db: Db,
  channelMigrations: ChannelMigrations[] = registeredChannelMigrations(),
): Promise<void> {
  const plan = await readPlan(channelMigrations);
  const recorded = (await recordedVersions(db)) ?? new Set<string>();
  const newer = newerVersions(recorded, plan);
  if (newer.length > 0) throw newerSchemaError(newer);
  const pending = filesOf(plan)
    .map((m) => m.version)
    .filter((v) => !recorded.has(v));
  if (pending.length === 0) return;
  const named = pending.slice(0, NAMED_PENDING_MAX).join(', ');
  const more = pending.length > NAMED_PENDING_MAX ? ` and ${pending.length - NAMED_PENDING_MAX} more` : '';
  throw new ConfigError(
    `the database lacks ${pending.length} migration${pending.length === 1 ? '' : 's'} of this version ` +
      `(${named}${more}) and MIGRATE_ON_START is false: run \`switchboard migrate\` with this version first`,
  );
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
