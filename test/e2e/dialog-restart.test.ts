import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { apiClient, REPO_ROOT } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { ServerProcess } from '../helpers/server-process.ts';
import { until } from '../helpers/until.ts';

const DIALOG_CONFIG = path.join(REPO_ROOT, 'test/fixtures/dialog');

const texts = (res: { json: { replies: { text: string }[] } }) => res.json.replies.map((r) => r.text);

/** A session of the intake bot, opened on `server`, once its greeting waits at HEAR. */
async function openWaitingSession(server: ServerProcess) {
  const api = apiClient(server.url);
  const session = await api.createSession('intake');
  await until(
    () => api.call('GET', '/api/session', { token: session.token }),
    (r) => r.json?.state?.waiting_for_input === true,
  );
  return session;
}

describe('HEAR survives a killed process (child process, PostgreSQL)', () => {
  let database: TestDatabase;
  let server: ServerProcess;

  beforeAll(async () => {
    database = await createTestDatabase();
    server = new ServerProcess({ PORT: '0', DATABASE_URL: database.url, CONFIG_DIR: DIALOG_CONFIG });
    await server.start();
  });
  afterAll(async () => {
    await server?.stop();
    await database?.drop();
  });

  it('a script waits at HEAR; SIGKILL; after the restart the next message resumes it with its variables', async () => {
    const session = await openWaitingSession(server);
    const first = await apiClient(server.url).chat(session.token, 'Ana');
    expect(texts(first)).toEqual(['Which plan, Ana?']);

    const pid = server.pid;
    expect(await server.stop('SIGKILL')).toBeNull();
    await server.start();
    expect(server.pid).not.toBe(pid);

    const api = apiClient(server.url);
    const state = await api.call('GET', '/api/session', { token: session.token });
    expect(state.json.state.waiting_for_input).toBe(true);
    // `name` and `channel` were the script's own variables when the process died.
    const resumed = await api.chat(session.token, 'pro');
    expect(texts(resumed)).toEqual(['Thanks Ana (api), plan Pro']);
    const history = await api.history(session.token);
    expect(history.json.messages.map((m: { role: string; text: string }) => `${m.role}:${m.text}`)).toEqual([
      'system:session started',
      'assistant:Welcome on api. What is your name?',
      'user:Ana',
      'assistant:Which plan, Ana?',
      'user:pro',
      'assistant:Thanks Ana (api), plan Pro',
    ]);
    expect(server.logLines().filter((l) => l.event === 'dialog.runtime_error')).toEqual([]);
  });
});

describe('HEAR answered through another process (two processes, shared PostgreSQL and Redis)', () => {
  let database: TestDatabase;
  let redis: ReturnType<typeof testRedisPrefix>;
  let a: ServerProcess;
  let b: ServerProcess;

  beforeAll(async () => {
    database = await createTestDatabase();
    redis = testRedisPrefix();
    const env = {
      PORT: '0',
      DATABASE_URL: database.url,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_PREFIX: redis.prefix,
      CONFIG_DIR: DIALOG_CONFIG,
      // turn.committed (debug) names the envelope each process ran.
      LOG_LEVEL: 'debug',
    };
    a = new ServerProcess(env, ['start', '--role', 'all']);
    b = new ServerProcess(env, ['start', '--role', 'all']);
    await Promise.all([a.start(), b.start()]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await database?.drop();
    await redis?.cleanup();
  });

  /**
   * Which of the processes committed the turn of this envelope (they log each commit). The log
   * line travels through a pipe and may trail the HTTP answer: wait for it.
   */
  const ranIn = async (envelopeId: string) => {
    const committed = () =>
      [a, b].filter((p) =>
        p.logLines().some((l) => l.event === 'turn.committed' && l.envelopeId === envelopeId),
      );
    return until(committed, (found) => found.length > 0, 10_000).catch(() => committed());
  };

  /**
   * Runs `fn` while `p` is frozen (SIGSTOP): whatever queue the hub uses, the other process is
   * then the only one that can take work.
   */
  async function whileFrozen<T>(p: ServerProcess, fn: () => Promise<T>): Promise<T> {
    process.kill(p.pid!, 'SIGSTOP');
    try {
      return await fn();
    } finally {
      process.kill(p.pid!, 'SIGCONT');
    }
  }

  it('a session opened on A waits at HEAR; the answer through B is resumed by B; the next through A by A', async () => {
    // The greeting runs in A (B is frozen), and leaves the script waiting at HEAR.
    const session = await whileFrozen(b, () => openWaitingSession(a));
    expect(await ranIn(`api:${session.session_id}:start`)).toEqual([a]);

    // The answer goes through B, and only B can run it: it takes the state A left and goes on.
    const throughB = await whileFrozen(a, () => apiClient(b.url).chat(session.token, 'Bea'));
    expect(texts(throughB)).toEqual(['Which plan, Bea?']);
    expect(await ranIn(throughB.json.envelope_id)).toEqual([b]);

    // And back: B's waiting state, resumed by A.
    const throughA = await whileFrozen(b, () => apiClient(a.url).chat(session.token, 'Basic'));
    expect(texts(throughA)).toEqual(['Thanks Bea (api), plan Basic']);
    expect(await ranIn(throughA.json.envelope_id)).toEqual([a]);

    const state = await apiClient(b.url).call('GET', '/api/session', { token: session.token });
    expect(state.json.state).toMatchObject({
      waiting_for_input: false,
      variables: { user_name: 'Bea', plan: 'Basic' },
    });
  });
});
