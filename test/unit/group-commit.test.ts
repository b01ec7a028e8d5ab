import { describe, expect, it } from 'vitest';
import { GroupCommitter, MAX_BATCH_MESSAGES, MAX_BATCHES_IN_FLIGHT } from '../../src/engine/group-commit.ts';
import { createLogger } from '../../src/logger.ts';
import type { Db } from '../../src/store/db.ts';
import type { TurnWrite } from '../../src/store/turns.ts';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A database whose statements stay open until the test finishes them; each commits every turn. */
function heldDb() {
  const open: { sessions: string[]; messages: number; finish: () => void }[] = [];
  const db = {
    kind: 'postgres',
    query: (_sql: string, params: unknown[]) => {
      const rows = JSON.parse(String(params[0])) as { i: number; session_id: string }[];
      return new Promise((resolve) => {
        open.push({
          sessions: rows.map((r) => r.session_id),
          messages: (JSON.parse(String(params[1])) as unknown[]).length,
          finish: () => resolve({ rows: rows.map((r) => ({ i: r.i })), rowCount: rows.length }),
        });
      });
    },
  } as unknown as Db;
  return { db, open };
}

const write = (sessionId: string, version = 1): TurnWrite => ({
  sessionId,
  at: new Date(),
  bot: 'default',
  channel: 'api',
  expectedVersion: version,
  state: { variables: {}, context: {}, kbs: [], tools: [], suggestions: [] } as unknown as TurnWrite['state'],
  inbound: {
    seq: version,
    role: 'user',
    content: 'hi',
    envelopeId: `api:${sessionId}:${version}`,
    payload: {},
  },
  replies: [],
  lastSeq: version,
  messageCountDelta: 1,
  replyTo: null,
  expiresAt: null,
  memory: [],
  events: [],
});

describe('GroupCommitter', () => {
  it('has several statements in flight, over disjoint sessions; a session waits for its own', async () => {
    const { db, open } = heldDb();
    const committer = new GroupCommitter(db, createLogger('silent'));
    const done: string[] = [];
    const commit = (session: string, version = 1) =>
      committer.commit(write(session, version)).then(() => done.push(`${session}@${version}`));
    const all = [commit('a')];
    await tick();
    expect(open).toHaveLength(1);
    // Handed in while the first is in flight: a statement of their own, at once.
    all.push(commit('a', 2), commit('b'));
    await tick();
    expect(open).toHaveLength(2);
    expect(open[1]!.sessions).toEqual(['b']); // a's second turn waits for its first
    // Each tick's turns are one statement more, up to MAX_BATCHES_IN_FLIGHT; then they wait.
    for (let i = 0; i < MAX_BATCHES_IN_FLIGHT; i++) {
      all.push(commit(`c${i}`));
      await tick();
    }
    expect(open).toHaveLength(MAX_BATCHES_IN_FLIGHT);
    all.push(commit('d'));
    await tick();
    expect(open).toHaveLength(MAX_BATCHES_IN_FLIGHT);
    open[0]!.finish();
    await tick();
    await tick();
    expect(done).toEqual(['a@1']);
    // The room left by a's first statement: a's second turn goes now, with the turns waiting.
    expect(open).toHaveLength(MAX_BATCHES_IN_FLIGHT + 1);
    expect(open[MAX_BATCHES_IN_FLIGHT]!.sessions).toContain('a');
    for (let i = 1; i < open.length; i++) open[i]!.finish();
    await tick();
    await tick();
    for (const s of open) s.finish();
    await Promise.all(all);
    expect(done.indexOf('a@1')).toBeLessThan(done.indexOf('a@2'));
    expect(done).toHaveLength(2 + 1 + MAX_BATCHES_IN_FLIGHT + 1);
  });

  it("caps a statement's messages: a lane's held turns count, each with its replies", async () => {
    const { db, open } = heldDb();
    const committer = new GroupCommitter(db, createLogger('silent'));
    // Each write: 10 turns of a lane, each a person's message and one reply (20 history rows).
    const held = (session: string): TurnWrite => {
      const reply = { seq: 2, content: 'ok', payload: {}, deliveryStatus: 'queued' as const };
      const turn = { at: new Date(), inbound: write(session).inbound, replies: [reply] };
      return { ...write(session), replies: [reply], chained: Array.from({ length: 9 }, () => turn) };
    };
    const writes = Math.ceil((2 * MAX_BATCH_MESSAGES) / 20) + 1;
    // One statement in flight first, so that the rest are handed in together and wait for room.
    const first = committer.commit(write('first'));
    await tick();
    const all = Array.from({ length: writes }, (_, i) => committer.commit(held(`s${i}`)));
    await tick();
    const statements = open.slice(1);
    expect(statements.length).toBeGreaterThanOrEqual(3);
    for (const s of statements) expect(s.messages).toBeLessThanOrEqual(MAX_BATCH_MESSAGES);
    expect(statements[0]!.messages).toBe(Math.floor(MAX_BATCH_MESSAGES / 20) * 20);
    expect(statements.reduce((n, s) => n + s.sessions.length, 0)).toBe(writes);
    for (const s of open) s.finish();
    await Promise.all([first, ...all]);
  });
});

describe('GroupCommitter, a statement that fails', () => {
  it('fails every turn of it when the database is away, without trying each again', async () => {
    let statements = 0;
    let transactions = 0;
    const away = Object.assign(new Error('Connection terminated unexpectedly'), { code: '08006' });
    const db = {
      kind: 'postgres',
      query: async () => {
        statements++;
        throw away;
      },
      transaction: async () => {
        transactions++;
        throw away;
      },
    } as unknown as Db;
    const committer = new GroupCommitter(db, createLogger('silent'));
    const results = await Promise.allSettled(['a', 'b', 'c'].map((s) => committer.commit(write(s))));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(statements).toBe(1);
    expect(transactions).toBe(0);
  });
});
