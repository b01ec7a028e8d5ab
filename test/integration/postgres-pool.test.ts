import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isTransient } from '../../src/errors.ts';
import type { Db, Queryable } from '../../src/store/db.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { silentLogger } from '../helpers/database.ts';
import { TEST_DATABASE_URL } from '../setup/services.ts';

// Long enough that opening the holder's connection does not time out on a loaded machine.
const CONNECT_TIMEOUT_MS = 1_000;

/**
 * Runs `fn` in a transaction on the pool's only connection; `holding` resolves once it has the
 * connection (an immediate turn of the loop is not enough: opening it takes a while).
 */
function hold(
  db: Db,
  fn: (tx: Queryable) => Promise<unknown>,
): { holding: Promise<void>; done: Promise<unknown> } {
  let held!: () => void;
  const holding = new Promise<void>((resolve) => {
    held = resolve;
  });
  const done = db.transaction(async (tx) => {
    held();
    return fn(tx);
  });
  return { holding, done };
}

describe('PostgreSQL pool: busy is not away', () => {
  const opened: Db[] = [];
  const open = (url: string, busyPoolWaitMs?: number) => {
    const db = openPostgres({
      url,
      poolSize: 1,
      logger: silentLogger,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      ...(busyPoolWaitMs === undefined ? {} : { busyPoolWaitMs }),
    });
    opened.push(db);
    return db;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((db) => db.close()));
  });

  it('waits past the connect timeout for a connection that is in use, and gets it', async () => {
    const db = open(TEST_DATABASE_URL);
    let released = false;
    // Holds the pool's only connection past the connect timeout.
    const { holding, done: holder } = hold(db, async (tx) => {
      await tx.query('SELECT pg_sleep(2)');
      released = true;
    });
    await holding;
    const started = Date.now();
    const { rows } = await db.query<{ n: number }>('SELECT 1 AS n');
    expect(rows[0]!.n).toBe(1);
    expect(released).toBe(true);
    expect(Date.now() - started).toBeGreaterThan(CONNECT_TIMEOUT_MS);
    await holder;
  });

  it('still gives up on a busy pool after busyPoolWaitMs', async () => {
    const db = open(TEST_DATABASE_URL, CONNECT_TIMEOUT_MS * 2);
    const { holding, done: holder } = hold(db, (tx) => tx.query('SELECT pg_sleep(4)'));
    await holding;
    await expect(db.query('SELECT 1')).rejects.toThrow(/timeout exceeded when trying to connect/);
    await holder;
  });

  it('serves waiters in the order they came, however many connect timeouts they waited through', async () => {
    const db = open(TEST_DATABASE_URL);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Holds the pool's only connection until every waiter has queued and waited past the
    // connect timeout several times over.
    const { holding, done: holder } = hold(db, async (tx) => {
      await tx.query('SELECT 1');
      await gate;
    });
    await holding;
    const served: number[] = [];
    const waiters: Promise<void>[] = [];
    // Arrivals spread over a connect timeout, so that timeouts of the queue would not fire in
    // arrival order (a waiter timed out and queued again goes behind those that came after it).
    const ARRIVALS = 12;
    for (let i = 0; i < ARRIVALS; i++) {
      waiters.push(
        db.query<{ n: number }>('SELECT $1::int AS n', [i]).then(({ rows }) => {
          served.push(rows[0]!.n);
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, CONNECT_TIMEOUT_MS / ARRIVALS + 3));
    }
    await new Promise((resolve) => setTimeout(resolve, CONNECT_TIMEOUT_MS * 3));
    release();
    await holder;
    await Promise.all(waiters);
    expect(served).toEqual(Array.from({ length: ARRIVALS }, (_, i) => i));
  });

  it('keeps the connection after an SQL error (only a broken connection is thrown away)', async () => {
    const db = open(TEST_DATABASE_URL);
    const pid = async () => (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const before = await pid();
    await expect(db.query('SELECT 1/0')).rejects.toThrow(/division by zero/);
    expect(await pid()).toBe(before);
  });

  it('a server that takes connections and never answers is away after the connect timeout', async () => {
    const held: net.Socket[] = [];
    const server = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      const db = open(`postgres://postgres@127.0.0.1:${port}/postgres`);
      const err = await db.query('SELECT 1').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/connection timeout/);
      // Answered 503 with Retry-After by the HTTP layer, retried by the queue: not a bug's 500.
      expect(isTransient(err)).toBe(true);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('fails fast while the server is away', async () => {
    // A port that accepts nothing: a listener closed at once.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const db = open(`postgres://postgres@127.0.0.1:${port}/postgres`);
    await expect(db.query('SELECT 1')).rejects.toThrow(/ECONNREFUSED/);
  });
});
