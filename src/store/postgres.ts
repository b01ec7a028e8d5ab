import pg from 'pg';
import { isTransient } from '../errors.ts';
import type { Logger } from '../logger.ts';
import {
  type Db,
  INT8_OID,
  type PreparedStatement,
  parseInt8,
  type Queryable,
  type QueryResult,
} from './db.ts';

const types = new Map<number, (value: string) => unknown>([[INT8_OID, parseInt8]]);
const typeParser = {
  getTypeParser: (oid: number, format?: string) =>
    types.get(oid) ?? pg.types.getTypeParser(oid, format as 'text' | undefined),
};

export interface PostgresOptions {
  url: string;
  poolSize: number;
  logger: Logger;
  /** Runs on every new connection, e.g. `SET search_path` for a test schema. */
  onConnect?: string;
}

/** "cached plan must not change result type" (feature_not_supported). */
const PLAN_CHANGED = '0A000';

function wrap(client: pg.PoolClient | pg.Pool): Queryable {
  return {
    async query<Row>(
      sql: string | PreparedStatement,
      params?: readonly unknown[],
    ): Promise<QueryResult<Row>> {
      const values = params as unknown[] | undefined;
      const result = await client
        .query({
          ...(typeof sql === 'string' ? { text: sql } : { name: sql.name, text: sql.text }),
          values,
          types: typeParser,
        })
        .catch((err: unknown) => {
          // A migration changed a table under a prepared `SELECT *`: run it unprepared.
          if (typeof sql === 'string' || (err as { code?: string }).code !== PLAN_CHANGED) throw err;
          return client.query({ text: sql.text, values, types: typeParser });
        });
      return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
    },
    async exec(sql: string): Promise<void> {
      await client.query(sql);
    },
  };
}

export function openPostgres(options: PostgresOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize,
    // Fail fast while the server is away, so readiness reports it and callers can retry.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // A client losing its connection emits 'error': the pool listens while the client is idle,
  // this listener while it is checked out. Without one, a server restart would crash the process.
  pool.on('error', (err) => options.logger.warn({ event: 'db.idle_client_error', err: err.message }));
  pool.on('connect', (client) => {
    client.on('error', (err) => options.logger.warn({ event: 'db.client_error', err: err.message }));
    if (options.onConnect) {
      client
        .query(options.onConnect)
        .catch((err: Error) => options.logger.error({ event: 'db.on_connect_failed', err: err.message }));
    }
  });
  const queryable = wrap(pool);
  return {
    kind: 'postgres',
    query: queryable.query,
    exec: queryable.exec,
    async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await work(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        // A client whose connection failed is thrown away, not handed to the next caller.
        if (isTransient(err)) broken = err as Error;
        else await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async holdLock(key: number) {
      const client = await pool.connect();
      try {
        const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [key]);
        if (rows[0]?.ok) {
          return async () => {
            await client.query('SELECT pg_advisory_unlock($1)', [key]).catch(() => undefined);
            client.release();
          };
        }
      } catch (err) {
        client.release();
        throw err;
      }
      client.release();
      return undefined;
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      await pool.end();
    },
  };
}
