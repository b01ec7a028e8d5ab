import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OUTBOUND_QUEUE } from '../../src/delivery/redis-outbox.ts';
import type { Envelope } from '../../src/envelope.ts';
import { DEDUPE_WINDOW_MS } from '../../src/hub/lifecycle.ts';
import { runPrune } from '../../src/hub/prune.ts';
import { INBOUND_QUEUE } from '../../src/queue/redis-lane-queue.ts';
import { type DeadLetter, RedisLanes } from '../../src/queue/redis-lanes.ts';
import type { Db } from '../../src/store/db.ts';
import { failedInbox, insertInbox, pendingInbox, recordInboxAttempt } from '../../src/store/inbox.ts';
import { deadEvents, markDead } from '../../src/webhooks/store.ts';
import { silentLogger, useTestDb } from '../helpers/database.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';

const DAY_MS = 86_400_000;
/** DEAD_LETTER_KEEP_DAYS's default. */
const KEEP_MS = 14 * DAY_MS;

/**
 * Dead letters hold whole envelopes (what people wrote, their names and addresses): the prune
 * job every worker runs forgets them after DEAD_LETTER_KEEP_DAYS — the embedded queue's failed
 * inbox rows, the Redis queues' dead lists, event webhooks dead-lettered and the mail the email
 * channel set aside — and what is within the bound is still listed for replay.
 */
describe('the prune job bounds dead letters (PostgreSQL and Redis)', () => {
  let db: Db;
  let redis: Redis;
  const { prefix, cleanup } = testRedisPrefix();
  useTestDb('postgres', (opened) => {
    db = opened;
  });
  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL);
  });
  afterAll(async () => {
    redis.disconnect();
    await cleanup();
  });
  const prune = () =>
    runPrune({
      db,
      redis: { connection: redis, prefix },
      dedupeWindowMs: DEDUPE_WINDOW_MS,
      deadLetterKeepMs: KEEP_MS,
      logger: silentLogger,
    });

  const envelope = (id: string): Envelope => ({
    id,
    kind: 'message',
    channel: 'whatsapp',
    bot: 'default',
    from: { id: '+4915199990001', name: 'Ana Example' },
    text: `DEAD-SECRET ${id}`,
    attachments: [],
    meta: {},
    receivedAt: new Date().toISOString(),
  });

  it("forgets the embedded queue's envelopes set aside more than DEAD_LETTER_KEEP_DAYS ago; later ones are still listed", async () => {
    const old = await insertInbox(db, 'default|whatsapp|+4915199990001', envelope('wa:old'));
    const recent = await insertInbox(db, 'default|whatsapp|+4915199990001', envelope('wa:recent'));
    const pending = await insertInbox(db, 'default|whatsapp|+4915199990002', envelope('wa:pending'));
    await recordInboxAttempt(db, old!.id, 'boom', true);
    await recordInboxAttempt(db, recent!.id, 'boom', true);
    await db.query(`UPDATE inbox SET failed_at = now() - interval '15 days' WHERE id = $1`, [old!.id]);
    await db.query(`UPDATE inbox SET received_at = now() - interval '30 days' WHERE id = $1`, [pending!.id]);

    expect(await prune()).toMatchObject({ inboxFailed: 1 });

    // What `switchboard queue failed` lists, and what a restart resumes.
    expect((await failedInbox(db)).map((e) => e.envelope.id)).toEqual(['wa:recent']);
    expect((await pendingInbox(db)).map((e) => e.envelope.id)).toEqual(['wa:pending']);
  });

  it("forgets the Redis queues' dead letters set aside more than DEAD_LETTER_KEEP_DAYS ago, oldest first; later ones are still listed", async () => {
    const inbound = new RedisLanes(redis, { prefix, name: INBOUND_QUEUE });
    const outbound = new RedisLanes(redis, { prefix, name: OUTBOUND_QUEUE });
    const setAside = async (lanes: RedisLanes, lane: string, item: string) => {
      await lanes.push(lane, item);
      expect(await lanes.deadLetter(lane, item, 'boom', 10)).toBe(true);
    };
    for (const id of ['wa:1', 'wa:2', 'wa:3'])
      await setAside(inbound, 'default|whatsapp|+49151', JSON.stringify(envelope(id)));
    await setAside(outbound, 'a-session', 'wake-1');
    await setAside(outbound, 'a-session', 'wake-2');
    /** Back-dates the first `n` letters of a dead list by `days`, as if they were set aside then. */
    const age = async (name: string, n: number, days: number) => {
      const key = `${prefix}${name}:dead`;
      const letters = await redis.lrange(key, 0, n - 1);
      for (const [i, raw] of letters.entries()) {
        const letter = JSON.parse(raw) as DeadLetter;
        await redis.lset(
          key,
          i,
          JSON.stringify({ ...letter, at: new Date(Date.now() - days * DAY_MS).toISOString() }),
        );
      }
    };
    await age(INBOUND_QUEUE, 2, 15);
    await age(OUTBOUND_QUEUE, 1, 15);

    expect(await prune()).toMatchObject({ redisInbound: 2, redisOutbound: 1 });

    // What `switchboard queue failed` lists and `queue replay` replays.
    expect((await inbound.deadLetters()).map((d) => (JSON.parse(d.item) as Envelope).id)).toEqual(['wa:3']);
    expect((await outbound.deadLetters()).map((d) => d.item)).toEqual(['wake-2']);
    expect((await inbound.counts()).deadLetters).toBe(1);
  });

  it('forgets event webhooks dead-lettered more than DEAD_LETTER_KEEP_DAYS ago; later ones are still listed, a pending one stays', async () => {
    const sessionId = '6f1c2b1e-0000-4000-8000-000000000001';
    await db.query(
      `INSERT INTO sessions (id, bot, channel, native_key) VALUES ($1, 'default', 'whatsapp', '+4915199990003')`,
      [sessionId],
    );
    const insert = async (text: string, daysAgo: number) => {
      const { rows } = await db.query<{ id: string }>(
        `INSERT INTO webhook_outbox (event_id, endpoint, bot, session_id, type, data, created_at)
         VALUES (gen_random_uuid(), 'ep', 'default', $1, 'message.received', $2::jsonb, now() - $3 * interval '1 day')
         RETURNING id`,
        [sessionId, JSON.stringify({ text }), daysAgo],
      );
      return String(rows[0]!.id);
    };
    const old = await insert('WEBHOOK-SECRET old', 16);
    const recent = await insert('WEBHOOK-SECRET recent', 2);
    await insert('WEBHOOK-SECRET pending', 20);
    await markDead(db, old, 12, 'refused');
    await markDead(db, recent, 12, 'refused');
    await db.query(`UPDATE webhook_outbox SET done_at = now() - interval '15 days' WHERE id = $1`, [old]);

    expect(await prune()).toMatchObject({ webhooksDead: 1 });

    // What `switchboard webhooks failed` lists and `webhooks replay` sends again.
    expect((await deadEvents(db)).map((e) => (e.data as { text: string }).text)).toEqual([
      'WEBHOOK-SECRET recent',
    ]);
    const pending = await db.query(`SELECT 1 FROM webhook_outbox WHERE state = 'pending'`);
    expect(pending.rows).toHaveLength(1);
  });

  it('forgets the failures of mail the email channel recorded more than DEAD_LETTER_KEEP_DAYS ago', async () => {
    const failure = async (uid: number, daysAgo: number, setAside: boolean) =>
      db.query(
        `INSERT INTO email_failures (mailbox, uid_validity, uid, message_id, failures, reason, set_aside_at, created_at, updated_at)
         VALUES ('box', 1, $1, $2, 3, 'unparseable', CASE WHEN $3 THEN now() - $4 * interval '1 day' END,
                 now() - $4 * interval '1 day', now() - $4 * interval '1 day')`,
        [uid, `mail-${uid}@example.com`, setAside, daysAgo],
      );
    await failure(1, 15, true);
    await failure(2, 15, false);
    await failure(3, 2, true);

    await prune();

    const left = await db.query<{ uid: string }>('SELECT uid FROM email_failures ORDER BY uid');
    expect(left.rows.map((r) => Number(r.uid))).toEqual([3]);
  });
});
