import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Envelope } from '../../src/envelope.ts';
import { type Db, prepared } from '../../src/store/db.ts';
import {
  failedInbox,
  inboxCounts,
  insertInbox,
  insertInboxBatch,
  markInboxProcessed,
  pendingInbox,
  pruneInbox,
  recordInboxAttempt,
} from '../../src/store/inbox.ts';
import { getBotMemory } from '../../src/store/memory.ts';
import {
  applyPlatformStatus,
  isEnvelopeRecorded,
  listMessages,
  queuedReplies,
  recordDeliveries,
  requeueFailedReplies,
  sessionsWithStaleReplies,
  undeliveredReplies,
  updateDelivery,
} from '../../src/store/messages.ts';
import { migrate } from '../../src/store/migrate.ts';
import { personRepliesTo } from '../../src/store/person-history.ts';
import {
  createContactSession,
  createSession,
  endSession,
  findOpenSnapshotByKey,
  findSessionByTokenHash,
  loadSnapshot,
  revokeToken,
} from '../../src/store/sessions.ts';
import { chainable, chainTurns, commitTurn, commitTurnBatch, type TurnWrite } from '../../src/store/turns.ts';
import { userForIdentity } from '../../src/store/users.ts';
import { type Backend, useTestDb } from '../helpers/database.ts';

function turn(sessionId: string, over: Partial<TurnWrite> = {}): TurnWrite {
  return {
    sessionId,
    at: new Date(),
    bot: 'default',
    channel: 'api',
    expectedVersion: 0,
    state: { variables: { a: 1 }, context: {}, kbs: [], tools: [], suggestions: [], dialog: null },
    inbound: { seq: 1, role: 'user', content: 'hello', envelopeId: `api:${randomUUID()}`, payload: {} },
    replies: [
      { seq: 2, content: 'hi', payload: { suggestions: [{ text: 'Yes' }] }, deliveryStatus: 'queued' },
    ],
    lastSeq: 2,
    messageCountDelta: 1,
    replyTo: { conversation: 'c1' },
    expiresAt: null,
    memory: [{ key: 'greeted', value: [1, 2] }],
    events: [{ type: 'test.event', data: { x: 1 } }],
    ...over,
  };
}

/** Three turns of a session, each computed from the one before: seq 1-2 (`m0`, `r0`), 3-4, 5-6. */
function threeTurns(id: string, base = 0, over: Partial<TurnWrite> = {}): TurnWrite[] {
  return [0, 1, 2].map((k) =>
    turn(id, {
      memory: [],
      events: [],
      at: new Date(Date.UTC(2026, 0, 1, 0, 0, k)),
      expectedVersion: base + k,
      state: { variables: { step: k }, context: {}, kbs: [], tools: [], suggestions: [], dialog: null },
      inbound: {
        seq: 2 * k + 1,
        role: 'user',
        content: `m${k}`,
        envelopeId: `api:${randomUUID()}`,
        payload: {},
      },
      replies: [{ seq: 2 * k + 2, content: `r${k}`, payload: {}, deliveryStatus: 'queued' }],
      lastSeq: 2 * k + 2,
      replyTo: k === 1 ? { conversation: 'c2' } : null,
      ...over,
    }),
  );
}

const backends: Backend[] = ['postgres', 'pglite'];

describe.each(backends)('store on %s', (backend) => {
  let db: Db;
  useTestDb(backend, (opened) => {
    db = opened;
  });

  it('applies migrations once; running them again changes nothing', async () => {
    expect(await migrate(db)).toEqual([]);
    const { rows } = await db.query<{ version: string }>(
      'SELECT version FROM schema_migrations ORDER BY version',
    );
    expect(rows.map((r) => r.version)).toContain('0001_init');
  });

  it("indexes no sessions column a turn's update writes, and leaves room on its pages: the update is HOT", async () => {
    // commitTurn / commitTurnBatch set these on every turn (src/store/turns.ts); an index that
    // names one (or a predicate on one) makes each turn write an entry into every index (issue 19).
    const written = ['last_seq', 'message_count', 'last_activity_at', 'reply_to', 'expires_at'];
    const { rows } = await db.query<{ indexname: string; indexdef: string }>(
      "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'sessions'",
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const { indexname, indexdef } of rows) {
      for (const column of written) expect(indexdef, indexname).not.toMatch(new RegExp(`\\b${column}\\b`));
    }
    const { rows: options } = await db.query<{ reloptions: string[] | null }>(
      "SELECT reloptions FROM pg_class WHERE oid = 'sessions'::regclass",
    );
    expect(options[0]?.reloptions).toContain('fillfactor=85');
    // The same for the state row every turn rewrites (its only index is the primary key).
    const { rows: state } = await db.query<{ reloptions: string[] | null }>(
      "SELECT reloptions FROM pg_class WHERE oid = 'session_state'::regclass",
    );
    expect(state[0]?.reloptions).toContain('fillfactor=70');
  });

  it('keeps envelope ids unique without an index entry for the rows that have none (replies, notes)', async () => {
    const { rows } = await db.query<{ indexdef: string }>(
      "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'messages' AND indexdef LIKE '%(envelope_id)%'",
    );
    expect(rows.map((r) => r.indexdef)).toEqual([
      expect.stringMatching(/^CREATE UNIQUE INDEX .* \(envelope_id\) WHERE \(envelope_id IS NOT NULL\)$/),
    ]);
  });

  it('creates a session with empty state, and finds it by key and by token hash', async () => {
    const tokenHash = Buffer.alloc(32, 7);
    const { snapshot, created } = await createSession(db, {
      bot: 'default',
      channel: 'api',
      tokenHash,
      expiresAt: new Date(Date.now() + 60_000),
    });
    expect(created).toBe(true);
    expect(snapshot.state).toEqual({
      variables: {},
      context: {},
      kbs: [],
      tools: [],
      suggestions: [],
      dialog: null,
      version: 0,
    });
    expect(snapshot.session).toMatchObject({
      bot: 'default',
      channel: 'api',
      nativeKey: snapshot.session.id,
      authLevel: 'anonymous',
      lastSeq: 0,
      messageCount: 0,
    });
    const byKey = await findOpenSnapshotByKey(db, {
      bot: 'default',
      channel: 'api',
      nativeKey: snapshot.session.id,
    });
    expect(byKey?.session.id).toBe(snapshot.session.id);
    const byToken = await findSessionByTokenHash(db, tokenHash);
    expect(byToken?.id).toBe(snapshot.session.id);
    expect(byToken?.tokenHash.equals(tokenHash)).toBe(true);
    await revokeToken(db, snapshot.session.id);
    expect(await findSessionByTokenHash(db, tokenHash)).toBeUndefined();
  });

  it('keeps one open session per key, even when created concurrently; an ended one can be followed by a new one', async () => {
    const key = { bot: 'default', channel: 'whatsapp' as const, nativeKey: `+4915${Date.now()}` };
    const results = await Promise.all(Array.from({ length: 5 }, () => createSession(db, key)));
    const ids = new Set(results.map((r) => r.snapshot.session.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const [first] = ids;
    expect(await endSession(db, first!, 'test')).toBe(true);
    expect(await endSession(db, first!, 'test')).toBe(false);
    const next = await createSession(db, key);
    expect(next.created).toBe(true);
    expect(next.snapshot.session.id).not.toBe(first);
  });

  it('commits a turn: state, inbound and replies, counters, memory and events together', async () => {
    const { snapshot } = await createSession(db, { bot: 'default', channel: 'api' });
    const id = snapshot.session.id;
    const write = turn(id);
    expect(await commitTurn(db, write)).toBe('committed');
    const after = await loadSnapshot(db, id);
    expect(after?.state).toMatchObject({ variables: { a: 1 }, version: 1 });
    expect(after?.session).toMatchObject({ lastSeq: 2, messageCount: 1, replyTo: { conversation: 'c1' } });
    const messages = await listMessages(db, id, { limit: 10 });
    expect(messages.map((m) => [m.seq, m.role, m.content, m.deliveryStatus])).toEqual([
      [1, 'user', 'hello', 'received'],
      [2, 'assistant', 'hi', 'queued'],
    ]);
    expect(messages[1]?.payload).toEqual({ suggestions: [{ text: 'Yes' }] });
    expect((await personRepliesTo(db, write.inbound.envelopeId)).map((m) => m.content)).toEqual(['hi']);
    expect(await isEnvelopeRecorded(db, write.inbound.envelopeId)).toBe(true);
    expect(await getBotMemory(db, 'default', 'greeted')).toEqual([1, 2]);
    const events = await db.query<{ type: string; data: unknown }>(
      'SELECT type, data FROM session_events WHERE session_id = $1',
      [id],
    );
    expect(events.rows).toEqual([{ type: 'test.event', data: { x: 1 } }]);
  });

  it('refuses a replayed envelope and a stale version, writing nothing', async () => {
    const { snapshot } = await createSession(db, { bot: 'default', channel: 'api' });
    const id = snapshot.session.id;
    const first = turn(id);
    expect(await commitTurn(db, first)).toBe('committed');
    // Same envelope, computed from the new state: a replay.
    const replay = turn(id, {
      expectedVersion: 1,
      inbound: { ...first.inbound, seq: 3 },
      replies: [],
      lastSeq: 3,
    });
    expect(await commitTurn(db, replay)).toBe('duplicate');
    // A new envelope computed from the old state: another writer got there first.
    const stale = turn(id, {
      expectedVersion: 0,
      inbound: { ...first.inbound, envelopeId: `api:${randomUUID()}`, seq: 3 },
      lastSeq: 3,
    });
    expect(await commitTurn(db, stale)).toBe('conflict');
    expect((await listMessages(db, id, { limit: 10 })).length).toBe(2);
    expect((await loadSnapshot(db, id))?.state.version).toBe(1);
  });

  it('group-commits several sessions in one statement, each turn on its own merits', async () => {
    const ids = [];
    for (let i = 0; i < 4; i++)
      ids.push((await createSession(db, { bot: 'default', channel: 'api' })).snapshot.session.id);
    const [a, b, c, d] = ids as [string, string, string, string];
    const first = turn(b, { memory: [], events: [] });
    expect(await commitTurn(db, first)).toBe('committed');
    const batch = [
      turn(a, { memory: [{ key: `k-${a}`, value: 'A' }], events: [{ type: 'batch.a', data: {} }] }),
      // b: the same envelope again, computed from the new state: a replay.
      turn(b, {
        expectedVersion: 1,
        inbound: { ...first.inbound, seq: 3 },
        lastSeq: 4,
        memory: [],
        events: [],
      }),
      // c: computed from a version it never had: another writer won.
      turn(c, { expectedVersion: 7, memory: [], events: [] }),
      turn(d, { replyTo: null, end: { reason: 'done' }, memory: [], events: [] }),
    ];
    expect(await commitTurnBatch(db, batch)).toEqual(['committed', 'duplicate', 'conflict', 'committed']);
    expect((await listMessages(db, a, { limit: 10 })).map((m) => m.content)).toEqual(['hello', 'hi']);
    expect((await listMessages(db, b, { limit: 10 })).length).toBe(2);
    expect((await listMessages(db, c, { limit: 10 })).length).toBe(0);
    expect((await loadSnapshot(db, c))?.state.version).toBe(0);
    const snapD = await loadSnapshot(db, d);
    expect(snapD?.session).toMatchObject({ lastSeq: 2, messageCount: 1, replyTo: null });
    expect(snapD?.session.endedAt).not.toBeNull();
    expect(await getBotMemory(db, 'default', `k-${a}`)).toBe('A');
    const events = await db.query('SELECT type FROM session_events WHERE session_id = $1', [a]);
    expect(events.rows).toEqual([{ type: 'batch.a' }]);
  });

  it("commits a lane's consecutive turns as one write: each message at its own time, the state once, the version once per turn", async () => {
    const plain = { memory: [], events: [] };
    const chain = (id: string, base = 0) => threeTurns(id, base);
    const alone = await createSession(db, { bot: 'default', channel: 'api' });
    const batched = await createSession(db, { bot: 'default', channel: 'api' });
    const other = await createSession(db, { bot: 'default', channel: 'api' });
    const turnsAlone = chain(alone.snapshot.session.id);
    const turnsBatched = chain(batched.snapshot.session.id);
    expect(turnsAlone.every(chainable)).toBe(true);
    expect(chainable(turn(alone.snapshot.session.id))).toBe(false); // it writes memory and events
    // One commits alone (its own transaction), one inside a group commit beside another session's turn.
    expect(await commitTurn(db, chainTurns(turnsAlone))).toBe('committed');
    expect(
      await commitTurnBatch(db, [chainTurns(turnsBatched), turn(other.snapshot.session.id, plain)]),
    ).toEqual(['committed', 'committed']);
    for (const [id, turns] of [
      [alone.snapshot.session.id, turnsAlone],
      [batched.snapshot.session.id, turnsBatched],
    ] as const) {
      const after = await loadSnapshot(db, id);
      expect(after?.state).toMatchObject({ variables: { step: 2 }, version: 3 });
      expect(after?.session).toMatchObject({ lastSeq: 6, messageCount: 3, replyTo: { conversation: 'c2' } });
      expect(after?.session.lastActivityAt).toBe(turns[2]!.at.toISOString());
      const messages = await listMessages(db, id, { limit: 10 });
      expect(messages.map((m) => [m.seq, m.content, new Date(m.createdAt).getTime()])).toEqual(
        turns.flatMap((t, k) => [
          [2 * k + 1, `m${k}`, t.at.getTime()],
          [2 * k + 2, `r${k}`, t.at.getTime()],
        ]),
      );
      expect((await personRepliesTo(db, turns[1]!.inbound.envelopeId)).map((m) => m.content)).toEqual(['r1']);
      for (const t of turns) expect(await isEnvelopeRecorded(db, t.inbound.envelopeId)).toBe(true);
    }
    // A chain one of whose envelopes is recorded already writes nothing, alone or in a batch.
    const third = await createSession(db, { bot: 'default', channel: 'api' });
    const id = third.snapshot.session.id;
    const replayed = chain(id);
    replayed[1] = {
      ...replayed[1]!,
      inbound: { ...replayed[1]!.inbound, envelopeId: turnsAlone[0]!.inbound.envelopeId },
    };
    expect(await commitTurn(db, chainTurns(replayed))).toBe('duplicate');
    await expect(commitTurnBatch(db, [chainTurns(replayed)])).rejects.toMatchObject({ code: '23505' });
    // Computed from a version the state no longer has: refused whole.
    expect(await commitTurn(db, chainTurns(chain(alone.snapshot.session.id, 1)))).toBe('conflict');
    expect(await listMessages(db, id, { limit: 10 })).toEqual([]);
    expect((await loadSnapshot(db, id))?.state.version).toBe(0);
    expect((await listMessages(db, alone.snapshot.session.id, { limit: 10 })).length).toBe(6);
  });

  it("writes a statement's message webhooks: one event per message and subscribed endpoint, one id per message, a session's in order", async () => {
    const plain = { memory: [], events: [] };
    await db.query(
      `INSERT INTO webhook_endpoints (endpoint, bot, url, events) VALUES
         ('st-all', 'hooked', 'http://127.0.0.1:9/a', '{message.received,message.sent}'),
         ('st-sent', 'hooked', 'http://127.0.0.1:9/b', '{message.sent}'),
         ('st-other', 'other-bot', 'http://127.0.0.1:9/c', '{message.received,message.sent}')`,
    );
    try {
      const open = async (bot: string) =>
        (await createSession(db, { bot, channel: 'api' })).snapshot.session.id;
      const [a, b, c, alone] = [
        await open('hooked'),
        await open('hooked'),
        await open('default'),
        await open('hooked'),
      ];
      const chained = threeTurns(a, 0, { bot: 'hooked' });
      expect(
        await commitTurnBatch(db, [
          chainTurns(chained),
          turn(b, { ...plain, bot: 'hooked' }),
          turn(c, plain),
        ]),
      ).toEqual(['committed', 'committed', 'committed']);
      // A turn committed alone: its inbound row and its replies are statements of their own.
      expect(await commitTurn(db, turn(alone, { ...plain, bot: 'hooked' }))).toBe('committed');
      const { rows } = await db.query<{
        endpoint: string;
        session_id: string;
        type: string;
        event_id: string;
        data: { seq: number; text: string };
      }>(
        `SELECT endpoint, session_id, type, event_id, data FROM webhook_outbox
         WHERE endpoint LIKE 'st-%' ORDER BY id`,
      );
      const of = (endpoint: string, session: string) =>
        rows
          .filter((r) => r.endpoint === endpoint && r.session_id === session)
          .map((r) => [r.type, r.data.seq, r.data.text]);
      expect(of('st-all', a)).toEqual([
        ['message.received', 1, 'm0'],
        ['message.sent', 2, 'r0'],
        ['message.received', 3, 'm1'],
        ['message.sent', 4, 'r1'],
        ['message.received', 5, 'm2'],
        ['message.sent', 6, 'r2'],
      ]);
      expect(of('st-sent', a)).toEqual([
        ['message.sent', 2, 'r0'],
        ['message.sent', 4, 'r1'],
        ['message.sent', 6, 'r2'],
      ]);
      for (const session of [b, alone]) {
        expect(of('st-all', session)).toEqual([
          ['message.received', 1, 'hello'],
          ['message.sent', 2, 'hi'],
        ]);
        expect(of('st-sent', session)).toEqual([['message.sent', 2, 'hi']]);
      }
      // Nothing for a bot no endpoint takes, nor for another bot's endpoint.
      expect(rows.filter((r) => r.session_id === c || r.endpoint === 'st-other')).toEqual([]);
      // Every endpoint gets a message under the same event id; each message has its own.
      const idOf = new Map<string, string>();
      for (const r of rows) {
        const key = `${r.session_id}/${r.data.seq}`;
        expect(idOf.get(key) ?? r.event_id, key).toBe(r.event_id);
        idOf.set(key, r.event_id);
      }
      expect(new Set(idOf.values()).size).toBe(idOf.size);
    } finally {
      await db.query("DELETE FROM webhook_outbox WHERE endpoint LIKE 'st-%'");
      await db.query("DELETE FROM webhook_endpoints WHERE endpoint LIKE 'st-%'");
    }
  });

  it('pages history forwards and backwards by sequence number', async () => {
    const { snapshot } = await createSession(db, { bot: 'default', channel: 'api' });
    const id = snapshot.session.id;
    for (let i = 0; i < 5; i++) {
      const seq = i * 2 + 1;
      await commitTurn(
        db,
        turn(id, {
          expectedVersion: i,
          inbound: { seq, role: 'user', content: `m${i}`, envelopeId: `api:${randomUUID()}`, payload: {} },
          replies: [{ seq: seq + 1, content: `r${i}`, payload: {}, deliveryStatus: 'sent' }],
          lastSeq: seq + 1,
          memory: [],
          events: [],
        }),
      );
    }
    expect((await listMessages(db, id, { afterSeq: 0, limit: 3 })).map((m) => m.seq)).toEqual([1, 2, 3]);
    expect((await listMessages(db, id, { afterSeq: 3, limit: 3 })).map((m) => m.seq)).toEqual([4, 5, 6]);
    expect((await listMessages(db, id, { beforeSeq: 11, limit: 3 })).map((m) => m.seq)).toEqual([8, 9, 10]);
  });

  it('tracks delivery: attempts, platform ids, and statuses that never move backwards', async () => {
    const { snapshot } = await createSession(db, { bot: 'default', channel: 'api' });
    const id = snapshot.session.id;
    await commitTurn(db, turn(id, { memory: [], events: [] }));
    expect(
      (await undeliveredReplies(db, new Date(Date.now() + 60_000), 100)).some((m) => m.sessionId === id),
    ).toBe(true);
    await updateDelivery(db, {
      sessionId: id,
      seq: 2,
      status: 'sent',
      channelMessageId: `wamid.${id}`,
      attempted: true,
    });
    expect(await applyPlatformStatus(db, `wamid.${id}`, 'read')).toBe(1);
    expect(await applyPlatformStatus(db, `wamid.${id}`, 'delivered')).toBe(0);
    const [reply] = await listMessages(db, id, { afterSeq: 1, limit: 1 });
    expect(reply).toMatchObject({
      deliveryStatus: 'read',
      deliveryAttempts: 1,
      channelMessageId: `wamid.${id}`,
    });
    expect(await applyPlatformStatus(db, `wamid.${id}`, 'failed', 'expired')).toBe(1);
  });

  it("keeps a failed reply's retry time: not due, and not stale for the sweep, until then; a replay starts its wait afresh", async () => {
    const { snapshot } = await createSession(db, { bot: 'default', channel: 'api' });
    const id = snapshot.session.id;
    await commitTurn(db, turn(id, { memory: [], events: [] }));
    const [fresh] = await queuedReplies(db, id);
    expect(fresh).toMatchObject({ seq: 2, dueInMs: 0 });
    // An hour ago, to the sweep's eyes: a reply whose sender died is found.
    await db.query(`UPDATE messages SET updated_at = now() - interval '1 hour' WHERE session_id = $1`, [id]);
    expect(await sessionsWithStaleReplies(db, 30_000, 100)).toContain(id);

    // A failed attempt: retried in 10 minutes. Not due, and its sender is not dead: the sweep leaves it.
    await recordDeliveries(db, id, [
      { seq: 2, status: 'queued', error: 'platform down', retryInMs: 600_000 },
    ]);
    const [waiting] = await queuedReplies(db, id);
    expect(waiting!.deliveryAttempts).toBe(1);
    expect(waiting!.dueInMs).toBeGreaterThan(590_000);
    expect(waiting!.dueInMs).toBeLessThanOrEqual(600_000);
    expect(await sessionsWithStaleReplies(db, 0, 100)).not.toContain(id);
    // Its retry's job lost: the sweep finds it once the retry is overdue.
    await db.query(
      `UPDATE messages SET delivery_next_attempt_at = now() - interval '1 minute', created_at = now() - interval '5 hours'
       WHERE session_id = $1 AND seq = 2`,
      [id],
    );
    expect(await sessionsWithStaleReplies(db, 30_000, 100)).toContain(id);
    const [overdue] = await queuedReplies(db, id);
    expect(overdue!.dueInMs).toBe(0);
    expect(overdue!.queuedForMs).toBeGreaterThanOrEqual(5 * 3600_000);

    // Given up, then replayed by an operator: due now, its wait counted from the replay.
    await recordDeliveries(db, id, [{ seq: 2, status: 'failed', error: 'platform down' }]);
    expect(await requeueFailedReplies(db, id)).toEqual([id]);
    const [replayed] = await queuedReplies(db, id);
    expect(replayed).toMatchObject({ deliveryAttempts: 0, dueInMs: 0 });
    expect(replayed!.queuedForMs).toBeLessThan(60_000);
  });

  it('links a channel identity to one user, even when first seen by two processes at once', async () => {
    const identity = { channel: 'email' as const, nativeId: `${randomUUID()}@example.com`, name: 'Ana' };
    const users = await Promise.all(Array.from({ length: 4 }, () => userForIdentity(db, identity)));
    expect(new Set(users).size).toBe(1);
    const { rows } = await db.query('SELECT count(*)::int AS n FROM users WHERE id = $1', [users[0]]);
    expect(rows[0]).toEqual({ n: 1 });
  });

  it("opens a person's first session in one statement: user, identity, state, start event and last interaction", async () => {
    const phone = `+1555${Math.floor(Math.random() * 1e7)}`;
    const contact = (bot: string, nativeKey: string) => ({
      bot,
      channel: 'whatsapp' as const,
      nativeKey,
      identity: { nativeId: phone, name: 'Ana' },
      replyTo: { to: phone },
      meta: { name: 'Ana' },
    });
    const first = await createContactSession(db, contact('default', phone));
    expect(first.session).toMatchObject({
      bot: 'default',
      nativeKey: phone,
      authLevel: 'anonymous',
      lastSeq: 0,
    });
    expect(first.session.meta).toEqual({ name: 'Ana' });
    expect(first.state.version).toBe(0);
    expect(first.session.userId).toBe(await userForIdentity(db, { channel: 'whatsapp', nativeId: phone }));
    const events = await db.query<{ type: string }>('SELECT type FROM session_events WHERE session_id = $1', [
      first.session.id,
    ]);
    expect(events.rows).toEqual([{ type: 'session.start' }]);

    // The same person with another bot: the same user, and when they last talked with... that bot only.
    const other = await createContactSession(db, contact('other-bot', phone));
    expect(other.session.userId).toBe(first.session.userId);
    expect(other.session.meta.lastInteractionAt).toBeUndefined();
    await endSession(db, first.session.id, 'test');
    const again = await createContactSession(db, contact('default', phone));
    expect(again.session.meta.lastInteractionAt).toBe(first.session.lastActivityAt);

    // A second open session for the key changes nothing: the caller falls back to createSession.
    await expect(createContactSession(db, contact('default', phone))).rejects.toMatchObject({
      code: '23505',
    });
    const { rows } = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM users u JOIN user_identities i ON i.user_id = u.id WHERE i.native_id = $1',
      [phone],
    );
    expect(rows[0]).toEqual({ n: 1 });
  });

  it('runs a prepared statement again after a migration changed the columns it returns', async () => {
    const table = `probe_${randomUUID().replaceAll('-', '')}`;
    await db.exec(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
    await db.query(`INSERT INTO ${table} (id) VALUES (1)`);
    const select = prepared(`select_${table}`, `SELECT * FROM ${table} WHERE id = $1`);
    // Prepared on every connection of the pool.
    const before = await Promise.all(Array.from({ length: 12 }, () => db.query(select, [1])));
    expect(before.map((r) => r.rows)).toEqual(Array.from({ length: 12 }, () => [{ id: 1 }]));
    await db.exec(`ALTER TABLE ${table} ADD COLUMN note text NOT NULL DEFAULT 'added'`);
    const after = await Promise.all(Array.from({ length: 12 }, () => db.query(select, [1])));
    expect(after.map((r) => r.rows)).toEqual(Array.from({ length: 12 }, () => [{ id: 1, note: 'added' }]));
    await db.exec(`DROP TABLE ${table}`);
  });

  it('keeps the inbox: duplicates refused, pending in order, failures kept, processed pruned', async () => {
    const env = (n: number): Envelope => ({
      id: `api:inbox-${backend}-${n}`,
      kind: 'message',
      channel: 'api',
      bot: 'default',
      from: { id: 'x' },
      text: `t${n}`,
      attachments: [],
      meta: {},
      receivedAt: new Date().toISOString(),
    });
    const a = await insertInbox(db, 'lane', env(1));
    const b = await insertInbox(db, 'lane', env(2));
    const c = await insertInbox(db, 'lane', env(3));
    expect(await insertInbox(db, 'lane', env(1))).toBeUndefined();
    expect((await pendingInbox(db)).map((e) => e.envelope.id)).toEqual([env(1).id, env(2).id, env(3).id]);
    await markInboxProcessed(db, [a!.id]);
    await recordInboxAttempt(db, b!.id, 'boom', true);
    expect((await pendingInbox(db)).map((e) => e.id)).toEqual([c!.id]);
    expect(await failedInbox(db)).toMatchObject([{ id: b!.id, lastError: 'boom', attempts: 1 }]);
    // What `switchboard queue status` says of an embedded hub's queue.
    expect(await inboxCounts(db)).toEqual({ pending: 1, failed: 1 });
    expect(await pruneInbox(db, 0)).toBe(1);
  });

  it('writes a batch of envelopes to the inbox in order, refusing duplicates of the table and of the batch', async () => {
    const env = (n: number): Envelope => ({
      id: `api:batch-${backend}-${n}`,
      kind: 'message',
      channel: 'api',
      bot: 'default',
      from: { id: 'x' },
      text: `t${n}`,
      attachments: [],
      meta: {},
      receivedAt: new Date().toISOString(),
    });
    const first = await insertInbox(db, 'lane-a', env(1));
    const entries = await insertInboxBatch(db, [
      { lane: 'lane-a', envelope: env(2) },
      { lane: 'lane-b', envelope: env(1) },
      { lane: 'lane-b', envelope: env(3) },
      { lane: 'lane-a', envelope: env(2) },
      { lane: 'lane-a', envelope: env(4) },
    ]);
    expect(entries.map((e) => e?.envelope.id)).toEqual([
      env(2).id,
      undefined,
      env(3).id,
      undefined,
      env(4).id,
    ]);
    expect(entries.map((e) => e?.lane)).toEqual(['lane-a', undefined, 'lane-b', undefined, 'lane-a']);
    const ids = [first!.id, entries[0]!.id, entries[2]!.id, entries[4]!.id];
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);
    const pending = (await pendingInbox(db)).filter((e) => e.envelope.id.startsWith(`api:batch-${backend}`));
    expect(pending.map((e) => [e.id, e.lane, e.envelope.text])).toEqual([
      [ids[0], 'lane-a', 't1'],
      [ids[1], 'lane-a', 't2'],
      [ids[2], 'lane-b', 't3'],
      [ids[3], 'lane-a', 't4'],
    ]);
  });
});
