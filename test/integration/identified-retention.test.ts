import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Channel } from '../../src/envelope.ts';
import type { Db } from '../../src/store/db.ts';
import { rowsMentioningAny, sessionOfAccepted } from '../helpers/admin.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';

/**
 * Identified-user retention (review of the personal-data lifecycle, finding 4): a person known on
 * a channel keeps a user, identities and USER MEMORY after every session of theirs expired. With
 * IDENTIFIED_USER_RETENTION_DAYS the expiry job erases those away longer than it, through
 * erasure; unset, nobody is removed (as before). The hub's anonymous sessions expire after the
 * default 7 days, so a WhatsApp session older than that goes by the bot's retention in the same run.
 */
const DAY_MS = 86_400_000;
const RETENTION_DAYS = 30;

/** A hub on its own PostgreSQL database, and what the tests do with it. */
function people(running: () => RunningHub) {
  const db = (): Db => running().hub.db;

  /** A message from `from` on `channel` to the default bot, handled: its session's id. */
  async function send(channel: Channel, from: string, text: string, name = 'Someone'): Promise<string> {
    const id = `${channel}:${randomUUID()}`;
    return sessionOfAccepted(running().hub, {
      id,
      channel,
      bot: 'default',
      from: { id: from, name },
      text,
      meta: {},
      receivedAt: new Date().toISOString(),
    });
  }

  /** A WhatsApp person who wrote once and has something in their USER MEMORY: their user id. */
  async function whatsappPerson(phone: string, name: string, secret: string): Promise<string> {
    const session = await send('whatsapp', phone, `hello, ${secret}`, name);
    const { rows } = await db().query<{ user_id: string }>('SELECT user_id FROM sessions WHERE id = $1', [
      session,
    ]);
    const user = rows[0]!.user_id;
    expect(user).toMatch(/^[0-9a-f-]{36}$/);
    await db().query(`INSERT INTO user_memory (user_id, key, value) VALUES ($1, 'favourite', $2::jsonb)`, [
      user,
      JSON.stringify(secret),
    ]);
    return user;
  }

  /**
   * Moves a person's past back: every row of theirs `days` earlier (the user, identities, memory,
   * sessions and messages), their sessions ended `endedDaysAgo` ago at the latest.
   */
  async function movePast(userId: string, days: number, endedDaysAgo?: number): Promise<void> {
    const back = `${days} days`;
    await db().query(
      `UPDATE users SET created_at = created_at - $2::interval, last_seen_at = last_seen_at - $2::interval
        WHERE id = $1`,
      [userId, back],
    );
    await db().query(`UPDATE user_identities SET created_at = created_at - $2::interval WHERE user_id = $1`, [
      userId,
      back,
    ]);
    await db().query(`UPDATE user_memory SET updated_at = updated_at - $2::interval WHERE user_id = $1`, [
      userId,
      back,
    ]);
    const sessions = `SELECT id FROM sessions WHERE user_id = $1`;
    await db().query(
      `UPDATE messages SET created_at = created_at - $2::interval WHERE session_id IN (${sessions})`,
      [userId, back],
    );
    await db().query(
      `UPDATE sessions SET created_at = created_at - $2::interval,
              last_activity_at = last_activity_at - $2::interval,
              ended_at = COALESCE(ended_at, now()) - $2::interval, end_reason = COALESCE(end_reason, 'idle')
        WHERE user_id = $1`,
      [userId, back],
    );
    if (endedDaysAgo !== undefined) {
      await db().query(
        `UPDATE sessions SET last_activity_at = now() - $2::interval, ended_at = now() - $2::interval
          WHERE id = (SELECT id FROM sessions WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1)`,
        [userId, `${endedDaysAgo} days`],
      );
    }
  }

  /** What is left of a user: the row, identities, memory, and sessions naming them. */
  async function leftOf(userId: string) {
    const count = async (sql: string) => (await db().query<{ n: number }>(sql, [userId])).rows[0]!.n;
    return {
      user: await count('SELECT count(*)::int AS n FROM users WHERE id = $1'),
      identities: await count('SELECT count(*)::int AS n FROM user_identities WHERE user_id = $1'),
      memory: await count('SELECT count(*)::int AS n FROM user_memory WHERE user_id = $1'),
      sessions: await count('SELECT count(*)::int AS n FROM sessions WHERE user_id = $1'),
    };
  }

  const expire = async () => {
    const report = await running().hub.expire();
    expect(report.ran).toBe(true);
    return report;
  };

  return { db, send, whatsappPerson, movePast, leftOf, expire };
}

describe('IDENTIFIED_USER_RETENTION_DAYS: the expiry job erases identified people away longer than it', () => {
  let running: RunningHub;
  const p = people(() => running);

  beforeAll(async () => {
    running = await startTestHub({ identifiedUserRetentionMs: RETENTION_DAYS * DAY_MS });
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('removes a WhatsApp person whose sessions all ended long ago, with identity and USER MEMORY; keeps the others', async () => {
    // Bea: wrote 40 days ago, never since.
    const bea = await p.whatsappPerson('+4915199990002', 'Bea Example', 'USERMEM-SECRET-BEA');
    await p.send('whatsapp', '+4915199990002', 'a second message');
    await p.movePast(bea, 40);
    // Carl: first wrote 60 days ago, last 10 days ago. His session goes by the bot's anonymous
    // retention (7 days) in this very run; he was here within the 30 days, so he stays.
    const carl = await p.whatsappPerson('+4915199990003', 'Carl Example', 'USERMEM-SECRET-CARL');
    await p.movePast(carl, 60, 10);
    // Dan: first wrote 60 days ago, last 2 days ago.
    const dan = await p.whatsappPerson('+4915199990004', 'Dan Example', 'USERMEM-SECRET-DAN');
    await p.movePast(dan, 60, 2);
    // Eve: signed in (host site's user) with a session still open, quiet for 40 days (a signed-in
    // session never expires on its own), and a WhatsApp identity.
    const eve = randomUUID();
    const eveSession = randomUUID();
    await p
      .db()
      .query(`INSERT INTO users (id, external_id, display_name) VALUES ($1, 'eve-sub', 'Eve Example')`, [
        eve,
      ]);
    await p
      .db()
      .query(
        `INSERT INTO user_identities (channel, native_id, user_id) VALUES ('whatsapp', '+4915199990005', $1)`,
        [eve],
      );
    await p
      .db()
      .query(
        `INSERT INTO sessions (id, bot, channel, native_key, user_id, auth_level) VALUES ($1::uuid, 'default', 'api', $1::text, $2, 'authenticated')`,
        [eveSession, eve],
      );
    await p.db().query('INSERT INTO session_state (session_id) VALUES ($1)', [eveSession]);
    await p.movePast(eve, 40);
    await p.db().query('UPDATE sessions SET ended_at = NULL, end_reason = NULL WHERE id = $1', [eveSession]);
    // Fay: signed in 40 days ago, her only session (signed in) ended then; no channel identity.
    const fay = randomUUID();
    const faySession = randomUUID();
    await p
      .db()
      .query(`INSERT INTO users (id, external_id, display_name) VALUES ($1, 'fay-sub', 'Fay Example')`, [
        fay,
      ]);
    await p
      .db()
      .query(
        `INSERT INTO sessions (id, bot, channel, native_key, user_id, auth_level) VALUES ($1::uuid, 'default', 'api', $1::text, $2, 'authenticated')`,
        [faySession, fay],
      );
    await p.db().query('INSERT INTO session_state (session_id) VALUES ($1)', [faySession]);
    await p.movePast(fay, 40);
    // Hana: her WhatsApp sessions ended 40 days ago, but a Teams identity of hers has a session,
    // naming no user, active yesterday: erasure would remove it with her, so she is not away.
    const hana = await p.whatsappPerson('+4915199990006', 'Hana Example', 'USERMEM-SECRET-HANA');
    await p.movePast(hana, 40);
    await p
      .db()
      .query(`INSERT INTO user_identities (channel, native_id, user_id) VALUES ('teams', '29:hana', $1)`, [
        hana,
      ]);
    await p
      .db()
      .query(`UPDATE user_identities SET created_at = now() - interval '40 days' WHERE user_id = $1`, [hana]);
    const hanaTeams = randomUUID();
    await p.db().query(
      `INSERT INTO sessions (id, bot, channel, native_key, last_activity_at, ended_at, end_reason)
       VALUES ($1, 'default', 'teams', '29:hana', now() - interval '1 day', now() - interval '1 day', 'idle')`,
      [hanaTeams],
    );
    await p.db().query('INSERT INTO session_state (session_id) VALUES ($1)', [hanaTeams]);

    const report = await p.expire();
    expect(report.identifiedUsers).toBe(2);

    // Bea and Fay are gone, with everything erasure removes.
    for (const gone of [bea, fay])
      expect(await p.leftOf(gone)).toEqual({ user: 0, identities: 0, memory: 0, sessions: 0 });
    const { found } = await rowsMentioningAny(p.db(), [
      '+4915199990002',
      'USERMEM-SECRET-BEA',
      'Bea Example',
      'fay-sub',
      'Fay Example',
      faySession,
    ]);
    expect(found).toEqual([]);
    // As an erasure (`user.erased`), and why (`user.expired`, reason retention); nothing personal.
    const { rows: events } = await p
      .db()
      .query<{ type: string; data: Record<string, unknown> }>(
        `SELECT type, data FROM session_events WHERE type IN ('user.erased', 'user.expired') ORDER BY id`,
      );
    for (const user of [bea, fay]) {
      expect(events).toContainEqual({ type: 'user.erased', data: expect.objectContaining({ userId: user }) });
      expect(events).toContainEqual({
        type: 'user.expired',
        data: { userId: user, reason: 'retention', retentionDays: RETENTION_DAYS },
      });
    }
    expect(events).toHaveLength(4);

    // Carl: his session expired (anonymous retention), he stays, remembered as last seen 10 days ago.
    expect(await p.leftOf(carl)).toEqual({ user: 1, identities: 1, memory: 1, sessions: 0 });
    const { rows: seen } = await p
      .db()
      .query<{ days: number }>(
        `SELECT round(extract(epoch FROM now() - last_seen_at) / 86400)::int AS days FROM users WHERE id = $1`,
        [carl],
      );
    expect(seen[0]!.days).toBe(10);
    expect(await p.leftOf(dan)).toEqual({ user: 1, identities: 1, memory: 1, sessions: 1 });
    expect(await p.leftOf(eve)).toEqual({ user: 1, identities: 1, memory: 0, sessions: 1 });
    // Hana's WhatsApp session went by anonymous retention; she and her Teams session stay.
    expect(await p.leftOf(hana)).toEqual({ user: 1, identities: 2, memory: 1, sessions: 0 });
    const teams = await p.db().query('SELECT 1 FROM sessions WHERE id = $1', [hanaTeams]);
    expect(teams.rows).toHaveLength(1);

    // A later run: nobody else went away in between.
    expect((await p.expire()).identifiedUsers).toBe(0);
    expect(await p.leftOf(carl)).toMatchObject({ user: 1, identities: 1, memory: 1 });

    // Carl's 30 days since his last message pass: the next run erases him.
    await p
      .db()
      .query(`UPDATE users SET last_seen_at = last_seen_at - interval '21 days' WHERE id = $1`, [carl]);
    expect((await p.expire()).identifiedUsers).toBe(1);
    expect(await p.leftOf(carl)).toEqual({ user: 0, identities: 0, memory: 0, sessions: 0 });
    expect((await rowsMentioningAny(p.db(), ['+4915199990003', 'USERMEM-SECRET-CARL'])).found).toEqual([]);
  });

  it('a person away that long who writes again is a new contact, answered as always', async () => {
    const gil = await p.whatsappPerson('+4915199990007', 'Gil Example', 'USERMEM-SECRET-GIL');
    await p.movePast(gil, 40);
    expect((await p.expire()).identifiedUsers).toBe(1);
    expect(await p.leftOf(gil)).toEqual({ user: 0, identities: 0, memory: 0, sessions: 0 });

    const session = await p.send('whatsapp', '+4915199990007', 'I am back', 'Gil Example');
    const { rows } = await p
      .db()
      .query<{ user_id: string; message_count: number }>(
        'SELECT user_id, message_count FROM sessions WHERE id = $1',
        [session],
      );
    expect(rows[0]!.user_id).not.toBe(gil);
    expect(rows[0]!.message_count).toBe(1);
  });
});

describe('IDENTIFIED_USER_RETENTION_DAYS unset (the default): identified people are kept', () => {
  let running: RunningHub;
  const p = people(() => running);

  beforeAll(async () => {
    running = await startTestHub();
    expect(running.hub.config.identifiedUserRetentionMs).toBeUndefined();
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('keeps the user, identity and USER MEMORY of a person whose sessions expired long ago', async () => {
    const bea = await p.whatsappPerson('+4915199990012', 'Bea Example', 'USERMEM-SECRET-KEPT');
    await p.movePast(bea, 400);
    const report = await p.expire();
    expect(report).toMatchObject({ sessions: 1, identifiedUsers: 0 });
    expect(await p.leftOf(bea)).toEqual({ user: 1, identities: 1, memory: 1, sessions: 0 });
    const events = await p
      .db()
      .query(`SELECT 1 FROM session_events WHERE type IN ('user.erased', 'user.expired')`);
    expect(events.rows).toEqual([]);
  });
});
