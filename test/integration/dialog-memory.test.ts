import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Db } from '../../src/store/db.ts';
import { getBotMemory } from '../../src/store/memory.ts';
import { createSession } from '../../src/store/sessions.ts';
import { commitTurn, commitTurnBatch, type TurnWrite } from '../../src/store/turns.ts';
import { type Backend, useTestDb } from '../helpers/database.ts';

const backends: Backend[] = ['postgres', 'pglite'];

/** `SET BOT MEMORY "k", NULL` commits a turn whose memory write is null: it must not fail the turn. */
describe.each(backends)('an empty bot memory value on %s', (backend) => {
  let db: Db;
  useTestDb(backend, (opened) => {
    db = opened;
  });

  const turn = (sessionId: string, value: unknown, seq: number, version: number): TurnWrite => ({
    sessionId,
    at: new Date(),
    bot: 'default',
    channel: 'api',
    expectedVersion: version,
    state: { variables: {}, context: {}, kbs: [], tools: [], suggestions: [], dialog: null },
    inbound: { seq, role: 'user', content: 'x', envelopeId: `api:${randomUUID()}`, payload: {} },
    replies: [],
    lastSeq: seq,
    messageCountDelta: 1,
    replyTo: null,
    expiresAt: null,
    memory: [{ key: `name_of_${sessionId}`, value }],
    events: [],
  });

  it('is stored as JSON null and read back as empty (one turn)', async () => {
    const { snapshot } = await createSession(db, { bot: 'default', channel: 'api' });
    const id = snapshot.session.id;
    expect(await commitTurn(db, turn(id, 'Ana', 1, 0))).toBe('committed');
    expect(await getBotMemory(db, 'default', `name_of_${id}`)).toBe('Ana');
    expect(await commitTurn(db, turn(id, null, 2, 1))).toBe('committed');
    expect(await getBotMemory(db, 'default', `name_of_${id}`)).toBeNull();
  });

  it('is stored as JSON null and read back as empty (turns committed together)', async () => {
    const a = (await createSession(db, { bot: 'default', channel: 'api' })).snapshot.session.id;
    const b = (await createSession(db, { bot: 'default', channel: 'api' })).snapshot.session.id;
    expect(await commitTurnBatch(db, [turn(a, 'Ana', 1, 0), turn(b, 'Bob', 1, 0)])).toEqual([
      'committed',
      'committed',
    ]);
    expect(await commitTurnBatch(db, [turn(a, null, 2, 1), turn(b, 'Bea', 2, 1)])).toEqual([
      'committed',
      'committed',
    ]);
    expect(await getBotMemory(db, 'default', `name_of_${a}`)).toBeNull();
    expect(await getBotMemory(db, 'default', `name_of_${b}`)).toBe('Bea');
  });
});
