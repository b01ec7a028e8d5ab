import type { Db } from './db.ts';

/**
 * Keeps the planner's statistics of the hub's tables current where nothing else does (issue 19).
 *
 * PostgreSQL plans from `pg_statistic` and `pg_class.reltuples`, which only ANALYZE (run by
 * autovacuum, normally) writes. A server with `autovacuum = off`, and PGlite (single-user mode has
 * no autovacuum launcher), never analyses the hub's tables, so a database that started empty is
 * planned as empty for good: the group commit read `session_state` by a sequential scan and a
 * lookup by key scanned every session of its channel; the prepared statements keep those plans
 * (a plan is made again only when the table's statistics change, which ANALYZE does). In one
 * bench run the empty database's p99 at 1,000 messages/s was three times the analysed one's.
 *
 * So a worker (one at a time: a repeating scheduler job) looks at `pg_stat_user_tables` and
 * analyses the tables that changed enough since their last analysis, by PostgreSQL's own rule
 * (`autovacuum_analyze_threshold` + `autovacuum_analyze_scale_factor` × rows). Where autovacuum
 * runs it is left to do its work: the hub steps in only when a table has twice the changes that
 * should have made autovacuum analyse it (autovacuum has fallen behind). Never for a table
 * analysed (by anyone) less than `minIntervalMs` ago, and never for one smaller than
 * `MIN_PAGES`: the planner takes a table never analysed for at least that size, and statistics
 * taken of a near-empty table that then grows only make its estimates smaller.
 *
 * What an analysis costs: ANALYZE reads a sample of 300 × `default_statistics_target` rows
 * (30,000 at PostgreSQL's default 100) and computes each column's statistics from it (sorting
 * every text and jsonb column's values; the full-text index's `to_tsvector` on each sampled row).
 * With that default, `messages` (40,000 rows) took 168 ms of a backend's CPU (1.3 s of wall
 * clock on this two-core machine under load), and a larger table costs about the same. So the
 * hub analyses from a sample of 3,000 rows (STATISTICS_TARGET): 18 ms of CPU for the same table.
 * In the distributed bench that analysis falls inside the run about once, ~10% of PostgreSQL's
 * CPU over the full-load run when it lands there. On PostgreSQL it is a backend of its own, which
 * blocks no one's reads or writes. PGlite's one connection waits for it, so on PGlite a table is
 * analysed again only when it has doubled.
 */

/** The scheduler's job name (and repeat id). */
export const ANALYZE_JOB = 'db-analyze';

/**
 * The hub's sample: 300 × this rows (3,000, where PostgreSQL's default 100 takes 30,000), which
 * took `messages` at 40,000 rows from 168 to 18 ms of CPU on PostgreSQL, and from 743–798 ms to
 * 62–78 ms on PGlite; columns given a target of their own keep it. Enough for what the hub's
 * plans need (row counts, distinct keys). Autovacuum, where it runs, keeps the server's target.
 */
export const STATISTICS_TARGET = 10;

/** Tables smaller than this (in 8 kB pages) are not analysed: see the module comment. */
export const MIN_PAGES = 10;

export interface AnalyzeOptions {
  /** A table analysed (by the hub, autovacuum or anyone) less than this long ago is left alone. */
  minIntervalMs: number;
  now?: Date;
}

export interface AnalyzedTable {
  table: string;
  /** Live rows and rows changed since the last analysis, as the statistics said before it. */
  rows: number;
  changed: number;
  ms: number;
}

interface TableRow {
  schema: string;
  table: string;
  live: number;
  changed: number;
  reltuples: number;
  pages: number;
  last: Date | string | null;
  reloptions: string[] | null;
  autovacuum: string;
  threshold: string;
  scale: string;
}

const TABLES = `SELECT t.schemaname AS schema, t.relname AS table, t.n_live_tup AS live,
    t.n_mod_since_analyze AS changed, c.reltuples::float8 AS reltuples,
    pg_relation_size(c.oid) / current_setting('block_size')::int AS pages,
    greatest(t.last_analyze, t.last_autoanalyze) AS last, c.reloptions,
    current_setting('autovacuum') AS autovacuum,
    current_setting('autovacuum_analyze_threshold') AS threshold,
    current_setting('autovacuum_analyze_scale_factor') AS scale
  FROM pg_stat_user_tables t JOIN pg_class c ON c.oid = t.relid
  WHERE t.schemaname = ANY (current_schemas(false)) AND c.relkind = 'r'`;

const OFF = new Set(['off', 'false', 'no', '0']);

/** A table's own storage parameter (`ALTER TABLE … SET (name = value)`), if set. */
function reloption(options: string[] | null, name: string): string | undefined {
  const prefix = `${name}=`;
  return options?.find((o) => o.startsWith(prefix))?.slice(prefix.length);
}

/** Whether the hub should analyse this table now (see the module comment). */
export function isDue(row: TableRow, kind: Db['kind'], minIntervalMs: number, now: number): boolean {
  if (Number(row.pages) < MIN_PAGES) return false;
  if (row.last !== null && now - new Date(row.last).getTime() < minIntervalMs) return false;
  const base = Number(reloption(row.reloptions, 'autovacuum_analyze_threshold') ?? row.threshold);
  const scale = Number(reloption(row.reloptions, 'autovacuum_analyze_scale_factor') ?? row.scale);
  // PGlite analyses on the hub's one connection, which waits meanwhile: there a table is analysed
  // again only once it has doubled (or shrunk by as much) since its last analysis.
  const threshold =
    base + (kind === 'pglite' ? Math.max(1, scale) : scale) * Math.max(0, Number(row.reltuples));
  const autovacuum =
    kind === 'postgres' &&
    !OFF.has(row.autovacuum.toLowerCase()) &&
    !OFF.has((reloption(row.reloptions, 'autovacuum_enabled') ?? 'on').toLowerCase());
  return Number(row.changed) >= (autovacuum ? 2 : 1) * threshold;
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Analyses the tables of the current schema that are due (see the module comment), one by one,
 * and says which. Cheap when none is: one read of the statistics views.
 */
export async function analyzeStaleTables(db: Db, options: AnalyzeOptions): Promise<AnalyzedTable[]> {
  const now = (options.now ?? new Date()).getTime();
  const { rows } = await db.query<TableRow>(TABLES);
  const done: AnalyzedTable[] = [];
  for (const row of rows) {
    if (!isDue(row, db.kind, options.minIntervalMs, now)) continue;
    const started = performance.now();
    const analyze = `ANALYZE ${quoteIdent(row.schema)}.${quoteIdent(row.table)}`;
    await db.transaction(async (tx) => {
      await tx.exec(`SET LOCAL default_statistics_target = ${STATISTICS_TARGET}`);
      await tx.exec(analyze);
    });
    done.push({
      table: row.table,
      rows: Number(row.live),
      changed: Number(row.changed),
      ms: Math.round(performance.now() - started),
    });
  }
  return done;
}
