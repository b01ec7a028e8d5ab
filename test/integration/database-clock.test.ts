import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createMemoryCache } from '../../src/cache/memory-cache.ts';
import { createAdapterStore } from '../../src/channels/host-services.ts';
import { type BotRegistry, loadBots } from '../../src/config/bots.ts';
import { sweepStaleReplies } from '../../src/delivery/outbox.ts';
import type { EnvelopeInput } from '../../src/envelope.ts';
import type { AgentEventLog } from '../../src/handoff/events.ts';
import { AGENT_ABSENT_MS, HandoffService } from '../../src/handoff/service.ts';
import { runExpiry } from '../../src/lifecycle/expiry.ts';
import { sweepIdleSessions } from '../../src/lifecycle/idle-sweep.ts';
import type { Ingress } from '../../src/ports.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { createTestDatabase, silentLogger, type TestDatabase } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/hub.ts';

/**
 * Jobs that must see everything until now (expiry, the idle sweep, the outbox sweep) compare rows
 * stamped by PostgreSQL's now() (microseconds) on the database's clock: a row stamped in the
 * job's own millisecond, half a millisecond after the job's JS clock, is handled in this run.
 */
describe("jobs bound time on the database's clock", () => {
  let database: TestDatabase;
  let db: Db;
  let bots: BotRegistry;

  /**
   * A moment in the past with half a millisecond past its millisecond, as PostgreSQL stamps rows;
   * the JS clock is set to that millisecond, so a job on the JS clock sees the moment as later.
   */
  async function jobsMillisecond(): Promise<string> {
    const { rows } = await db.query<{ at: string; ms: string }>(
      `SELECT t::text AS at, (floor(extract(epoch FROM t) * 1000))::bigint::text AS ms
       FROM (SELECT date_trunc('milliseconds', now()) - interval '1 millisecond' + interval '500 microseconds' AS t) x`,
    );
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Number(rows[0]!.ms));
    return rows[0]!.at;
  }

  async function session(bot: string, channel: string, lastActivityAt: string, ms = 0): Promise<string> {
    const id = randomUUID();
    await db.query(
      `INSERT INTO sessions (id, bot, channel, native_key, created_at, last_activity_at)
       VALUES ($1, $2, $3, $4, $5::timestamptz - $6 * interval '1 millisecond', $5::timestamptz - $6 * interval '1 millisecond')`,
      [id, bot, channel, `key-${id}`, lastActivityAt, ms],
    );
    await db.query('INSERT INTO session_state (session_id) VALUES ($1)', [id]);
    return id;
  }

  /** An ingress that takes every envelope and keeps it. */
  function recordingIngress(): { ingress: Ingress; accepted: EnvelopeInput[] } {
    const accepted: EnvelopeInput[] = [];
    const ingress: Ingress = {
      accept: async (envelope) => {
        accepted.push(envelope);
        return { status: 'accepted' } as never;
      },
    };
    return { ingress, accepted };
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    db = openPostgres({ url: database.url, poolSize: 4, logger: silentLogger });
    await migrate(db);
    bots = await loadBots(path.join(REPO_ROOT, 'test/fixtures/lifecycle'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  it('expiry: a session ended, a value expiring and an activity reaching its retention in the run’s millisecond', async () => {
    await db.query('DELETE FROM sessions');
    const store = createAdapterStore(db, 'telegram');
    const ended = await session('returning', 'telegram', new Date().toISOString());
    await store.set('callback:ended', 'of a session ended in the run’s millisecond', { sessionId: ended });
    await store.set('callback:aged', 'expiring in the run’s millisecond', { ttlMs: 60_000 });
    const retention = bots.rules('returning').anonymousRetentionMs;

    const at = await jobsMillisecond();
    await db.query(`UPDATE sessions SET ended_at = $2, end_reason = 'idle' WHERE id = $1`, [ended, at]);
    await db.query(`UPDATE channel_values SET expires_at = $1 WHERE key = 'callback:aged'`, [at]);
    const expired = await session('returning', 'api', at, retention);

    const report = await runExpiry({
      db,
      bots,
      cache: createMemoryCache({ maxSessions: 10, ttlSeconds: 60 }),
      logger: silentLogger,
    });
    expect(report).toMatchObject({ ran: true, sessions: 1 });
    expect((await db.query('SELECT id FROM sessions WHERE id = $1', [expired])).rows).toEqual([]);
    expect((await db.query('SELECT key FROM channel_values')).rows).toEqual([]);
  });

  it('idle sweep: a session whose idle timeout ends in the sweep’s millisecond is ended', async () => {
    await db.query('DELETE FROM sessions');
    const at = await jobsMillisecond();
    const idle = await session('returning', 'api', at, bots.rules('returning', 'api').idleTimeoutMs);
    const { ingress, accepted } = recordingIngress();
    const queued = await sweepIdleSessions({ db, bots, ingress, logger: silentLogger });
    expect(queued).toBe(1);
    expect(accepted.map((e) => e.id)).toEqual([expect.stringContaining(idle)]);
  });

  it('outbox sweep: a reply queued in the sweep’s millisecond is handed on by a sweep of everything queued', async () => {
    await db.query('DELETE FROM sessions');
    const at = await jobsMillisecond();
    const id = await session('returning', 'api', at);
    await db.query(
      `INSERT INTO messages (session_id, seq, role, content, delivery_status, created_at, updated_at)
       VALUES ($1, 1, 'assistant', 'queued', 'queued', $2, $2)`,
      [id, at],
    );
    const notified: string[] = [];
    expect(await sweepStaleReplies(db, { notify: (s) => notified.push(s) }, silentLogger, 0)).toBe(1);
    expect(notified).toEqual([id]);
  });

  it('offline check: an agent unseen for exactly its absence limit, in the check’s millisecond, loses the conversation', async () => {
    await db.query('DELETE FROM sessions');
    const at = await jobsMillisecond();
    const id = await session('returning', 'api', at);
    const agentId = randomUUID();
    await db.query(
      `INSERT INTO agents (id, name, email, password_hash, role, bots, status, last_seen_at)
       VALUES ($1, 'Ana', $2, 'x', 'agent', '["*"]', 'available', $3::timestamptz - $4 * interval '1 millisecond')`,
      [agentId, `${agentId}@example.test`, at, AGENT_ABSENT_MS],
    );
    await db.query(
      `INSERT INTO handoffs (id, session_id, bot, channel, state, agent_id, assigned_at)
       VALUES ($1, $2, 'returning', 'api', 'assigned', $3, $4::timestamptz - $5 * interval '1 millisecond')`,
      [randomUUID(), id, agentId, at, AGENT_ABSENT_MS],
    );
    const { ingress, accepted } = recordingIngress();
    const service = new HandoffService({
      db,
      bots,
      ingress,
      events: { emit: async () => undefined } as unknown as AgentEventLog,
      logger: silentLogger,
      sendThroughLane: async () => undefined,
    });
    expect(await service.releaseAbsent()).toBe(1);
    expect(accepted.map((e) => e.kind)).toEqual(['transfer_end']);
  });
});
