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
  /** A connection attempt's limit (default CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  /** The limit of waiting for a pool whose connections are all busy (default BUSY_POOL_WAIT_MS). */
  busyPoolWaitMs?: number;
}

/** "cached plan must not change result type" (feature_not_supported). */
const PLAN_CHANGED = '0A000';

/** How long a pool's connection attempt may take before it fails. */
const CONNECT_TIMEOUT_MS = 5_000;
/**
 * How long a caller waits in all for a connection when every connection of the pool is open
 * and checked out. A burst (300 sessions opened at once against 10 connections) queues longer
 * than CONNECT_TIMEOUT_MS on a loaded machine; that is the database being busy, not away, and
 * answering 503 to it would turn a burst into errors.
 */
const BUSY_POOL_WAIT_MS = 60_000;
const POOL_WAIT_TIMEOUT = 'timeout exceeded when trying to connect';
/** What pg's Client says when its connection attempt ran out of `connectionTimeoutMillis`. */
const CLIENT_CONNECT_TIMEOUT = 'timeout expired';

/**
 * A connection from the pool: fails fast while the server is away (no connection opens), waits
 * on while the pool is full of connections in use, in its place in the pool's queue. The pool's
 * own queue timeout is not used: a waiter it timed out could only ask again at the back of the
 * queue, behind every caller that came after it, so under a sustained burst the same callers were
 * overtaken again and again (with a 5 s connect timeout, some waited the whole BUSY_POOL_WAIT_MS
 * and answered 503 while newer requests went through).
 */
function checkout(pool: pg.Pool, poolSize: number, busyWaitMs: number): Promise<pg.PoolClient> {
  // A connection at hand, or room to open one (bounded by its own connect timeout): nothing to wait
  // for, so no timer. This is every query's way in.
  if (pool.waitingCount === 0 && (pool.idleCount > 0 || pool.totalCount < poolSize)) return pool.connect();
  return waitInQueue(pool, busyWaitMs);
}

/** A place in the pool's queue, given up after `busyWaitMs`. */
async function waitInQueue(pool: pg.Pool, busyWaitMs: number): Promise<pg.PoolClient> {
  const connecting = pool.connect();
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(POOL_WAIT_TIMEOUT)), busyWaitMs);
  });
  try {
    return await Promise.race([connecting, gaveUp]);
  } catch (err) {
    // Given up: the connection the queue hands over later goes straight back.
    connecting.then(
      (client) => client.release(),
      () => undefined,
    );
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** A connection attempt that timed out, told as the pool told it: the server is away (`isTransient`). */
const connectError = (err: Error): Error =>
  err.message === CLIENT_CONNECT_TIMEOUT
    ? new Error('Connection terminated due to connection timeout', { cause: err })
    : err;

/**
 * The pool's connections: a connection attempt that takes longer than `connectTimeoutMs` fails
 * by itself (the pool's `connectionTimeoutMillis` would also limit a wait in its queue).
 */
function timedClient(connectTimeoutMs: number): typeof pg.Client {
  return class TimedClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super({
        ...(typeof config === 'string' ? { connectionString: config } : config),
        connectionTimeoutMillis: connectTimeoutMs,
      });
    }

    override connect(): Promise<pg.Client>;
    override connect(callback: (err: Error | null, client?: pg.Client) => void): void;
    override connect(
      callback?: (err: Error | null, client?: pg.Client) => void,
    ): Promise<pg.Client> | undefined {
      if (callback) {
        super.connect((err: Error | null) => callback(err ? connectError(err) : err, this));
        return undefined;
      }
      return super.connect().catch((err: Error) => {
        throw connectError(err);
      });
    }
  };
}

/**
 * Readiness's own connection, outside the pool: a ping through the pool waits behind every busy
 * connection (up to BUSY_POOL_WAIT_MS), so a burst that fills the pool would read as the
 * database being away, and every gateway would leave the load balancer's rotation at once. This
 * one connection answers `SELECT 1` whatever the pool is doing; it is opened at the first ping,
 * kept, and replaced after any failure (the next ping connects afresh: a database that is
 * really away fails there).
 */
function pinger(options: PostgresOptions): { ping(): Promise<void>; close(): Promise<void> } {
  let client: Promise<pg.Client> | undefined;
  let closed = false;
  const drop = (c: Promise<pg.Client>) => {
    if (client !== c) return;
    client = undefined;
    void c.then((open) => open.end()).catch(() => undefined);
  };
  const open = (): Promise<pg.Client> => {
    const limit = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    // A ping that hangs (a network that drops packets) fails, and its connection is replaced,
    // rather than holding every later ping behind it.
    const c = new pg.Client({
      connectionString: options.url,
      connectionTimeoutMillis: limit,
      query_timeout: limit,
    });
    const opening = c.connect().then(() => c);
    // Lost while idle (the server restarted): the next ping connects again.
    c.on('error', (err) => {
      options.logger.debug({ event: 'db.ping_client_error', err: err.message });
      drop(opening);
    });
    return opening;
  };
  return {
    async ping() {
      if (closed) throw new Error('the database is closed');
      client ??= open();
      const current = client;
      try {
        await (await current).query('SELECT 1');
      } catch (err) {
        drop(current);
        throw err;
      }
    },
    async close() {
      closed = true;
      const c = client;
      client = undefined;
      await c?.then((open) => open.end()).catch(() => undefined);
    },
  };
}

function wrap(client: pg.PoolClient | (() => Promise<pg.PoolClient>)): Queryable {
  if (typeof client === 'function') return wrapPool(client);
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

/** Each query on a connection of its own for its duration, like `pool.query`. */
function wrapPool(connect: () => Promise<pg.PoolClient>): Queryable {
  const run = async <T>(work: (q: Queryable) => Promise<T>): Promise<T> => {
    const client = await connect();
    let broken: Error | undefined;
    try {
      return await work(wrap(client));
    } catch (err) {
      // A connection that failed is thrown away; one that answered with an SQL error is fine.
      if (isTransient(err)) broken = err as Error;
      throw err;
    } finally {
      client.release(broken);
    }
  };
  return {
    query: (sql, params) => run((q) => q.query(sql, params)),
    exec: (sql) => run((q) => q.exec(sql)),
  };
}

export function openPostgres(options: PostgresOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize,
    // Fail fast while the server is away, so readiness reports it and callers can retry.
    Client: timedClient(options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS),
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
  const busyWaitMs = options.busyPoolWaitMs ?? BUSY_POOL_WAIT_MS;
  const readiness = pinger(options);
  const connect = () => checkout(pool, options.poolSize, busyWaitMs);
  const queryable = wrap(connect);
  return {
    kind: 'postgres',
    query: queryable.query,
    exec: queryable.exec,
    async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await connect();
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
      const client = await connect();
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
    ping: () => readiness.ping(),
    async close() {
      await readiness.close();
      await pool.end();
    },
  };
}
