import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Db, Queryable } from '../../src/store/db.ts';
import { listMessages } from '../../src/store/messages.ts';
import { createSession } from '../../src/store/sessions.ts';
import { commitTurnBatch, type TurnWrite } from '../../src/store/turns.ts';
import { type Backend, useTestDb } from '../helpers/database.ts';
import { until } from '../helpers/until.ts';

/**
 * A session's history goes with it (migration 0131: a trigger on `sessions`, where a foreign key
 * on `messages` checked every history row inserted). Deleted directly, with its user, with its
 * parent; and a turn committing while the session is deleted leaves no row behind.
 */

function turnOf(sessionId: string, expectedVersion = 0): TurnWrite {
  return {
    sessionId,
    at: new Date(),
    bot: 'default',
    channel: 'api',
    expectedVersion,
    state: { variables: {}, context: {}, kbs: [], tools: [], suggestions: [], dialog: null },
    inbound: { seq: 1, role: 'user', content: 'hello', envelopeId: `api:${randomUUID()}`, payload: {} },
    replies: [{ seq: 2, content: 'hi', payload: {}, deliveryStatus: 'sent' }],
    lastSeq: 2,
    messageCountDelta: 1,
    replyTo: null,
    expiresAt: null,
    memory: [],
    events: [],
  };
}

/** History rows whose session is gone. */
async function orphans(db: Db): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM messages m WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = m.session_id)',
  );
  return rows[0]!.n;
}

const open = async (db: Db, over: { userId?: string } = {}) =>
  (await createSession(db, { bot: 'default', channel: 'api', ...over })).snapshot.session.id;

const backends: Backend[] = ['postgres', 'pglite'];

describe.each(backends)("a session's history on %s", (backend) => {
  let db: Db;
  useTestDb(backend, (opened) => {
    db = opened;
  });

  it('is deleted with the session: directly, with its user, with its parent session', async () => {
    const user = randomUUID();
    await db.query('INSERT INTO users (id) VALUES ($1)', [user]);
    const [alone, owned, parent, kept] = [
      await open(db),
      await open(db, { userId: user }),
      await open(db),
      await open(db),
    ];
    const child = randomUUID();
    await db.query(
      "INSERT INTO sessions (id, bot, channel, native_key, parent_id) VALUES ($1::uuid, 'default', 'api', $2, $3)",
      [child, `child-${child}`, parent],
    );
    await db.query('INSERT INTO session_state (session_id) VALUES ($1)', [child]);
    expect(
      await commitTurnBatch(
        db,
        [alone, owned, parent, kept, child].map((id) => turnOf(id)),
      ),
    ).toEqual(Array(5).fill('committed'));
    await db.query('DELETE FROM sessions WHERE id = $1', [alone]);
    await db.query('DELETE FROM users WHERE id = $1', [user]);
    await db.query('DELETE FROM sessions WHERE id = $1', [parent]);
    for (const id of [alone, owned, parent, child])
      expect(await listMessages(db, id, { limit: 10 })).toEqual([]);
    expect((await listMessages(db, kept, { limit: 10 })).map((m) => m.content)).toEqual(['hello', 'hi']);
    expect(await orphans(db)).toBe(0);
  });
});

describe('a session deleted while a turn commits (PostgreSQL: two connections)', () => {
  let db: Db;
  useTestDb('postgres', (opened) => {
    db = opened;
  });

  /** Waits until a statement of another connection waits for a lock. */
  const someoneWaits = () =>
    until(
      async () =>
        (
          await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'`,
          )
        ).rows[0]!.n,
      (n) => n > 0,
    );

  it('a delete that waits for the turn takes the rows the turn wrote', async () => {
    const id = await open(db);
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let written = false;
    const turn = db.transaction(async (tx) => {
      // The group commit's statement, inside a transaction held open until the delete waits.
      expect(await commitTurnBatch(tx as unknown as Db, [turnOf(id)])).toEqual(['committed']);
      written = true;
      await held;
    });
    await until(
      () => written,
      (w) => w,
    );
    const deleted = db.query('DELETE FROM sessions WHERE id = $1', [id]);
    await someoneWaits();
    release();
    await turn;
    expect((await deleted).rowCount).toBe(1);
    expect(await listMessages(db, id, { limit: 10 })).toEqual([]);
    expect(await orphans(db)).toBe(0);
  });

  it('a turn that comes after the delete writes nothing', async () => {
    const id = await open(db);
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let deletedRows: number | undefined;
    const deleting = db.transaction(async (tx: Queryable) => {
      deletedRows = (await tx.query('DELETE FROM sessions WHERE id = $1', [id])).rowCount;
      await held;
    });
    await until(
      () => deletedRows,
      (n) => n !== undefined,
    );
    const committing = commitTurnBatch(db, [turnOf(id)]);
    await someoneWaits();
    release();
    await deleting;
    expect(await committing).toEqual(['conflict']);
    expect(await orphans(db)).toBe(0);
  });

  it("a delete between the turn's state update and its history: one of the two is rolled back, no row is left", async () => {
    const id = await open(db);
    // A turn committed alone, statement by statement (src/store/turns.ts writeTurn's order).
    const steps: ((tx: Queryable) => Promise<unknown>)[] = [
      (tx) =>
        tx.query('UPDATE session_state SET version = version + 1 WHERE session_id = $1 AND version = 0', [
          id,
        ]),
      (tx) =>
        tx.query(
          `INSERT INTO messages (session_id, seq, role, content, envelope_id, delivery_status)
           VALUES ($1, 1, 'user', 'hello', $2, 'received')`,
          [id, `api:${randomUUID()}`],
        ),
      (tx) =>
        tx.query('UPDATE sessions SET last_seq = 1, message_count = message_count + 1 WHERE id = $1', [id]),
    ];
    let stateUpdated: (() => void) | undefined;
    const afterState = new Promise<void>((r) => {
      stateUpdated = r;
    });
    let resume!: () => void;
    const resumed = new Promise<void>((r) => {
      resume = r;
    });
    const turn = db
      .transaction(async (tx) => {
        await steps[0]!(tx);
        stateUpdated?.();
        await resumed;
        await steps[1]!(tx);
        await steps[2]!(tx);
      })
      .then(
        () => 'committed',
        (err: { code?: string }) => err.code,
      );
    await afterState;
    // The delete removes the session row, then waits for the state row the turn holds.
    const deleted = db.query('DELETE FROM sessions WHERE id = $1', [id]).then(
      (r) => r.rowCount,
      (err: { code?: string }) => err.code,
    );
    await someoneWaits();
    resume();
    const outcome = [await turn, await deleted];
    // 40P01: deadlock detected. Either the turn is rolled back and the session gone, or the
    // delete is, and the session keeps its history.
    expect([
      ['40P01', 1],
      ['committed', '40P01'],
    ]).toContainEqual(outcome);
    expect(await orphans(db)).toBe(0);
    const left = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM sessions WHERE id = $1', [id]);
    expect(left.rows[0]!.n).toBe(outcome[0] === 'committed' ? 1 : 0);
  });
});
