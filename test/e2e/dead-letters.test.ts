import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisLaneQueue } from '../../src/queue/redis-lane-queue.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';

const run = promisify(execFile);
const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/queue');

describe('dead letters: an envelope that fails 10 times is set aside, listed and replayed once', () => {
  let database: TestDatabase;
  let redis: { prefix: string; cleanup: () => Promise<void> };
  let running: RunningHub;

  /** The operator's command line, against the same PostgreSQL and Redis as the hub. */
  const switchboard = async (...args: string[]) =>
    run(process.execPath, [path.join(REPO_ROOT, 'bin/switchboard.js'), ...args], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        DATABASE_URL: database.url,
        REDIS_URL: TEST_REDIS_URL,
        REDIS_PREFIX: redis.prefix,
        CONFIG_DIR,
        LOG_LEVEL: 'warn',
      },
    });

  beforeAll(async () => {
    database = await createTestDatabase();
    redis = testRedisPrefix();
    running = await startTestHub({
      configDir: CONFIG_DIR,
      databaseUrl: database.url,
      redisUrl: TEST_REDIS_URL,
      redisPrefix: redis.prefix,
      // Ten attempts in a few seconds instead of about a minute.
      queueRetryBaseMs: 5,
    });
  });
  afterAll(async () => {
    await running?.stop();
    await redis?.cleanup();
    await database?.drop();
  });

  it('`switchboard queue failed` lists it with its error; `queue replay` runs it again, once', async () => {
    const api = apiClient(running.url);
    const { db } = running.hub;
    const opened = await api.createSession('fragile');
    // A failure that no retry cures (not a bot error: those are answered with an apology): the
    // database refuses the turn's rows, as a bad migration or a corrupt row would.
    await db.query(`ALTER TABLE messages ADD CONSTRAINT poison_refused CHECK (content <> 'poison')`);
    const sent = await api.chat(opened.token, 'poison', { message_id: 'm-1' }, '?wait=false');
    expect(sent.status).toBe(202);
    const envelopeId = `api:${opened.session_id}:m-1`;

    const queue = running.hub.queue as RedisLaneQueue;
    await until(
      () => queue.deadLetters(),
      (letters) => letters.length === 1,
      60_000,
    );
    const listed = JSON.parse((await switchboard('queue', 'failed', '--json')).stdout) as {
      envelope: string;
      attempts: number;
      error: string;
    }[];
    expect(listed).toEqual([
      expect.objectContaining({
        envelope: envelopeId,
        attempts: 10,
        error: expect.stringContaining('poison_refused'),
      }),
    ]);
    const replies = async () =>
      (
        await db.query<{ content: string }>(
          "SELECT content FROM messages WHERE session_id = $1 AND role = 'assistant' AND in_reply_to = $2",
          [opened.session_id, envelopeId],
        )
      ).rows.map((r) => r.content);
    expect(await replies()).toEqual([]);
    // The status counts it aside, and nothing stuck.
    const status = JSON.parse((await switchboard('queue', 'status', '--json')).stdout) as {
      queue: string;
      deadLetters: number;
      stranded: { lanes: number };
    }[];
    expect(status.map((s) => s.queue)).toEqual(['inbound', 'outbound']);
    expect(status[0]).toMatchObject({ queue: 'inbound', deadLetters: 1, stranded: { lanes: 0 } });
    expect((await switchboard('queue', 'status')).stdout).toMatch(
      /^inbound: .*; 1 dead letter\(s\)\noutbound: /,
    );

    // The operator fixes the cause, then replays.
    await db.query('ALTER TABLE messages DROP CONSTRAINT poison_refused');
    expect((await switchboard('queue', 'replay')).stdout).toBe('requeued 1 envelope(s)\n');
    expect(await until(replies, (r) => r.length > 0)).toEqual(['done: poison']);

    // Nothing is left aside, nothing to replay twice.
    expect(JSON.parse((await switchboard('queue', 'failed', '--json')).stdout)).toEqual([]);
    expect((await switchboard('queue', 'replay')).stdout).toBe('requeued 0 envelope(s)\n');
    // A later message in the same lane is answered after anything still queued before it.
    const later = await api.chat(opened.token, 'again', { message_id: 'm-2' });
    expect(later.json.replies.map((r: { text: string }) => r.text)).toEqual(['done: again']);
    expect(await replies()).toEqual(['done: poison']);
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM messages WHERE envelope_id = $1 AND role = 'user'",
      [envelopeId],
    );
    expect(rows[0]!.n).toBe(1);
  });
});
