import { describe, expect, it } from 'vitest';
import { GroupCommitter, MAX_BATCHES_IN_FLIGHT } from '../../src/engine/group-commit.ts';
import { createLogger } from '../../src/logger.ts';
import type { Db } from '../../src/store/db.ts';
import type { TurnWrite } from '../../src/store/turns.ts';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A database whose statements stay open until the test finishes them; each commits every turn. */
function heldDb() {
  const open: { sessions: string[]; finish: () => void }[] = [];
  const db = {
    kind: 'postgres',
    query: (_sql: string, params: unknown[]) => {
      const rows = JSON.parse(String(params[0])) as { i: number; session_id: string }[];
      return new Promise((resolve) => {
        open.push({
          sessions: rows.map((r) => r.session_id),
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
});
