import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryCache } from '../../src/cache/memory-cache.ts';
import { type BotRegistry, loadBots } from '../../src/config/bots.ts';
import { type ExpiryDeps, runExpiry } from '../../src/lifecycle/expiry.ts';
import { outboundEnvelopeId } from '../../src/outbound/store.ts';
import type { Db } from '../../src/store/db.ts';
import { adminClient, rowsMentioningAny } from '../helpers/admin.ts';
import { silentLogger, useTestDb } from '../helpers/database.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

/**
 * Retention reaches what erasure reaches (review of the personal-data lifecycle, finding 3): the
 * expiry job removes, with an anonymous session past its retention, the operators' messages it
 * recorded and what its channel keeps of it (email), and under `keepMessagesDays` the operators'
 * messages, webhook events and ended sessions' variables that copy old messages. What is still to
 * be sent or delivered stays.
 *
 * Bots (test/fixtures/lifecycle): `returning` keeps anonymous sessions 7 days and messages 30;
 * `handover` keeps anonymous sessions the default 7 days and messages for good.
 */
const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/lifecycle');
const DAY_MS = 86_400_000;
const ago = (days: number) => new Date(Date.now() - days * DAY_MS);

describe('retention reaches what erasure reaches: the expiry job', () => {
  let db: Db;
  let bots: BotRegistry;
  useTestDb('postgres', (opened) => {
    db = opened;
  });
  beforeAll(async () => {
    bots = await loadBots(CONFIG_DIR);
  });
  const expiry = (extra: Partial<ExpiryDeps> = {}) =>
    runExpiry({
      db,
      bots,
      cache: createMemoryCache({ maxSessions: 10, ttlSeconds: 60 }),
      logger: silentLogger,
      ...extra,
    });

  async function session(s: {
    bot?: string;
    channel?: string;
    nativeKey?: string;
    auth?: 'anonymous' | 'authenticated';
    lastActiveDaysAgo?: number;
    ended?: boolean;
    state?: { variables: Record<string, unknown>; summary?: unknown };
  }): Promise<string> {
    const id = randomUUID();
    const at = ago(s.lastActiveDaysAgo ?? 0);
    await db.query(
      `INSERT INTO sessions (id, bot, channel, native_key, auth_level, created_at, last_activity_at, ended_at, end_reason)
       VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)`,
      [
        id,
        s.bot ?? 'returning',
        s.channel ?? 'api',
        s.nativeKey ?? id,
        s.auth ?? 'anonymous',
        at,
        s.ended ? at : null,
        s.ended ? 'idle' : null,
      ],
    );
    await db.query(
      `INSERT INTO session_state (session_id, variables, summary, dialog, context) VALUES ($1, $2::jsonb, $3::jsonb, $4::jsonb, $5::jsonb)`,
      [
        id,
        JSON.stringify(s.state?.variables ?? {}),
        s.state?.summary === undefined ? null : JSON.stringify(s.state.summary),
        s.state ? JSON.stringify({ script: 'start', locals: s.state.variables }) : null,
        JSON.stringify(s.state ? { said: 'context' } : {}),
      ],
    );
    return id;
  }

  let seq = 0;
  /** A history row of `sessionId`; `outboundId`: the row an operator's message became. */
  async function historyRow(
    sessionId: string,
    m: { text: string; outboundId?: string; envelopeId?: string; delivery?: string; daysAgo?: number },
  ): Promise<void> {
    await db.query(
      `INSERT INTO messages (session_id, seq, role, content, envelope_id, delivery_status, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        sessionId,
        ++seq,
        m.outboundId ? 'assistant' : 'user',
        m.text,
        m.outboundId ? outboundEnvelopeId(m.outboundId) : (m.envelopeId ?? null),
        m.delivery ?? (m.outboundId ? 'sent' : 'received'),
        ago(m.daysAgo ?? 0),
      ],
    );
  }

  /** An operator's message (`outbound_messages`), with its text as its name. */
  async function outbound(o: {
    text: string;
    status: string;
    sessionId?: string | null;
    bot?: string;
    channel?: string;
    nativeKey?: string;
    daysAgo?: number;
  }): Promise<string> {
    const id = randomUUID();
    await db.query(
      `INSERT INTO outbound_messages (id, bot, channel, native_key, session_id, text, status, send_at, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        id,
        o.bot ?? 'returning',
        o.channel ?? 'api',
        o.nativeKey ?? o.sessionId ?? 'someone',
        o.sessionId ?? null,
        o.text,
        o.status,
        o.status === 'scheduled' ? new Date(Date.now() + DAY_MS) : null,
        ago(o.daysAgo ?? 0),
      ],
    );
    return id;
  }

  const outboundTexts = async (prefix: string) =>
    (
      await db.query<{ text: string }>(
        'SELECT text FROM outbound_messages WHERE starts_with(text, $1) ORDER BY text',
        [prefix],
      )
    ).rows.map((r) => r.text);

  it("an expiring session takes the operators' messages it recorded or that are settled; one still to be sent, or recorded elsewhere, stays", async () => {
    const expired = await session({ lastActiveDaysAgo: 10 });
    const live = await session({ lastActiveDaysAgo: 0 });
    const sent = await outbound({ text: 'A1 sent', status: 'queued', sessionId: expired, daysAgo: 10 });
    await historyRow(expired, { text: 'A1 sent', outboundId: sent, daysAgo: 10 });
    const waiting = await outbound({ text: 'A1 waiting for delivery', status: 'queued', sessionId: expired });
    await historyRow(expired, { text: 'A1 waiting for delivery', outboundId: waiting, delivery: 'queued' });
    await outbound({ text: 'A1 failed', status: 'failed', sessionId: expired, daysAgo: 10 });
    await outbound({ text: 'A1 cancelled', status: 'cancelled', sessionId: expired, daysAgo: 10 });
    await outbound({ text: 'A1 opted out', status: 'opted_out', sessionId: expired, daysAgo: 10 });
    // Still to be sent: scheduled, or handed to the lane and not recorded yet.
    await outbound({ text: 'A1 scheduled', status: 'scheduled', sessionId: expired, daysAgo: 10 });
    await outbound({ text: 'A1 in its lane', status: 'queued', sessionId: expired });
    // The ended session's key opened another for it: it went with that one.
    const renewed = await outbound({ text: 'A1 recorded elsewhere', status: 'queued', sessionId: expired });
    await historyRow(live, { text: 'A1 recorded elsewhere', outboundId: renewed });
    const liveSent = await outbound({ text: 'A1 live', status: 'queued', sessionId: live });
    await historyRow(live, { text: 'A1 live', outboundId: liveSent });

    const report = await expiry();

    expect(report).toMatchObject({ ran: true, sessions: 1, outbound: 5 });
    expect(await outboundTexts('A1 ')).toEqual([
      'A1 in its lane',
      'A1 live',
      'A1 recorded elsewhere',
      'A1 scheduled',
    ]);
    expect((await db.query('SELECT 1 FROM sessions WHERE id = $1', [expired])).rows).toHaveLength(0);
  });

  it('an expiring email session takes its mail and the failures recorded for it; another session on the same thread keeps its own', async () => {
    const key = 'ann@example.com#root-1@mail.example';
    const reply = { to: { address: 'ann@example.com', name: 'Ann Example' } };
    const expired = await session({ channel: 'email', nativeKey: key, lastActiveDaysAgo: 10, ended: true });
    const current = await session({ channel: 'email', nativeKey: key, lastActiveDaysAgo: 0 });
    const mail = async (sessionId: string, inId: string, outId: string) => {
      await historyRow(sessionId, { text: `mail ${inId}`, envelopeId: `email:${inId}` });
      await db.query(
        `INSERT INTO email_messages (message_id, direction, thread, envelope_id, mailbox, uid_validity, uid, reply_to)
         VALUES ($1, 'in', 'root-1@mail.example', $2, 'box', 1, $3, $4::jsonb)`,
        [inId, `email:${inId}`, ++seq, JSON.stringify(reply)],
      );
      await db.query(
        `INSERT INTO email_messages (message_id, direction, thread, envelope_id, session_id)
         VALUES ($1, 'out', 'root-1@mail.example', $2, $3)`,
        [outId, `email:${inId}`, sessionId],
      );
      await db.query(
        `INSERT INTO email_failures (mailbox, uid_validity, uid, message_id, failures, reason)
         VALUES ('box', 1, $1, $2, 1, 'failed once')`,
        [++seq, inId],
      );
    };
    await mail(expired, 'old-in@mail.example', 'old-out@hub.example');
    await mail(current, 'new-in@mail.example', 'new-out@hub.example');

    await expiry();

    const left = await db.query<{ message_id: string }>('SELECT message_id FROM email_messages ORDER BY 1');
    expect(left.rows.map((r) => r.message_id)).toEqual(['new-in@mail.example', 'new-out@hub.example']);
    const failures = await db.query<{ message_id: string }>('SELECT message_id FROM email_failures');
    expect(failures.rows.map((r) => r.message_id)).toEqual(['new-in@mail.example']);
    expect((await db.query('SELECT id FROM sessions WHERE id = $1', [current])).rows).toHaveLength(1);
  });

  it('messages no session holds go after the anonymous retention once settled; queued ones once no dead letter can hold them', async () => {
    const live = await session({ lastActiveDaysAgo: 0 });
    const gone = randomUUID();
    await outbound({ text: 'B1 never entered a session', status: 'failed', daysAgo: 8 });
    await outbound({ text: 'B1 young', status: 'failed', daysAgo: 2 });
    await outbound({ text: 'B1 of a gone session', status: 'cancelled', sessionId: gone, daysAgo: 8 });
    await outbound({ text: 'B1 lost in its lane', status: 'queued', sessionId: gone, daysAgo: 20 });
    // Queued 8 days ago, never recorded: its envelope may still be a dead letter (14 days).
    await outbound({ text: 'B1 maybe a dead letter', status: 'queued', sessionId: gone, daysAgo: 8 });
    await outbound({ text: 'B1 scheduled', status: 'scheduled', daysAgo: 30 });
    await outbound({ text: 'B1 dispatching', status: 'dispatching', daysAgo: 30 });
    const went = await outbound({
      text: 'B1 failed yet went',
      status: 'failed',
      sessionId: gone,
      daysAgo: 8,
    });
    await historyRow(live, { text: 'B1 failed yet went', outboundId: went });
    // A bot no longer configured: the hub's default retention (7 days).
    await outbound({ text: 'B1 retired bot', bot: 'retired', status: 'failed', daysAgo: 8 });

    await expiry();

    expect(await outboundTexts('B1 ')).toEqual([
      'B1 dispatching',
      'B1 failed yet went',
      'B1 maybe a dead letter',
      'B1 scheduled',
      'B1 young',
    ]);
  });

  it("keepMessagesDays takes the settled operators' messages, webhook events and ended sessions' state older than it; what is still to be sent or delivered stays", async () => {
    const open = await session({ auth: 'authenticated', lastActiveDaysAgo: 0 });
    const other = await session({ bot: 'handover', auth: 'authenticated', lastActiveDaysAgo: 0 });
    const sent = await outbound({ text: 'C1 sent', status: 'queued', sessionId: open, daysAgo: 40 });
    await historyRow(open, { text: 'C1 sent', outboundId: sent, delivery: 'delivered', daysAgo: 40 });
    const waiting = await outbound({ text: 'C1 waiting', status: 'queued', sessionId: open, daysAgo: 40 });
    await historyRow(open, { text: 'C1 waiting', outboundId: waiting, delivery: 'queued', daysAgo: 40 });
    await outbound({ text: 'C1 cancelled', status: 'cancelled', sessionId: open, daysAgo: 40 });
    await outbound({ text: 'C1 failed', status: 'failed', sessionId: open, daysAgo: 40 });
    await outbound({ text: 'C1 failed lately', status: 'failed', sessionId: open, daysAgo: 10 });
    await outbound({ text: 'C1 scheduled', status: 'scheduled', sessionId: open, daysAgo: 40 });
    await outbound({ text: 'C1 never recorded', status: 'queued', sessionId: open, daysAgo: 40 });
    const otherSent = await outbound({
      text: 'C1 other bot',
      bot: 'handover',
      status: 'queued',
      sessionId: other,
      daysAgo: 40,
    });
    await historyRow(other, { text: 'C1 other bot', outboundId: otherSent, daysAgo: 40 });

    const event = async (bot: string, sessionId: string, state: string, daysAgo: number) => {
      const at = ago(daysAgo);
      await db.query(
        `INSERT INTO webhook_outbox (event_id, endpoint, bot, session_id, type, data, created_at, state, done_at)
         VALUES (gen_random_uuid(), 'ep', $1, $2, 'message.received', $3::jsonb, $4, $5, $6)`,
        [
          bot,
          sessionId,
          JSON.stringify({ text: `C1 ${bot} ${state} ${daysAgo}` }),
          at,
          state,
          state === 'pending' ? null : at,
        ],
      );
    };
    await event('returning', open, 'delivered', 40);
    await event('returning', open, 'dead', 40);
    await event('returning', open, 'pending', 40);
    await event('returning', open, 'dead', 10);
    await event('handover', other, 'dead', 40);

    const secret = { variables: { last_message: 'C1 STATE-SECRET' }, summary: 'C1 summary' };
    const endedOld = await session({
      auth: 'authenticated',
      lastActiveDaysAgo: 40,
      ended: true,
      state: secret,
    });
    const endedLately = await session({
      auth: 'authenticated',
      lastActiveDaysAgo: 10,
      ended: true,
      state: secret,
    });
    const openOld = await session({ auth: 'authenticated', lastActiveDaysAgo: 40, state: secret });
    const otherEnded = await session({
      bot: 'handover',
      auth: 'authenticated',
      lastActiveDaysAgo: 40,
      ended: true,
      state: secret,
    });

    // Dead letters kept 60 days: a message queued 40 days ago and never recorded may still be
    // replayed from one, so it stays.
    await expiry({ deadLetterKeepMs: 60 * DAY_MS });
    expect(await outboundTexts('C1 ')).toContain('C1 never recorded');
    const report = await expiry();

    expect(report.ran).toBe(true);
    expect(await outboundTexts('C1 ')).toEqual([
      'C1 failed lately',
      'C1 other bot',
      'C1 scheduled',
      'C1 waiting',
    ]);
    // The history row of a reply still waiting for delivery stays with it.
    const history = await db.query<{ content: string }>(
      `SELECT content FROM messages WHERE starts_with(content, 'C1 ') ORDER BY content`,
    );
    expect(history.rows.map((r) => r.content)).toEqual(['C1 other bot', 'C1 waiting']);
    const events = await db.query<{ text: string }>(
      `SELECT data->>'text' AS text FROM webhook_outbox WHERE starts_with(data->>'text', 'C1 ') ORDER BY 1`,
    );
    expect(events.rows.map((r) => r.text)).toEqual([
      'C1 handover dead 40',
      'C1 returning dead 10',
      'C1 returning pending 40',
    ]);

    const state = async (id: string) =>
      (
        await db.query<{
          variables: unknown;
          summary: unknown;
          dialog: unknown;
          context: unknown;
          version: string;
        }>('SELECT variables, summary, dialog, context, version FROM session_state WHERE session_id = $1', [
          id,
        ])
      ).rows[0];
    expect(await state(endedOld)).toEqual({
      variables: {},
      summary: null,
      dialog: null,
      context: {},
      version: expect.anything(),
    });
    expect(Number((await state(endedOld))!.version)).toBeGreaterThan(0);
    for (const kept of [endedLately, openOld, otherEnded])
      expect(await state(kept)).toMatchObject({ variables: secret.variables, summary: secret.summary });
  });
});

describe('retention reaches what erasure reaches: a hub whose API session expires', () => {
  const ADMIN_TOKEN = 'retention-test-admin-token-0123456789abcdef';
  let running: RunningHub;
  beforeAll(async () => {
    running = await startTestHub({ configDir: CONFIG_DIR, adminToken: ADMIN_TOKEN });
  });
  afterAll(async () => {
    await running?.stop();
  });

  it("the operator's message to it goes with it (text and address); a scheduled one for later stays", async () => {
    const { db } = running.hub;
    const admin = adminClient(running.url, ADMIN_TOKEN);
    const opened = await apiClient(running.url).createSession('returning');
    const sid = opened.session_id;
    const sent = await admin('POST', '/api/admin/messages', {
      bot: 'returning',
      channel: 'api',
      to: sid,
      text: 'OUTBOUND-SECRET-ORDER-1043',
    });
    expect(sent.status).toBe(202);
    const later = await admin('POST', '/api/admin/messages', {
      bot: 'returning',
      channel: 'api',
      to: sid,
      text: 'SCHEDULED-REMINDER',
      send_at: new Date(Date.now() + DAY_MS).toISOString(),
    });
    expect(later.status).toBe(202);
    await until(
      async () =>
        (
          await db.query('SELECT 1 FROM messages WHERE session_id = $1 AND content = $2', [
            sid,
            'OUTBOUND-SECRET-ORDER-1043',
          ])
        ).rows,
      (rows) => rows.length === 1,
    );
    // The queue marks its inbox copy handled just after the turn commits: expiry takes handled
    // copies only (an unhandled one may still be in its lane), so wait for that mark.
    await until(
      async () => (await db.query('SELECT 1 FROM inbox WHERE processed_at IS NULL')).rows,
      (rows) => rows.length === 0,
    );
    await db.query(`UPDATE sessions SET last_activity_at = now() - interval '30 days' WHERE id = $1`, [sid]);

    expect(await running.hub.expire()).toMatchObject({ ran: true, sessions: 1, outbound: 1 });

    expect((await rowsMentioningAny(db, ['OUTBOUND-SECRET'])).found).toEqual([]);
    const scheduled = await db.query<{ status: string }>(
      `SELECT status FROM outbound_messages WHERE text = 'SCHEDULED-REMINDER'`,
    );
    expect(scheduled.rows).toEqual([{ status: 'scheduled' }]);
  });
});
