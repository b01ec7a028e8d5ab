import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/store/db.ts';
import { getBotMemory } from '../../src/store/memory.ts';
import { createSession } from '../../src/store/sessions.ts';
import { commitTurn } from '../../src/store/turns.ts';
import { type Backend, openTestDb } from '../helpers/database.ts';

const backends: Backend[] = ['postgres', 'pglite'];

/** `SET BOT MEMORY "k", NULL` commits a turn whose memory write is null: it must not fail the turn. */
describe.each(backends)('an empty bot memory value on %s', (backend) => {
  let db: Db;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ db, cleanup } = await openTestDb(backend));
  });
  afterAll(async () => {
    await cleanup();
  });

  it('is stored as JSON null and read back as empty', async () => {
    const { snapshot } = await createSession(db, { bot: 'default', channel: 'api' });
    const write = (value: unknown, seq: number, version: number) =>
      commitTurn(db, {
        sessionId: snapshot.session.id,
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
        memory: [{ key: 'name_of_u1', value }],
        events: [],
      });
    expect(await write('Ana', 1, 0)).toBe('committed');
    expect(await getBotMemory(db, 'default', 'name_of_u1')).toBe('Ana');
    expect(await write(null, 2, 1)).toBe('committed');
    expect(await getBotMemory(db, 'default', 'name_of_u1')).toBeNull();
  });
});
