import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EnvelopeInput, parseEnvelope } from '../../src/envelope.ts';
import { listMessages } from '../../src/store/messages.ts';
import { findOpenSnapshotByKey, loadSnapshot } from '../../src/store/sessions.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { settled } from '../helpers/settled.ts';
import { until } from '../helpers/until.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');

function wa(from: string, n: number | string, text: string, bot = 'default'): EnvelopeInput {
  return {
    id: `whatsapp:wamid.${from}.${n}`,
    channel: 'whatsapp',
    bot,
    from: { id: from },
    text,
    receivedAt: new Date().toISOString(),
  };
}

describe('session engine with the in-process queue (PostgreSQL)', () => {
  let running: RunningHub;

  beforeAll(async () => {
    running = await startTestHub({ configDir: FIXTURE_CONFIG, queueConcurrency: 64 });
  });
  afterAll(async () => {
    await running?.stop();
  });

  const count = async (sql: string, params: unknown[]) =>
    (await running.hub.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, params)).rows[0]!.n;

  it('creates the session on first contact, greets, and answers', async () => {
    const from = '+491700000001';
    expect((await running.hub.ingress.accept(wa(from, 1, 'hello'))).status).toBe('accepted');
    const snap = await until(
      () => findOpenSnapshotByKey(running.hub.db, { bot: 'default', channel: 'whatsapp', nativeKey: from }),
      (s) => (s?.session.lastSeq ?? 0) >= 3,
    );
    const history = await listMessages(running.hub.db, snap!.session.id, { limit: 10 });
    expect(history.map((m) => [m.role, m.content])).toEqual([
      ['user', 'hello'],
      ['assistant', 'welcome'],
      ['assistant', 'echo hello #1'],
    ]);
    expect(snap!.session.userId).toBeTruthy();
  });

  it('refuses an envelope of a channel no adapter declares, naming the channels there are', async () => {
    await expect(
      running.hub.ingress.accept({ ...wa('+491700000003', 1, 'hi'), channel: 'fax' }),
    ).rejects.toThrow(/unknown channel "fax"; channels: .*whatsapp/);
  });

  it('processes an envelope delivered twice once', async () => {
    const from = '+491700000002';
    expect((await running.hub.ingress.accept(wa(from, 1, 'once'))).status).toBe('accepted');
    expect((await running.hub.ingress.accept(wa(from, 1, 'once'))).status).toBe('duplicate');
    await until(
      () => count('messages WHERE in_reply_to = $1', [`whatsapp:wamid.${from}.1`]),
      (n) => n >= 2,
    );
    await settled(running.hub);
    expect(await count('messages WHERE envelope_id = $1', [`whatsapp:wamid.${from}.1`])).toBe(1);
    expect(await count('messages WHERE in_reply_to = $1', [`whatsapp:wamid.${from}.1`])).toBe(2);
  });

  it('processes an envelope delivered three times concurrently once, through the queue and straight into the engine', async () => {
    const from = '+491700000003';
    const results = await Promise.all([1, 2, 3].map(() => running.hub.ingress.accept(wa(from, 1, 'race'))));
    expect(results.filter((r) => r.status === 'accepted')).toHaveLength(1);
    await until(
      () => count('messages WHERE in_reply_to = $1', [`whatsapp:wamid.${from}.1`]),
      (n) => n >= 2,
    );

    // Bypassing the queue's dedupe: the engine alone must hold, as under at-least-once redelivery.
    const { parseEnvelope } = await import('../../src/envelope.ts');
    const env = parseEnvelope(wa(from, 2, 'engine race'));
    const outcomes = await Promise.all([1, 2, 3].map(() => running.hub.engine.handle(env)));
    expect(outcomes.filter((o) => o === 'committed')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'duplicate')).toHaveLength(2);
    expect(await count('messages WHERE in_reply_to = $1', [env.id])).toBe(1);
    expect(await count('messages WHERE envelope_id = $1', [env.id])).toBe(1);
  });

  it('keeps each session in order: 1,000 sessions × 10 messages, interleaved', async () => {
    const SESSIONS = 1_000;
    const MESSAGES = 10;
    const people = Array.from({ length: SESSIONS }, (_, i) => `+4930${String(i).padStart(7, '0')}`);
    for (let n = 0; n < MESSAGES; n++) {
      // Every session's message n is accepted before any message n+1: the order each person sent in.
      const results = await Promise.all(
        people.map((p) => running.hub.ingress.accept(wa(p, `o${n}`, `m${n}`))),
      );
      expect(results.every((r) => r.status === 'accepted')).toBe(true);
    }
    const expectedRows = SESSIONS * (1 + MESSAGES * 2);
    await until(
      () => count(`messages m JOIN sessions s ON s.id = m.session_id WHERE s.native_key LIKE '+4930%'`, []),
      (n) => n >= expectedRows,
      180_000,
    );
    const { rows } = await running.hub.db.query<{ native_key: string; content: string; role: string }>(
      `SELECT s.native_key, m.content, m.role FROM messages m JOIN sessions s ON s.id = m.session_id
       WHERE s.native_key LIKE '+4930%' ORDER BY s.native_key, m.seq`,
    );
    expect(rows).toHaveLength(expectedRows);
    const bySession = new Map<string, string[]>();
    for (const r of rows) {
      if (!bySession.has(r.native_key)) bySession.set(r.native_key, []);
      bySession.get(r.native_key)!.push(`${r.role}:${r.content}`);
    }
    const expected = ['user:m0', 'assistant:welcome', 'assistant:echo m0 #1'];
    for (let n = 1; n < MESSAGES; n++) expected.push(`user:m${n}`, `assistant:echo m${n} #${n + 1}`);
    let outOfOrder = 0;
    for (const history of bySession.values())
      if (JSON.stringify(history) !== JSON.stringify(expected)) outOfOrder++;
    expect(bySession.size).toBe(SESSIONS);
    expect(outOfOrder).toBe(0);
    // And the state saw the same order.
    const snap = await findOpenSnapshotByKey(running.hub.db, {
      bot: 'default',
      channel: 'whatsapp',
      nativeKey: people[123]!,
    });
    expect(snap?.state.variables.seen).toEqual(Array.from({ length: MESSAGES }, (_, n) => `m${n}`));
  }, 300_000);

  /**
   * A message turn of `from` as the lane runner hands it over inside a chunk: the chunk's first
   * loads the state, the rest trust the cached one, and all but the last may be held.
   */
  const laneChunkTurn =
    (from: string, idPrefix: string) =>
    (n: number, options: { first?: boolean; last?: boolean } = {}) =>
      running.hub.engine.handle(parseEnvelope(wa(from, `${idPrefix}${n}`, `m${n}`)), {
        checkDuplicate: false,
        trustCachedState: !options.first,
        shareStateLater: !options.last,
        mayHold: !options.last,
      });

  it("holds a lane chunk's message turns and commits them as one write with the chunk's last, in order", async () => {
    const from = '+491700000021';
    const { db } = running.hub;
    const turn = laneChunkTurn(from, 'h');
    expect(await turn(1, { first: true })).toBe('held');
    expect(await turn(2)).toBe('held');
    const key = { bot: 'default', channel: 'whatsapp', nativeKey: from };
    const opened = await findOpenSnapshotByKey(db, key);
    // Held: nothing of theirs is written yet (the session itself was opened by the first message).
    expect(await listMessages(db, opened!.session.id, { limit: 10 })).toEqual([]);
    expect(opened!.state.version).toBe(0);
    expect(await turn(3, { last: true })).toBe('committed');
    const snap = await loadSnapshot(db, opened!.session.id);
    expect(snap!.state.version).toBe(3);
    expect(snap!.state.variables.seen).toEqual(['m1', 'm2', 'm3']);
    expect(snap!.session).toMatchObject({ lastSeq: 7, messageCount: 3 });
    const history = await listMessages(db, opened!.session.id, { limit: 10 });
    expect(history.map((m) => `${m.seq} ${m.role}:${m.content}`)).toEqual([
      '1 user:m1',
      '2 assistant:welcome',
      '3 assistant:echo m1 #1',
      '4 user:m2',
      '5 assistant:echo m2 #2',
      '6 user:m3',
      '7 assistant:echo m3 #3',
    ]);
  });

  it('handles held turns again one by one when their state moved before their write', async () => {
    const from = '+491700000022';
    const { db } = running.hub;
    const turn = laneChunkTurn(from, 'r');
    expect(await turn(1, { first: true, last: true })).toBe('committed');
    expect(await turn(2, { first: true })).toBe('held');
    expect(await turn(3)).toBe('held');
    const key = { bot: 'default', channel: 'whatsapp', nativeKey: from };
    const { session } = (await findOpenSnapshotByKey(db, key))!;
    // Another writer moves the state (as a sign-in does) while the turns are held.
    await db.query(
      `UPDATE session_state SET variables = jsonb_set(variables, '{seen}', variables->'seen' || '["outside"]'),
         version = version + 1 WHERE session_id = $1`,
      [session.id],
    );
    expect(await turn(4, { last: true })).toBe('committed');
    const snap = await loadSnapshot(db, session.id);
    // Each held turn was computed again from the moved state, in order, once.
    expect(snap!.state.variables.seen).toEqual(['m1', 'outside', 'm2', 'm3', 'm4']);
    expect(snap!.state.version).toBe(5);
    const history = await listMessages(db, session.id, { limit: 20 });
    expect(history.map((m) => `${m.role}:${m.content}`)).toEqual([
      'user:m1',
      'assistant:welcome',
      'assistant:echo m1 #1',
      'user:m2',
      'assistant:echo m2 #2',
      'user:m3',
      'assistant:echo m3 #3',
      'user:m4',
      'assistant:echo m4 #4',
    ]);
  });

  it('answers a failing bot with its apology, keeps none of its half-done changes, and goes on', async () => {
    const from = '+491700000004';
    await running.hub.ingress.accept(wa(from, 1, 'boom', 'faulty'));
    await running.hub.ingress.accept(wa(from, 2, 'ok', 'faulty'));
    const snap = await until(
      () => findOpenSnapshotByKey(running.hub.db, { bot: 'faulty', channel: 'whatsapp', nativeKey: from }),
      (s) => (s?.session.messageCount ?? 0) >= 2,
    );
    const history = await listMessages(running.hub.db, snap!.session.id, { limit: 20 });
    expect(history.map((m) => m.content)).toEqual([
      'boom',
      'Hello! How can I help?',
      'Sorry, that went wrong.',
      'ok',
      'half a reply',
      'fine: ok',
    ]);
    expect(snap!.state.variables).toEqual({ touched: 'ok' });
    expect(await count(`session_events WHERE session_id = $1 AND type = 'error'`, [snap!.session.id])).toBe(
      1,
    );
  });

  it('shares bot memory across sessions of a bot and writes it with the turn', async () => {
    for (let i = 0; i < 5; i++)
      await running.hub.ingress.accept(wa(`+49170000010${i}`, 1, 'count', 'counter'));
    const final = await until(
      async () =>
        (
          await running.hub.db.query<{ value: number }>(
            `SELECT value FROM bot_memory WHERE bot = 'counter' AND key = 'count'`,
          )
        ).rows[0]?.value,
      (v) => v !== undefined && v >= 1,
    );
    expect(final).toBeGreaterThanOrEqual(1);
  });

  it('ends a session on an end envelope, runs the end handler, and starts a new one on the next message', async () => {
    const from = '+491700000005';
    await running.hub.ingress.accept(wa(from, 1, 'first'));
    await running.hub.ingress.accept({ ...wa(from, 'end', ''), kind: 'end', end: { reason: 'test' } });
    await running.hub.ingress.accept(wa(from, 2, 'second'));
    const second = await until(
      () => findOpenSnapshotByKey(running.hub.db, { bot: 'default', channel: 'whatsapp', nativeKey: from }),
      (s) =>
        (s?.session.messageCount ?? 0) >= 1 &&
        s!.state.variables.seen !== undefined &&
        (s!.state.variables.seen as string[])[0] === 'second',
    );
    const { rows } = await running.hub.db.query<{ id: string; end_reason: string | null }>(
      `SELECT id, end_reason FROM sessions WHERE channel = 'whatsapp' AND native_key = $1 ORDER BY created_at`,
      [from],
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]!.end_reason).toBe('test');
    expect(rows[1]!.id).toBe(second!.session.id);
    expect(await count(`session_events WHERE session_id = $1 AND type = 'bye'`, [rows[0]!.id])).toBe(1);
    // Both sessions belong to the same person.
    const first = await loadSnapshot(running.hub.db, rows[0]!.id);
    expect(first!.session.userId).toBe(second!.session.userId);
  });

  it('links a sender the channel could not verify (identityVerified: false) to no user, even one it knows', async () => {
    const from = '+491700000006';
    await running.hub.ingress.accept(wa(from, 1, 'known'));
    const known = await until(
      () => findOpenSnapshotByKey(running.hub.db, { bot: 'default', channel: 'whatsapp', nativeKey: from }),
      (s) => (s?.session.lastSeq ?? 0) >= 3,
    );
    expect(known!.session.userId).toBeTruthy();
    // The same identity under a key of its own, as the email adapter keys unverified mail.
    const forged = `unverified:${from}`;
    await running.hub.ingress.accept({ ...wa(forged, 2, 'forged'), identityVerified: false });
    const unverified = await until(
      () => findOpenSnapshotByKey(running.hub.db, { bot: 'default', channel: 'whatsapp', nativeKey: forged }),
      (s) => (s?.session.lastSeq ?? 0) >= 3,
    );
    expect(unverified!.session.userId).toBeNull();
    expect(unverified!.session.authLevel).toBe('anonymous');
    expect(await count('user_identities WHERE native_id = $1', [forged])).toBe(0);
  });
});
