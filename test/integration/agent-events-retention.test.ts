import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMemoryCache } from '../../src/cache/memory-cache.ts';
import { loadBots } from '../../src/config/bots.ts';
import { AGENT_EVENTS_KEEP_MS, runExpiry } from '../../src/lifecycle/expiry.ts';
import type { Db } from '../../src/store/db.ts';
import { insertAgentEvent } from '../../src/store/handoffs.ts';
import { silentLogger, useTestDb } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/hub.ts';

const HOUR_MS = 3_600_000;

/**
 * Agents' event stream (`agent_events`) grows with every handoff while its session lives; it is
 * read only to resume a console's stream, so the expiry job removes events past their age limit
 * (AGENT_EVENTS_KEEP_HOURS), on both databases.
 */
describe.each(['postgres', 'pglite'] as const)('agent events are pruned by age (%s)', (backend) => {
  let db: Db;
  useTestDb(backend, (opened) => {
    db = opened;
  });

  async function eventAgo(sessionId: string, ms: number): Promise<number> {
    const e = await insertAgentEvent(db, {
      type: 'conversation.message',
      sessionId,
      bot: 'returning',
      agentId: null,
      queue: null,
      data: { session_id: sessionId, message: { text: 'words' } },
    });
    await db.query(
      `UPDATE agent_events SET created_at = now() - $2 * interval '1 millisecond' WHERE id = $1`,
      [e.id, ms],
    );
    return e.id;
  }
  const remaining = async () =>
    (await db.query<{ id: string }>('SELECT id FROM agent_events ORDER BY id')).rows.map((r) => Number(r.id));

  it('the expiry job removes events older than the limit (a day by default) and keeps the session and newer ones', async () => {
    const bots = await loadBots(path.join(REPO_ROOT, 'test/fixtures/lifecycle'));
    const sessionId = randomUUID();
    await db.query(
      `INSERT INTO sessions (id, bot, channel, native_key, auth_level) VALUES ($1, 'returning', 'api', $2, 'authenticated')`,
      [sessionId, `key-${sessionId}`],
    );
    const expiry = (agentEventsKeepMs?: number) =>
      runExpiry({
        db,
        bots,
        cache: createMemoryCache({ maxSessions: 10, ttlSeconds: 60 }),
        logger: silentLogger,
        ...(agentEventsKeepMs === undefined ? {} : { agentEventsKeepMs }),
      });
    await eventAgo(sessionId, AGENT_EVENTS_KEEP_MS + HOUR_MS);
    const dayOld = await eventAgo(sessionId, AGENT_EVENTS_KEEP_MS - HOUR_MS);
    const twoHours = await eventAgo(sessionId, 2 * HOUR_MS);
    const recent = await eventAgo(sessionId, 0);
    expect(AGENT_EVENTS_KEEP_MS).toBe(24 * HOUR_MS);

    await expiry();
    expect(await remaining()).toEqual([dayOld, twoHours, recent]);
    await expiry(HOUR_MS);
    expect(await remaining()).toEqual([recent]);
    expect((await db.query('SELECT id FROM sessions WHERE id = $1', [sessionId])).rows).toHaveLength(1);
  });
});
