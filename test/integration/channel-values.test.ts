import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHOICES_TTL_MS, NumberedChoices } from '../../adapters/whatsapp/choices.ts';
import { createMemoryCache } from '../../src/cache/memory-cache.ts';
import { createAdapterStore } from '../../src/channels/host-services.ts';
import { type BotRegistry, loadBots } from '../../src/config/bots.ts';
import type { EnvelopeInput } from '../../src/envelope.ts';
import { runExpiry } from '../../src/lifecycle/expiry.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { createTestDatabase, silentLogger, type TestDatabase } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const DAY_MS = 86_400_000;

/**
 * What channels keep in their keyed store (`channel_values`) goes with the session it names
 * (removed with it; pruned by the expiry job once it has ended) and after its age bound, on
 * PostgreSQL: nothing grows forever.
 */
describe('channel values: the session lifecycle and an age bound prune them', () => {
  let database: TestDatabase;
  let db: Db;
  let bots: BotRegistry;
  const expiry = () =>
    runExpiry({
      db,
      bots,
      cache: createMemoryCache({ maxSessions: 10, ttlSeconds: 60 }),
      logger: silentLogger,
    });

  /** A session of the `returning` bot (anonymous retention 7 days), active `daysAgo` days ago. */
  async function session(channel: string, nativeKey: string, daysAgo = 0): Promise<string> {
    const id = randomUUID();
    const at = new Date(Date.now() - daysAgo * DAY_MS);
    await db.query(
      `INSERT INTO sessions (id, bot, channel, native_key, created_at, last_activity_at)
       VALUES ($1, 'returning', $2, $3, $4, $4)`,
      [id, channel, nativeKey, at],
    );
    await db.query('INSERT INTO session_state (session_id) VALUES ($1)', [id]);
    return id;
  }
  const keys = async (channel: string) =>
    (
      await db.query<{ key: string }>('SELECT key FROM channel_values WHERE channel = $1 ORDER BY key', [
        channel,
      ])
    ).rows.map((r) => r.key);

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 4, logger: silentLogger });
    await migrate(db);
    bots = await loadBots(path.join(REPO_ROOT, 'test/fixtures/lifecycle'));
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  it('a value goes when its session is removed, when it has ended (expiry job), and after its age bound', async () => {
    const store = createAdapterStore(db, 'telegram');
    const open = await session('telegram', '1001');
    const ended = await session('telegram', '1002');
    const stale = await session('telegram', '1003', 10);
    const erased = await session('telegram', '1004');
    await store.set('callback:open', 'of an open session', { sessionId: open, ttlMs: DAY_MS });
    await store.set('callback:ended', 'of an ended session', { sessionId: ended });
    await store.set('callback:stale', 'of a session past its retention', { sessionId: stale });
    await store.set('callback:erased', 'of a removed session', { sessionId: erased });
    await store.set('callback:aged', 'past its age bound', { ttlMs: 1 });
    await store.set('state', 'the adapter’s own, neither');

    // Removed with its session, at once (an erasure, an operator's delete).
    await db.query('DELETE FROM sessions WHERE id = $1', [erased]);
    expect(await store.get('callback:erased')).toBeUndefined();
    // Past its age bound: not read, though still stored until the job runs.
    await until(
      () => store.get('callback:aged'),
      (v) => v === undefined,
      10_000,
    );
    await db.query(`UPDATE sessions SET ended_at = now(), end_reason = 'idle' WHERE id = $1`, [ended]);
    expect(await store.get('callback:ended')).toBe('of an ended session');
    expect(await keys('telegram')).toEqual([
      'callback:aged',
      'callback:ended',
      'callback:open',
      'callback:stale',
      'state',
    ]);

    const report = await expiry();
    expect(report.ran).toBe(true);
    expect(report.sessions).toBe(1);
    expect((await db.query('SELECT 1 FROM sessions WHERE id = $1', [stale])).rows).toEqual([]);
    expect(await keys('telegram')).toEqual(['callback:open', 'state']);
    expect(await store.get('callback:open')).toBe('of an open session');

    // Storing again for another session moves the value to it (and its age bound with it).
    await store.set('callback:open', 'now of the ended one', { sessionId: ended });
    await expiry();
    expect(await keys('telegram')).toEqual(['state']);
  });

  it('WhatsApp’s numbered choices answer a number while their session is open, and go once it has ended', async () => {
    const choices = new NumberedChoices(createAdapterStore(db, 'whatsapp'), silentLogger);
    const phone = '+4915100000001';
    const first = await session('whatsapp', phone);
    const offered = [
      { title: 'Small', value: 'size:s' },
      { title: 'Large', value: 'size:l' },
    ];
    await choices.offered({ id: first, bot: 'returning', nativeKey: phone }, offered);
    const typed = (text: string): EnvelopeInput => ({
      id: `whatsapp:${randomUUID()}`,
      channel: 'whatsapp',
      bot: 'returning',
      from: { id: phone },
      text,
      meta: {},
      receivedAt: new Date().toISOString(),
    });
    expect((await choices.answer(typed('2'))).text).toBe('size:l');
    const { rows } = await db.query<{ session_id: string; ttl_ms: number }>(
      `SELECT session_id, extract(epoch FROM expires_at - updated_at) * 1000 AS ttl_ms
       FROM channel_values WHERE channel = 'whatsapp'`,
    );
    expect(rows.map((r) => [r.session_id, Math.round(Number(r.ttl_ms))])).toEqual([[first, CHOICES_TTL_MS]]);

    await db.query(`UPDATE sessions SET ended_at = now(), end_reason = 'idle' WHERE id = $1`, [first]);
    await expiry();
    expect(await keys('whatsapp')).toEqual([]);
    expect((await choices.answer(typed('2'))).text).toBe('2');

    // The next session's choices are its own, and stay while it is open.
    const second = await session('whatsapp', phone);
    await choices.offered({ id: second, bot: 'returning', nativeKey: phone }, offered);
    await expiry();
    expect((await choices.answer(typed('1'))).text).toBe('size:s');
  });
});
