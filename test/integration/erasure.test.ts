import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Channel } from '../../src/envelope.ts';
import { FileStore } from '../../src/files/store.ts';
import { sessionMessagesKey } from '../../src/limits/rate-limiter.ts';
import { createRedisRateLimiter } from '../../src/limits/redis-rate-limiter.ts';
import { adminClient, eventually, rowsMentioningAny, sessionOfAccepted } from '../helpers/admin.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { keysUnder, TEST_REDIS_URL, testRedisPrefix, valueText } from '../helpers/redis.ts';

const ADMIN_TOKEN = 'erasure-admin-token-of-32-characters';
const ANA_PHONE = '+4915111111111';
const ANA_MAIL = 'ana@example.com';
const ANA_TEAMS = '29:ana-aad-object-id';
const BEN_PHONE = '+4915122222222';

describe('erasing a user (PostgreSQL and Redis)', () => {
  const { prefix, cleanup } = testRedisPrefix();
  let running: RunningHub;
  let redis: Redis;
  let admin: ReturnType<typeof adminClient>;

  const db = () => running.hub.db;

  async function send(channel: Channel, from: string, text: string, thread?: string): Promise<string> {
    const id = `${channel}:${randomUUID()}`;
    return sessionOfAccepted(running.hub, {
      id,
      channel,
      bot: 'default',
      from: { id: from, name: 'Someone' },
      ...(thread ? { thread } : {}),
      text,
      meta: {},
      receivedAt: new Date().toISOString(),
    });
  }

  const keys = () => keysUnder(redis, prefix);

  /** Every queue lane drained and unscheduled: nothing in flight. */
  async function queuesIdle(): Promise<void> {
    await eventually(
      async () =>
        (await keys()).every((k) => !/^(inbound|outbound):(lane|sched):/.test(k.slice(prefix.length))),
      'the queues to drain',
    );
  }

  /** Rows of any table whose text mentions one of `needles`. */
  async function rowsMentioning(needles: string[]): Promise<string[]> {
    const { tables, found } = await rowsMentioningAny(db(), needles);
    expect(tables).toEqual(
      expect.arrayContaining(['users', 'user_identities', 'sessions', 'messages', 'session_state']),
    );
    return found;
  }

  beforeAll(async () => {
    running = await startTestHub({ redisUrl: TEST_REDIS_URL, redisPrefix: prefix, adminToken: ADMIN_TOKEN });
    redis = new Redis(TEST_REDIS_URL);
    admin = adminClient(running.url, ADMIN_TOKEN);
  });
  afterAll(async () => {
    redis?.disconnect();
    await running?.stop();
    await cleanup();
  });

  it('removes every row and every Redis key of the user and their sessions, and nothing of anyone else', async () => {
    const api = apiClient(running.url);
    // Ana: WhatsApp (two sessions: one in a thread), email, an API session linked to her, and a
    // Teams identity whose session names no user: it is hers through the identity alone.
    const anaWhatsapp = await send('whatsapp', ANA_PHONE, 'hello from whatsapp');
    await send('whatsapp', ANA_PHONE, 'again');
    const anaThread = await send('whatsapp', ANA_PHONE, 'in a thread', 'group-1');
    const { rows: users } = await db().query<{ user_id: string }>(
      'SELECT user_id FROM sessions WHERE id = $1',
      [anaWhatsapp],
    );
    const ana = users[0]!.user_id;
    expect(ana).toMatch(/^[0-9a-f-]{36}$/);
    await db().query(
      `INSERT INTO user_identities (channel, native_id, user_id) VALUES ('email', $1, $3), ('teams', $2, $3)`,
      [ANA_MAIL, ANA_TEAMS, ana],
    );
    const anaMail = await send('email', ANA_MAIL, 'a mail', '<root-1@example.com>');
    const anaTeams = randomUUID();
    await db().query(
      `INSERT INTO sessions (id, bot, channel, native_key) VALUES ($1, 'default', 'teams', $2)`,
      [anaTeams, ANA_TEAMS],
    );
    await db().query('INSERT INTO session_state (session_id) VALUES ($1)', [anaTeams]);
    const apiSession = await api.createSession();
    expect((await api.chat(apiSession.token, 'from the api')).status).toBe(200);
    await db().query('UPDATE sessions SET user_id = $1 WHERE id = $2', [ana, apiSession.session_id]);
    const anaSessions = [anaWhatsapp, anaThread, anaMail, anaTeams, apiSession.session_id];
    expect(new Set(anaSessions).size).toBe(5);
    const anaLanes = [
      `default|whatsapp|${ANA_PHONE}`,
      `default|whatsapp|${ANA_PHONE}#group-1`,
      `default|email|${ANA_MAIL}#<root-1@example.com>`,
      `default|teams|${ANA_TEAMS}`,
      `default|api|${apiSession.session_id}`,
    ];

    // Ben: someone else, who must keep everything.
    const benWhatsapp = await send('whatsapp', BEN_PHONE, 'I stay');
    const { rows: benRows } = await db().query<{ user_id: string }>(
      'SELECT user_id FROM sessions WHERE id = $1',
      [benWhatsapp],
    );
    const ben = benRows[0]!.user_id;
    const benLane = `default|whatsapp|${BEN_PHONE}`;

    for (const [user, key] of [
      [ana, 'favourite_colour'],
      [ana, 'city'],
      [ben, 'favourite_colour'],
    ])
      await db().query(`INSERT INTO user_memory (user_id, key, value) VALUES ($1, $2, '"blue"'::jsonb)`, [
        user,
        key,
      ]);
    await db().query(
      `INSERT INTO email_messages (message_id, direction, thread, session_id) VALUES ('out-1@example.com', 'out', '<root-1@example.com>', $1)`,
      [anaMail],
    );
    // A mail attachment of Ana's, in the file store (its only copy since email/0055).
    const anaAttachment = await new FileStore(db()).put([Buffer.from('%PDF-1.4\n% Ana’s invoice\n')], {
      name: 'invoice.pdf',
      bot: 'default',
      sessionId: anaMail,
      maxBytes: 1_000_000,
      allowedTypes: ['application/pdf'],
    });
    // Inbox rows (the in-process queue's log) for Ana's and Ben's lanes.
    for (const lane of [anaLanes[0]!, benLane])
      await db().query(`INSERT INTO inbox (envelope_id, lane, envelope) VALUES ($1, $2, '{}'::jsonb)`, [
        `whatsapp:inbox-${randomUUID()}`,
        lane,
      ]);
    // A mail of Ana's the email channel recorded whose envelope still waits in the inbox (not yet
    // a message): the record names only the envelope, and her address in what a reply needs.
    const queuedMail = `email:queued-${randomUUID()}`;
    await db().query(`INSERT INTO inbox (envelope_id, lane, envelope) VALUES ($1, $2, '{}'::jsonb)`, [
      queuedMail,
      anaLanes[2]!,
    ]);
    await db().query(
      `INSERT INTO email_messages (message_id, direction, thread, envelope_id, reply_to)
       VALUES ('queued-1@example.com', 'in', '<root-1@example.com>', $1, $2::jsonb)`,
      [queuedMail, JSON.stringify({ to: ANA_MAIL, subject: 'Re: a mail' })],
    );
    // Two mails in Ana's thread whose envelopes wait in a Redis lane (their ids are nowhere in
    // PostgreSQL): hers, and Carol's (another person in the thread, who keeps hers).
    const replyTo = (address: string) =>
      JSON.stringify({
        messageId: 'x@example.com',
        subject: 'Re: a mail',
        to: { address },
        mailbox: 'INBOX',
      });
    await db().query(
      `INSERT INTO email_messages (message_id, direction, thread, envelope_id, reply_to) VALUES
         ('lane-ana@example.com', 'in', '<root-1@example.com>', $1, $2::jsonb),
         ('lane-carol@example.com', 'in', '<root-1@example.com>', $3, $4::jsonb)`,
      [
        `email:${randomUUID()}`,
        replyTo('Ana@Example.com'),
        `email:${randomUUID()}`,
        replyTo('carol@example.com'),
      ],
    );
    // What agents' event streams carry of a handoff: what Ana wrote, and what Ben wrote.
    for (const [session, text] of [
      [anaWhatsapp, 'my card number is 4111'],
      [benWhatsapp, 'Ben asks an agent'],
    ])
      await db().query(
        `INSERT INTO agent_events (type, session_id, bot, data) VALUES ('conversation.message', $1, 'default', $2::jsonb)`,
        [session, JSON.stringify({ session_id: session, message: { seq: 9, role: 'user', text } })],
      );
    // What the web gateway's limiter and a dead letter would leave in Redis.
    const limiter = createRedisRateLimiter(redis, { prefix });
    await limiter.hit(sessionMessagesKey(`default|api|${apiSession.session_id}`), 10, 60_000);
    await limiter.hit(sessionMessagesKey(benLane), 10, 60_000);
    for (const lane of [anaLanes[0]!, benLane])
      await redis.rpush(
        `${prefix}inbound:dead`,
        JSON.stringify({ lane, item: '{}', error: 'boom', attempts: 10, at: new Date().toISOString() }),
      );

    await queuesIdle();
    const before = await keys();
    // The cache holds Ana's and Ben's sessions: snapshots and lane keys.
    expect(before).toContain(`${prefix}${anaWhatsapp}:snapshot`);
    expect(before).toContain(`${prefix}lane:${anaLanes[0]}`);
    expect(before).toContain(`${prefix}${apiSession.session_id}:snapshot`);
    expect(before).toContain(`${prefix}rl:${sessionMessagesKey(`default|api|${apiSession.session_id}`)}`);
    expect(before).toContain(`${prefix}rl:${sessionMessagesKey(anaLanes[0]!)}`);
    expect(before.some((k) => k.startsWith(`${prefix}inbound:dedupe:api:${apiSession.session_id}:`))).toBe(
      true,
    );
    const { rows: counted } = await db().query<{ n: number }>(
      'SELECT count(*)::int AS n FROM messages WHERE session_id = ANY($1::uuid[])',
      [anaSessions],
    );
    expect(counted[0]!.n).toBeGreaterThan(10);
    const benBefore = await db().query(
      'SELECT seq, role, content FROM messages WHERE session_id = $1 ORDER BY seq',
      [benWhatsapp],
    );

    const res = await admin('DELETE', `/api/users/${ana}`);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      user_id: ana,
      erased: { sessions: 5, messages: counted[0]!.n, identities: 3, memory: 2 },
      cache_cleared: true,
    });

    // PostgreSQL: nothing mentions Ana, her sessions, lanes or identities, in any table, but the
    // audit event, which counts sessions and names the (now meaningless) user id only.
    const audit = await db().query<{ id: string; session_id: string | null; data: unknown }>(
      `SELECT id, session_id, data FROM session_events WHERE type = 'user.erased'`,
    );
    expect(audit.rows).toEqual([
      { id: expect.anything(), session_id: null, data: { userId: ana, sessions: 5 } },
    ]);
    const mentions = await rowsMentioning([ana, ...anaSessions, ...anaLanes, ANA_PHONE, ANA_MAIL, ANA_TEAMS]);
    expect(mentions.filter((m) => !m.startsWith(`session_events: (${audit.rows[0]!.id},`))).toEqual([]);
    for (const [sql, params] of [
      ['SELECT 1 FROM users WHERE id = $1', [ana]],
      ['SELECT 1 FROM user_identities WHERE user_id = $1', [ana]],
      ['SELECT 1 FROM user_memory WHERE user_id = $1', [ana]],
      ['SELECT 1 FROM sessions WHERE id = ANY($1::uuid[]) OR user_id = $2', [anaSessions, ana]],
      ['SELECT 1 FROM messages WHERE session_id = ANY($1::uuid[])', [anaSessions]],
      ['SELECT 1 FROM session_state WHERE session_id = ANY($1::uuid[])', [anaSessions]],
      ['SELECT 1 FROM session_events WHERE session_id = ANY($1::uuid[])', [anaSessions]],
      ['SELECT 1 FROM inbox WHERE lane = ANY($1::text[])', [anaLanes]],
      ['SELECT 1 FROM email_messages WHERE session_id = ANY($1::uuid[])', [anaSessions]],
      ['SELECT 1 FROM email_messages WHERE envelope_id = $1', [queuedMail]],
      ['SELECT 1 FROM files WHERE id = $1 OR session_id = ANY($2::uuid[])', [anaAttachment.id, anaSessions]],
      ['SELECT 1 FROM file_blobs WHERE sha256 = $1', [anaAttachment.sha256]],
    ] as const)
      expect((await db().query(sql, [...params])).rows, sql).toEqual([]);

    // Redis: no key names Ana, her sessions or lanes.
    const after = await keys();
    const needles = [ana, ...anaSessions, ...anaLanes, ANA_PHONE, ANA_MAIL, ANA_TEAMS];
    expect(after.filter((k) => needles.some((n) => k.includes(n)))).toEqual([]);
    // Nor does any value (queue bookkeeping, BullMQ's jobs and event streams, dead letters).
    const holding: string[] = [];
    for (const key of after) {
      const text = await valueText(redis, key);
      if (needles.some((n) => text.includes(n))) holding.push(`${key}: ${text.slice(0, 300)}`);
    }
    expect(holding).toEqual([]);
    const dead = await redis.lrange(`${prefix}inbound:dead`, 0, -1);
    expect(dead.map((d) => JSON.parse(d).lane)).toEqual([benLane]);

    expect(
      (await db().query<{ message_id: string }>('SELECT message_id FROM email_messages')).rows.map(
        (r) => r.message_id,
      ),
    ).toEqual(['lane-carol@example.com']);
    expect(
      (await db().query<{ session_id: string }>('SELECT session_id FROM agent_events')).rows.map(
        (r) => r.session_id,
      ),
    ).toEqual([benWhatsapp]);

    // Ben keeps everything.
    expect((await db().query('SELECT 1 FROM users WHERE id = $1', [ben])).rows).toHaveLength(1);
    expect((await db().query('SELECT 1 FROM user_identities WHERE user_id = $1', [ben])).rows).toHaveLength(
      1,
    );
    expect((await db().query('SELECT 1 FROM user_memory WHERE user_id = $1', [ben])).rows).toHaveLength(1);
    expect((await db().query('SELECT 1 FROM inbox WHERE lane = $1', [benLane])).rows).toHaveLength(1);
    expect(
      (
        await db().query('SELECT seq, role, content FROM messages WHERE session_id = $1 ORDER BY seq', [
          benWhatsapp,
        ])
      ).rows,
    ).toEqual(benBefore.rows);
    expect(after).toContain(`${prefix}${benWhatsapp}:snapshot`);
    expect(after).toContain(`${prefix}lane:${benLane}`);
    expect(after).toContain(`${prefix}rl:${sessionMessagesKey(benLane)}`);

    // Ben's conversation goes on; Ana writing again is a new contact.
    await send('whatsapp', BEN_PHONE, 'still here');
    const fresh = await send('whatsapp', ANA_PHONE, 'hello again');
    expect(anaSessions).not.toContain(fresh);
    const { rows: freshUser } = await db().query<{ user_id: string }>(
      'SELECT user_id FROM sessions WHERE id = $1',
      [fresh],
    );
    expect(freshUser[0]!.user_id).not.toBe(ana);

    expect((await admin('DELETE', `/api/users/${ana}`)).status).toBe(404);
    expect((await admin('DELETE', '/api/users/not-a-uuid')).status).toBe(400);
  });
});
