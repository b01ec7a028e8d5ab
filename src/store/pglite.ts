import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  constants as fsConstants,
  mkdirSync,
  readdirSync,
  statSync,
} from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite, parse, protocol, type Results } from '@electric-sql/pglite';
import { distPath } from '../package-root.ts';
import {
  type Db,
  INT8_OID,
  type PreparedStatement,
  parseInt8,
  type Queryable,
  type QueryResult,
} from './db.ts';
import { compiledPgliteModule } from './pglite-early.ts';

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

/** "cached plan must not change result type" (feature_not_supported). */
const PLAN_CHANGED = '0A000';

/** Most statements kept prepared at once; the least recently used is closed to make room. */
const MAX_PREPARED = 256;

interface Statement {
  name: string;
  /** Each parameter's type, as PostgreSQL inferred it: which serializer its value takes. */
  types: number[];
}

const concat = (parts: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/**
 * PGlite's own `query` sends an unnamed statement each time, in six calls into PostgreSQL
 * (Parse, Describe, Bind, Describe, Execute, Sync, each its own pass through the WebAssembly
 * main loop): every statement is parsed, analysed and planned again, which in single-threaded
 * WebAssembly cost ~0.3–0.8 ms of CPU before any row was touched (README, "Embedded database
 * memory"). Here each SQL text is prepared once under a name of its own (Parse and Describe, one
 * call), and every run is one call (Bind, Describe, Execute, Sync): PostgreSQL's plan cache then
 * keeps the parse tree and, once it judges a generic plan good enough, the plan. One backend,
 * one process: the names are this process's alone. Values go through PGlite's serializers and
 * results through its parser exactly as `query` does. (`query` also syncs PGlite's file system
 * after a statement outside a transaction: a no-op for a data directory on disk, NodeFS, the
 * only kind the hub opens.)
 */
class PreparedStatements {
  private readonly statements = new Map<string, Statement>();
  private readonly toClose: string[] = [];
  private next = 0;

  constructor(private readonly pglite: PGlite) {}

  /** Runs `text` once. The caller holds PGlite's query lock (`runExclusive`). */
  async run<Row>(
    text: string,
    params: readonly unknown[] | undefined,
    retried = false,
  ): Promise<Results<Row>> {
    const pg = this.pglite;
    const statement = this.statements.get(text) ?? (await this.prepare(text));
    const values = (params ?? []).map((value, i) => {
      if (value === null || value === undefined) return null;
      const serializer = pg.serializers[statement.types[i]!];
      return serializer ? serializer(value) : String(value);
    });
    let messages: Awaited<ReturnType<PGlite['execProtocolStream']>>;
    try {
      messages = await pg.execProtocolStream(
        concat([
          protocol.serialize.bind({ statement: statement.name, values: values as string[] }),
          protocol.serialize.describe({ type: 'P' }),
          protocol.serialize.execute({}),
          protocol.serialize.sync(),
        ]),
        { syncToFs: false },
      );
    } catch (err) {
      if ((err as { code?: string }).code !== PLAN_CHANGED || retried) throw err;
      // A migration changed a table under a prepared `SELECT *`: prepared anew, and run again
      // unless a transaction was in progress (PostgreSQL aborted it; its caller rolls back).
      this.forget(text);
      if (pg.isInTransaction()) throw err;
      return this.run(text, params, true);
    }
    return parse.parseResults(messages, pg.parsers)[0] as Results<Row>;
  }

  private async prepare(text: string): Promise<Statement> {
    const pg = this.pglite;
    const name = `sb_${this.next++}`;
    const messages = await pg.execProtocolStream(
      concat([
        // Statements pushed out of the cache, closed on the way.
        ...this.toClose.splice(0).map((old) => protocol.serialize.close({ type: 'S', name: old })),
        protocol.serialize.parse({ name, text }),
        protocol.serialize.describe({ type: 'S', name }),
        protocol.serialize.sync(),
      ]),
      { syncToFs: false },
    );
    const statement = { name, types: parse.parseDescribeStatementResults(messages) };
    this.statements.set(text, statement);
    if (this.statements.size > MAX_PREPARED) this.forget(this.statements.keys().next().value!);
    return statement;
  }

  private forget(text: string): void {
    const statement = this.statements.get(text);
    if (!statement) return;
    this.statements.delete(text);
    this.toClose.push(statement.name);
  }
}

/**
 * `exclusive` runs one statement under PGlite's locks: outside a transaction both the
 * transaction lock and the query lock (as `PGlite.query` takes them), inside one the query lock
 * only (the transaction holds the other, as PGlite's own transaction object does).
 */
function wrap(
  statements: PreparedStatements,
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>,
  exec: (sql: string) => Promise<unknown>,
): Queryable {
  return {
    async query<Row>(
      sql: string | PreparedStatement,
      params?: readonly unknown[],
    ): Promise<QueryResult<Row>> {
      // Every text is prepared here (see PreparedStatements): the name a PreparedStatement carries is the pg driver's.
      const text = typeof sql === 'string' ? sql : sql.text;
      const result = await exclusive(() => statements.run<Row>(text, params));
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await exec(sql);
    },
  };
}

/**
 * The embedded database's memory, chosen rather than inherited (README, "Embedded database
 * memory"). PGlite runs PostgreSQL single-user inside one WebAssembly heap that grows and never
 * shrinks; initdb's defaults are sized for a server with 100 connections (128 MB shared buffers,
 * 64 MB maintenance memory), which one process serving one hub never needs. The WASM heap itself
 * starts at its floor (128 MB reserved; only touched pages count as resident).
 */
export const PGLITE_SETTINGS: Readonly<Record<string, string>> = {
  // The page cache. The OS page cache sits under it anyway (PGlite's files are ordinary files).
  shared_buffers: '16MB',
  // WAL buffered before a write: 1/32 of shared_buffers by default (512 kB); say it outright.
  wal_buffers: '512kB',
  // Per sort/hash before spilling to a temp file: the hub's queries sort little.
  work_mem: '2MB',
  // CREATE INDEX in migrations, VACUUM: bounded so that a migration cannot grow the heap for good.
  maintenance_work_mem: '16MB',
  // Temporary tables: none in the hub.
  temp_buffers: '1MB',
  // Single-user mode has one backend; shared memory (PGPROC slots, the lock table) scales with this.
  max_connections: '8',
  // …and the lock table is max_connections × this: room for a migration touching many tables.
  max_locks_per_transaction: '128',
};

const BYTEA_OID = 17;

/**
 * bytea in as binary and out through Buffer's hex decoder. PGlite's own (de)serialiser goes through
 * one JS string or number per byte (`Array.from(bytes).map(…).join('')`, `parseInt` per pair):
 * ~40 bytes of garbage per byte, so each 256 KiB file chunk cost ~10 MB of heap and a 50 MB upload
 * grew the process by as much as V8 let its heap grow (issue 24: memory must not grow with the
 * file). A parameter given as bytes is sent in the binary format (bytea's is the bytes
 * themselves): no text form at all on the way in.
 */
const byteaSerializer = (value: unknown): string => {
  if (!(value instanceof Uint8Array)) throw new Error('Invalid input for bytea type');
  // PGlite's Bind writes an ArrayBuffer view as a binary parameter; its type says string only.
  return value as unknown as string;
};
const byteaParser = (value: string): Uint8Array => {
  const bytes = Buffer.from(value.slice(2), 'hex');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
};

/** How this hub reads and writes values PGlite would otherwise convert its own way. */
const typeOptions = {
  parsers: { [INT8_OID]: parseInt8, [BYTEA_OID]: byteaParser },
  serializers: { [BYTEA_OID]: byteaSerializer },
};

const startParams = (): string[] => [
  ...PGlite.defaultStartParams,
  ...Object.entries(PGLITE_SETTINGS).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
];

/** The installed PGlite's version: a data directory template is only good for the same one. */
async function pgliteVersion(): Promise<string> {
  const entry = fileURLToPath(import.meta.resolve('@electric-sql/pglite'));
  let dir = path.dirname(entry);
  for (;;) {
    const pkg = await fs.readFile(path.join(dir, 'package.json'), 'utf8').catch(() => undefined);
    if (pkg) {
      const parsed = JSON.parse(pkg) as { name?: string; version?: string };
      if (parsed.name === '@electric-sql/pglite' && parsed.version) return parsed.version;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

/** Where the build puts a freshly initialised data directory (a copy of initdb's output). */
export async function pgliteTemplateDir(): Promise<string> {
  return distPath(`pglite-template-${await pgliteVersion()}`);
}

/**
 * Writes a new data directory's template to `dir`: initdb, then every migration (the build runs
 * this once per PGlite version, and again when the migrations change).
 */
export async function writePgliteTemplate(dir: string): Promise<void> {
  const tmp = `${dir}.${process.pid}.tmp`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(path.dirname(dir), { recursive: true });
  const pglite = await PGlite.create({
    dataDir: tmp,
    ...typeOptions,
    startParams: startParams(),
  });
  const db = asDb(pglite, async () => undefined);
  try {
    const { migrate } = await import('./migrate.ts');
    await migrate(db);
  } finally {
    await db.close();
  }
  await fs.rm(path.join(tmp, 'postmaster.pid'), { force: true });
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(tmp, dir);
}

/**
 * initdb in a short-lived child process: it costs a second PostgreSQL and the initdb program in
 * one WASM heap each (~600 MB at peak), which would otherwise stay resident in the hub for good.
 */
async function initdbInChild(pgDir: string): Promise<void> {
  const pgliteUrl = import.meta.resolve('@electric-sql/pglite');
  const code = `
    const { PGlite } = await import(${JSON.stringify(pgliteUrl)});
    const [dataDir, params] = [process.argv[1], JSON.parse(process.argv[2])];
    const db = await PGlite.create({ dataDir, startParams: params });
    await db.close();`;
  const child = spawn(
    process.execPath,
    ['--input-type=module', '-e', code, pgDir, JSON.stringify(startParams())],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code_ = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (exitCode) => resolve(exitCode));
  });
  if (code_ !== 0) throw new Error(`initdb of the embedded database failed (${code_}): ${stderr.trim()}`);
}

/**
 * A new data directory: a copy of the build's template when there is one (milliseconds, and no
 * initdb in this process), else initdb in a child process.
 */
async function createDataDir(pgDir: string): Promise<void> {
  const template = await pgliteTemplateDir();
  if (!existsSync(path.join(template, 'PG_VERSION'))) return initdbInChild(pgDir);
  const tmp = `${pgDir}.${process.pid}.tmp`;
  await fs.rm(tmp, { recursive: true, force: true });
  copyTree(template, tmp);
  await fs.rename(tmp, pgDir);
}

/**
 * Copies a directory tree of plain files and directories (a data directory template), each file
 * as a copy-on-write clone where the file system can (btrfs, XFS), a plain in-kernel copy
 * elsewhere. Synchronous on purpose: the template is ~1,200 files, and the start has nothing else
 * to do meanwhile; `fs.promises.cp` took 400–650 ms of CPU for it and `fs.cpSync` 140–200 ms
 * (Node 20: both walk the tree in JavaScript, stat by stat), this 75–90 ms (README, "Performance").
 */
function copyTree(from: string, to: string): void {
  // The data directory's permissions matter to PostgreSQL: each directory keeps its own.
  mkdirSync(to, { mode: statSync(from).mode & 0o7777 });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) copyTree(source, target);
    else copyFileSync(source, target, fsConstants.COPYFILE_FICLONE);
  }
}

/** Opens the embedded PostgreSQL (PGlite) whose files live under `dataDir/pglite`. */
export async function openPglite(dataDir: string): Promise<Db> {
  await fs.mkdir(dataDir, { recursive: true });
  const unlock = await lockDataDir(dataDir);
  const pgDir = path.join(dataDir, 'pglite');
  let pglite: PGlite;
  try {
    if (!existsSync(path.join(pgDir, 'PG_VERSION'))) {
      await fs.rm(pgDir, { recursive: true, force: true });
      await createDataDir(pgDir);
    }
    // Compiled while the hub's modules loaded, when `switchboard start` began it (pglite-early.ts);
    // if that failed, PGlite reads and compiles it itself and reports what is wrong.
    const pgliteWasmModule = await compiledPgliteModule()?.catch(() => undefined);
    pglite = await PGlite.create({
      dataDir: pgDir,
      ...typeOptions,
      startParams: startParams(),
      ...(pgliteWasmModule ? { pgliteWasmModule } : {}),
    });
  } catch (err) {
    await unlock();
    throw err;
  }
  return asDb(pglite, unlock);
}

function asDb(pglite: PGlite, unlock: () => Promise<void>): Db {
  const statements = new PreparedStatements(pglite);
  const queryable = wrap(
    statements,
    // As PGlite's `query`: "PGlite is closed" rather than a call into a module that is gone.
    async (fn) => {
      await pglite._checkReady();
      return pglite._runExclusiveTransaction(() => pglite.runExclusive(fn));
    },
    (sql) => pglite.exec(sql),
  );
  return {
    kind: 'pglite',
    query: queryable.query,
    exec: queryable.exec,
    transaction: (work) =>
      pglite.transaction((tx) =>
        work(
          wrap(
            statements,
            (fn) => pglite.runExclusive(fn),
            (sql) => tx.exec(sql),
          ),
        ),
      ),
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
