import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/engine/group-commit.ts';
import type { Db } from '../../src/store/db.ts';
import { listMessages } from '../../src/store/messages.ts';
import { createSession, loadSnapshot } from '../../src/store/sessions.ts';
import type { TurnCommitResult, TurnWrite } from '../../src/store/turns.ts';
import { useTestDb } from '../helpers/database.ts';
import { capturingLogger } from '../helpers/logs.ts';

/** A person's message and the bot's reply, computed from the session's first state. */
function turn(sessionId: string, reply: string, over: Partial<TurnWrite> = {}): TurnWrite {
  return {
    sessionId,
    at: new Date(),
    bot: 'default',
    channel: 'api',
    expectedVersion: 0,
    state: { variables: { said: reply }, context: {}, kbs: [], tools: [], suggestions: [], dialog: null },
    inbound: { seq: 1, role: 'user', content: 'hello', envelopeId: `api:${randomUUID()}`, payload: {} },
    replies: [{ seq: 2, content: reply, payload: {}, deliveryStatus: 'queued' }],
    lastSeq: 2,
    messageCountDelta: 1,
    replyTo: null,
    expiresAt: null,
    memory: [{ key: `k-${sessionId}`, value: reply }],
    events: [{ type: 'test.turn', data: { reply } }],
    ...over,
  };
}

const outcome = (r: PromiseSettledResult<TurnCommitResult>) =>
  r.status === 'fulfilled' ? r.value : `rejected: ${(r.reason as Error).message}`;

/**
 * The group commit writes many sessions' turns in one statement. A turn PostgreSQL refuses (here
 * a NUL in a reply: the engine cleans those now, but any turn may hold what the database
 * refuses) failed the whole statement, and every other session's turn with it: each was retried,
 * its bot run again. Now the statement is sorted out turn by turn, and only that turn fails.
 */
describe('group commit with one turn PostgreSQL refuses (PostgreSQL)', () => {
  let db: Db;
  useTestDb('postgres', (d) => {
    db = d;
  });
  const open = async () => (await createSession(db, { bot: 'default', channel: 'api' })).snapshot.session.id;

  it("fails only that turn: the other sessions' turns of its statement commit, each once", async () => {
    const log = capturingLogger();
    const committer = new GroupCommitter(db, log.logger);
    const ids = [await open(), await open(), await open(), await open()];
    const replayed = turn(ids[3]!, 'already');
    expect(await committer.commit(replayed)).toBe('committed');
    const writes = [
      turn(ids[0]!, 'first'),
      turn(ids[1]!, 'bad \u0000 reply'),
      turn(ids[2]!, 'third'),
      // Committed before: a redelivered envelope, computed again from the newer state.
      { ...turn(ids[3]!, 'again'), expectedVersion: 1, inbound: { ...replayed.inbound, seq: 3 }, lastSeq: 4 },
    ];
    // Handed in in one tick: one statement, as under load.
    const results = await Promise.allSettled(writes.map((w) => committer.commit(w)));
    expect(results.map(outcome)).toEqual([
      'committed',
      expect.stringMatching(/^rejected: .*unsupported Unicode escape sequence/),
      'committed',
      'duplicate',
    ]);
    expect(log.lines.filter((l) => l.event === 'commit.batch_split')).toEqual([
      expect.objectContaining({ level: 40, turns: 4, reason: 'error' }),
    ]);
    expect(log.lines.filter((l) => l.event === 'commit.turn_failed')).toEqual([
      expect.objectContaining({ envelopeId: writes[1]!.inbound.envelopeId, sessionId: ids[1] }),
    ]);

    for (const [i, reply] of [
      [0, 'first'],
      [2, 'third'],
      [3, 'already'],
    ] as const) {
      const history = await listMessages(db, ids[i]!, { limit: 10 });
      expect(history.map((m) => m.content)).toEqual(['hello', reply]);
      expect((await loadSnapshot(db, ids[i]!))?.state).toMatchObject({
        version: 1,
        variables: { said: reply },
      });
    }
    expect(await listMessages(db, ids[1]!, { limit: 10 })).toEqual([]);
    expect((await loadSnapshot(db, ids[1]!))?.state.version).toBe(0);
    const { rows } = await db.query<{ session_id: string }>(
      `SELECT session_id FROM session_events WHERE type = 'test.turn' ORDER BY session_id`,
    );
    expect(rows.map((r) => r.session_id)).toEqual([ids[0], ids[2], ids[3]].sort());

    // The same turns handed in again (the queue redelivers): nothing is written twice.
    const again = await Promise.allSettled([writes[0]!, writes[2]!].map((w) => committer.commit(w)));
    expect(again.map(outcome)).toEqual(['duplicate', 'duplicate']);
    expect((await listMessages(db, ids[0]!, { limit: 10 })).length).toBe(2);
  });
});
