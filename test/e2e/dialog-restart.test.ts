import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { apiClient, REPO_ROOT } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { ServerProcess } from '../helpers/server-process.ts';

const DIALOG_CONFIG = path.join(REPO_ROOT, 'test/fixtures/dialog');

async function until<T>(probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!done(value)) {
    if (Date.now() > deadline) throw new Error(`timed out; last value ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
    value = await probe();
  }
  return value;
}

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

  it('a session opened on A, its HEAR answered through B, then through A again', async () => {
    const session = await openWaitingSession(a);
    const throughB = await apiClient(b.url).chat(session.token, 'Bea');
    expect(texts(throughB)).toEqual(['Which plan, Bea?']);
    const throughA = await apiClient(a.url).chat(session.token, 'Basic');
    expect(texts(throughA)).toEqual(['Thanks Bea (api), plan Basic']);
    const state = await apiClient(b.url).call('GET', '/api/session', { token: session.token });
    expect(state.json.state).toMatchObject({
      waiting_for_input: false,
      variables: { user_name: 'Bea', plan: 'Basic' },
    });
    // Which process ran each turn: the one that logged its commit.
    const ranIn = (envelopeId: string) =>
      [a, b].filter((p) =>
        p.logLines().some((l) => l.event === 'turn.committed' && l.envelopeId === envelopeId),
      );
    expect(ranIn(throughB.json.envelope_id)).toHaveLength(1);
    expect(ranIn(throughA.json.envelope_id)).toHaveLength(1);
    // With the in-process queue a process runs what it accepted: B resumed what A's turn left waiting.
    const queue = (p: ServerProcess) => p.logLines().find((l) => l.event === 'hub.started')?.queue;
    if (queue(b) === 'in-process') {
      expect(ranIn(throughB.json.envelope_id)).toEqual([b]);
      expect(ranIn(throughA.json.envelope_id)).toEqual([a]);
    }
  });
});
