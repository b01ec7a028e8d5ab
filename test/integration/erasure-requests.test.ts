import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Channel } from '../../src/envelope.ts';
import { FileStore } from '../../src/files/store.ts';
import { adminClient, eventually, rowsMentioningAny, sessionOfAccepted } from '../helpers/admin.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';
import { keysMentioning, keysUnder, TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';
import {
  type ReceivedEvent,
  startWithReceiver,
  WebhookReceiver,
  webhookConfigDir,
} from '../helpers/webhook-receiver.ts';

const ADMIN_TOKEN = 'erasure-requests-admin-token-0123456789';
const VISITOR_SECRET = 'VISITOR-SECRET my address is Musterweg 1';
const ANA_MAIL = 'ana@example.com';
const BEA_MAIL = 'bea@example.com';

/**
 * Erasure on request where `DELETE /api/users/{id}` could not reach: an anonymous visitor (no
 * user), and the unverified mail of a person's address; and who is told of an erasure (event
 * webhook receivers, with `session.erased`).
 */
describe('erasure on request: one session, unverified mail, and the receivers told', () => {
  const { prefix, cleanup } = testRedisPrefix();
  const receiver = new WebhookReceiver();
  let running: RunningHub;
  let redis: Redis;
  let admin: ReturnType<typeof adminClient>;
  const breaches: string[] = [];

  const db = () => running.hub.db;

  /** An envelope through the hub's ingress, processed; answers its session. */
  async function send(
    channel: Channel,
    from: string,
    text: string,
    options: { thread?: string; verified?: boolean } = {},
  ): Promise<string> {
    const id = `${channel}:${randomUUID()}`;
    return sessionOfAccepted(running.hub, {
      id,
      channel,
      bot: 'hooks',
      from: { id: from },
      ...(options.thread ? { thread: options.thread } : {}),
      ...(options.verified === false ? { identityVerified: false } : {}),
      text,
      meta: {},
      receivedAt: new Date().toISOString(),
    });
  }

  /** Every queue lane drained and unscheduled: nothing in flight. */
  const queuesIdle = () =>
    eventually(
      async () =>
        (await keysUnder(redis, prefix)).every(
          (k) => !/^(inbound|outbound):(lane|sched):/.test(k.slice(prefix.length)),
        ),
      'the queues to drain',
    );

  /** The `session.erased` events the receiver took, one per event id. */
  const erasedEvents = (): ReceivedEvent[] =>
    receiver.firstArrivals().filter((e) => e.type === 'session.erased');

  const sessionExists = async (id: string) =>
    (await db().query('SELECT 1 FROM sessions WHERE id = $1', [id])).rows.length === 1;

  beforeAll(async () => {
    running = await startWithReceiver(receiver, async (url) =>
      startTestHub({
        configDir: await webhookConfigDir(url, {}, [
          'session.started',
          'message.received',
          'message.sent',
          'session.erased',
        ]),
        redisUrl: TEST_REDIS_URL,
        redisPrefix: prefix,
        adminToken: ADMIN_TOKEN,
        webhookPollMs: 50,
        webhookRetryBaseMs: 200,
        schedulerPollMs: 50,
      }),
    );
    redis = new Redis(TEST_REDIS_URL);
    const contract = openApiContract(await (await fetch(`${running.url}/openapi.json`)).json());
    admin = adminClient(running.url, ADMIN_TOKEN, (e) => breaches.push(...contract.check(e)));
  });
  afterAll(async () => {
    redis?.disconnect();
    await running?.stop();
    await cleanup();
  });

  it("erases an anonymous visitor's session on request, with all that is theirs; receivers are told; the other visitor keeps everything", async () => {
    const api = apiClient(running.url);
    const visitor = await api.createSession('hooks');
    expect((await api.chat(visitor.token, VISITOR_SECRET)).status).toBe(200);
    const other = await api.createSession('hooks');
    expect((await api.chat(other.token, 'I stay')).status).toBe(200);
    // The receiver holds what the visitor wrote: it must be told to delete it.
    await until(
      () => receiver.bySession().get(visitor.session_id) ?? [],
      (events) => events.some((e) => e.type === 'message.received'),
    );

    // What the bot remembered of them (USER MEMORY: a user of its own, with no identity), a
    // sub-session, a file, a message the business scheduled for them.
    const memoryOwner = randomUUID();
    await db().query('INSERT INTO users (id) VALUES ($1)', [memoryOwner]);
    await db().query('UPDATE sessions SET user_id = $1 WHERE id = $2', [memoryOwner, visitor.session_id]);
    await db().query(`INSERT INTO user_memory (user_id, key, value) VALUES ($1, 'city', '"Musterstadt"')`, [
      memoryOwner,
    ]);
    const child = randomUUID();
    await db().query(
      `INSERT INTO sessions (id, bot, channel, native_key, user_id, parent_id)
       VALUES ($1::uuid, 'hooks', 'api', $2::text || '#sub:' || $1::text, $3, $2::uuid)`,
      [child, visitor.session_id, memoryOwner],
    );
    await db().query('INSERT INTO session_state (session_id) VALUES ($1)', [child]);
    const file = await new FileStore(db()).put([Buffer.from('%PDF-1.4\n% the visitor’s invoice\n')], {
      name: 'invoice.pdf',
      bot: 'hooks',
      sessionId: visitor.session_id,
      maxBytes: 1_000_000,
      allowedTypes: ['application/pdf'],
    });
    await db().query(
      `INSERT INTO outbound_messages (id, bot, channel, native_key, session_id, text, status, send_at)
       VALUES ($1, 'hooks', 'api', $2::text, $2::uuid, 'Your order 1043 ships tomorrow', 'scheduled', now() + interval '1 day')`,
      [randomUUID(), visitor.session_id],
    );
    await queuesIdle();
    const erasedIds = [visitor.session_id, child];
    expect(await keysUnder(redis, prefix)).toContain(`${prefix}${visitor.session_id}:snapshot`);
    const { rows: counted } = await db().query<{ n: number }>(
      'SELECT count(*)::int AS n FROM messages WHERE session_id = ANY($1::uuid[])',
      [erasedIds],
    );
    expect(counted[0]!.n).toBeGreaterThanOrEqual(2);
    const otherHistory = (await api.history(other.token)).json;

    const res = await admin('DELETE', `/api/admin/sessions/${visitor.session_id}`);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      session_id: visitor.session_id,
      erased: { sessions: 2, messages: counted[0]!.n, memory: 1 },
      cache_cleared: true,
    });

    // PostgreSQL: nothing of theirs, but what says that something was erased and names only ids
    // that mean nothing any more: the audit event, and the erasure events on their way to receivers.
    const audit = await db().query<{ data: unknown }>(
      `SELECT data FROM session_events WHERE type = 'session.erased'`,
    );
    expect(audit.rows).toEqual([{ data: { sessionId: visitor.session_id, sessions: 2 } }]);
    const { found } = await rowsMentioningAny(db(), [
      ...erasedIds,
      memoryOwner,
      file.id,
      VISITOR_SECRET,
      'Musterstadt',
      'order 1043',
    ]);
    const isErasureNotice = (row: string) =>
      (/^(session_events|webhook_outbox): /.test(row) && row.includes('session.erased')) ||
      (row.startsWith('webhook_lanes: ') && row.includes('erasure:'));
    expect(found.filter((row) => !isErasureNotice(row))).toEqual([]);
    // Redis: no key, and no value, names their sessions.
    expect(await keysMentioning(redis, prefix, erasedIds)).toEqual([]);

    // The receiver is told, once per erased session, with no content.
    const told = await until(erasedEvents, (events) => events.length >= 2);
    expect(told.map((e) => e.data.session_id).sort()).toEqual([...erasedIds].sort());
    for (const e of told)
      expect(e).toMatchObject({ bot: 'hooks', session_id: null, data: { channel: 'api' } });
    expect(receiver.badShapes).toEqual([]);
    expect(receiver.badSignatures).toBe(0);

    // The token is dead; the other visitor goes on with everything.
    expect((await api.chat(visitor.token, 'still there?')).status).toBe(401);
    expect((await api.history(other.token)).json).toEqual(otherHistory);
    expect((await api.chat(other.token, 'still here')).status).toBe(200);
    expect(await keysUnder(redis, prefix)).toContain(`${prefix}${other.session_id}:snapshot`);

    expect((await admin('DELETE', `/api/admin/sessions/${visitor.session_id}`)).status).toBe(404);
    expect((await admin('DELETE', '/api/admin/sessions/not-a-uuid')).status).toBe(400);
    expect(breaches).toEqual([]);
  });

  it("erasing a person erases the unverified mail of their address, and such mail accepted before the erasure opens nothing; others' unverified mail stays", async () => {
    const ana = randomUUID();
    const bea = randomUUID();
    await db().query('INSERT INTO users (id) VALUES ($1), ($2)', [ana, bea]);
    await db().query(
      `INSERT INTO user_identities (channel, native_id, user_id) VALUES ('email', $1, $2), ('email', $3, $4)`,
      [ANA_MAIL, ana, BEA_MAIL, bea],
    );
    const verified = await send('email', ANA_MAIL, 'a verified mail', { thread: '<v1@example.com>' });
    const forged = await send('email', `unverified:${ANA_MAIL}`, 'UNVERIFIED-SECRET', {
      thread: '<u1@example.com>',
      verified: false,
    });
    const carol = await send('email', 'unverified:carol@example.com', 'Carol stays', {
      thread: '<c1@example.com>',
      verified: false,
    });
    expect(new Set([verified, forged, carol]).size).toBe(3);
    const toldBefore = erasedEvents().length;
    const acceptedBefore = new Date().toISOString();

    const res = await admin('DELETE', `/api/users/${ana}`);
    expect(res.status).toBe(200);
    expect(res.json.erased.sessions).toBe(2);
    expect(await sessionExists(verified)).toBe(false);
    expect(await sessionExists(forged)).toBe(false);
    expect(await sessionExists(carol)).toBe(true);
    const told = await until(erasedEvents, (events) => events.length >= toldBefore + 2);
    expect(
      told
        .slice(toldBefore)
        .map((e) => e.data.session_id)
        .sort(),
    ).toEqual([verified, forged].sort());
    expect(receiver.badShapes).toEqual([]);

    // Bea has no unverified mail yet; her erasure still covers mail from her address that was
    // accepted before it and is processed after it.
    expect((await admin('DELETE', `/api/users/${bea}`)).status).toBe(200);

    // Unverified mail from their addresses accepted before the erasure, processed after it, then
    // one accepted after it in the same lane (which it follows, so once that one is recorded the
    // first has had its turn).
    for (const [address, thread] of [
      [ANA_MAIL, '<u1@example.com>'],
      [BEA_MAIL, '<b1@example.com>'],
    ] as const) {
      const late = `email:${randomUUID()}`;
      await running.hub.ingress.accept({
        id: late,
        channel: 'email',
        bot: 'hooks',
        from: { id: `unverified:${address}` },
        identityVerified: false,
        thread,
        text: 'LATE-SECRET written before the erasure',
        meta: {},
        receivedAt: acceptedBefore,
      });
      const fresh = await send('email', `unverified:${address}`, 'written after the erasure', {
        thread,
        verified: false,
      });
      expect((await db().query('SELECT 1 FROM messages WHERE envelope_id = $1', [late])).rows).toEqual([]);
      const { rows } = await db().query<{ content: string }>(
        `SELECT content FROM messages WHERE session_id = $1 AND role = 'user'`,
        [fresh],
      );
      expect(rows.map((r) => r.content)).toEqual(['written after the erasure']);
    }
    expect((await rowsMentioningAny(db(), ['LATE-SECRET', 'UNVERIFIED-SECRET'])).found).toEqual([]);
    expect(breaches).toEqual([]);
  });
});
