import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebAdapter, loadWebConfig } from '../../adapters/web/index.ts';
import { createMemoryCache } from '../../src/cache/memory-cache.ts';
import { loadBots } from '../../src/config/bots.ts';
import { runExpiry } from '../../src/lifecycle/expiry.ts';
import { sweepIdleSessions } from '../../src/lifecycle/idle-sweep.ts';
import type { Db } from '../../src/store/db.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { createTestDatabase, silentLogger, type TestDatabase } from '../helpers/database.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';
import { TestSocket, wsUrl } from '../helpers/ws-client.ts';

const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/lifecycle');
/** The `returning` bot idles out after 3 s (bot.json). */
const IDLE_MS = 3_000;
/** The `handover` bot idles out after 1.2 s. */
const HANDOVER_IDLE_MS = 1_200;
const DAY_MS = 86_400_000;

/** An anonymous session of the `returning` bot, last active ten days ago: past its retention. */
async function insertExpiredSession(db: Db): Promise<string> {
  const id = randomUUID();
  const at = new Date(Date.now() - 10 * DAY_MS);
  await db.query(
    `INSERT INTO sessions (id, bot, channel, native_key, created_at, last_activity_at) VALUES ($1::uuid, 'returning', 'api', $1::text, $2, $2)`,
    [id, at],
  );
  await db.query('INSERT INTO session_state (session_id) VALUES ($1)', [id]);
  return id;
}

/** Resolves once the session's row is gone (the expiry job removed it). */
async function untilSessionRemoved(db: Db, id: string, timeoutMs?: number): Promise<void> {
  await until(
    async () => (await db.query('SELECT id FROM sessions WHERE id = $1', [id])).rows,
    (rows) => rows.length === 0,
    timeoutMs,
  );
}

interface SessionRow {
  id: string;
  user_id: string | null;
  ended_at: Date | null;
  end_reason: string | null;
  last_activity_at: Date;
}

describe('session lifecycle: idle-out, memory that carries over, expiry', () => {
  let running: RunningHub;
  const q = <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    running.hub.db.query<T>(sql, params).then((r) => r.rows);
  /**
   * Waits until the session has been idle longer than its timeout, by its own last activity as
   * the hub recorded it (not by a guess from when the test saw the reply).
   */
  const idle = (sessionId: string, idleMs = IDLE_MS) =>
    until(
      async () =>
        (
          await q<{ ms: number }>(
            'SELECT extract(epoch FROM clock_timestamp() - last_activity_at)::float8 * 1000 AS ms FROM sessions WHERE id = $1',
            [sessionId],
          )
        )[0]?.ms ?? 0,
      (ms) => ms > idleMs + 200,
      30_000,
      100,
    );

  beforeAll(async () => {
    running = await startTestHub(
      { configDir: CONFIG_DIR },
      { adapters: [createWebAdapter(loadWebConfig({}))] },
    );
  });
  afterAll(async () => {
    await running?.stop();
  });

  const sessionsOf = (channel: string, nativeKey: string) =>
    q<SessionRow>('SELECT * FROM sessions WHERE channel = $1 AND native_key = $2 ORDER BY created_at', [
      channel,
      nativeKey,
    ]);
  const texts = async (sessionId: string, role = 'assistant') =>
    (
      await q<{ content: string }>(
        'SELECT content FROM messages WHERE session_id = $1 AND role = $2 ORDER BY seq',
        [sessionId, role],
      )
    ).map((r) => r.content);

  it('a message after the idle timeout ends the session (ON SESSION END) and starts a new one that remembers the person', async () => {
    const phone = `+1555${String(Date.now()).slice(-7)}`;
    let n = 0;
    const send = (text: string) =>
      running.hub.ingress.accept({
        id: `whatsapp:wamid.${phone}.${++n}`,
        channel: 'whatsapp',
        bot: 'returning',
        from: { id: phone, name: 'Ana' },
        text,
        receivedAt: new Date().toISOString(),
      });

    await send('my name is Ana');
    const [first] = await until(
      () => sessionsOf('whatsapp', phone),
      (s) => s.length === 1,
    );
    expect(
      await until(
        () => texts(first!.id),
        (t) => t.length === 2,
      ),
    ).toEqual(['Hello, first time here', 'Noted']);
    await send('still here');
    await until(
      () => texts(first!.id),
      (t) => t.length === 3,
    );
    const [beforeIdle] = await sessionsOf('whatsapp', phone);

    await idle(first!.id);
    await send('hi again');
    const sessions = await until(
      () => sessionsOf('whatsapp', phone),
      (s) => s.length === 2,
    );
    const [old, next] = sessions as [SessionRow, SessionRow];
    expect(old.id).toBe(first!.id);
    expect(old.ended_at).not.toBeNull();
    expect(old.end_reason).toBe('idle');
    // The end is not the person's activity: the old session's last activity stays theirs.
    expect(old.last_activity_at.toISOString()).toBe(beforeIdle!.last_activity_at.toISOString());
    // ON SESSION END ran in the old session.
    const events = await q<{ type: string }>(
      'SELECT type FROM session_events WHERE session_id = $1 ORDER BY id',
      [old.id],
    );
    // The idle-out's event first, in the commit that ends the session (as the sweep's end writes it).
    expect(events.map((e) => e.type)).toEqual(['session.start', 'session.idle', 'goodbye', 'session.end']);
    const [idleEvent] = await q<{ data: { lastActivityAt: string } }>(
      "SELECT data FROM session_events WHERE session_id = $1 AND type = 'session.idle'",
      [old.id],
    );
    expect(Date.parse(idleEvent!.data.lastActivityAt)).toBe(beforeIdle!.last_activity_at.getTime());
    expect(
      await q('SELECT value FROM bot_memory WHERE bot = $1 AND key = $2', ['returning', `ended_${old.id}`]),
    ).toEqual([{ value: 'yes' }]);
    // A new session for the same person: start.bas again, with the user's memory and when they were last here.
    expect(next.ended_at).toBeNull();
    expect(next.user_id).toBe(old.user_id);
    expect(
      await until(
        () => texts(next.id),
        (t) => t.length === 2,
      ),
    ).toEqual([`Welcome back Ana, last here ${old.last_activity_at.toISOString()}`, 'You said hi again']);
    expect(await texts(next.id, 'user')).toEqual(['hi again']);
    const state = await q<{ context: unknown; suggestions: unknown }>(
      'SELECT context, suggestions FROM session_state WHERE session_id = $1',
      [next.id],
    );
    expect(state).toEqual([{ context: {}, suggestions: [] }]);
  });

  it('a channel override keeps an email thread open far longer than the bot default', async () => {
    const address = `keep-${Date.now()}@example.com`;
    const thread = `<t-${Date.now()}@example.com>`;
    const send = (i: number) =>
      running.hub.ingress.accept({
        id: `email:<m${i}-${thread.slice(1)}`,
        channel: 'email',
        bot: 'returning',
        from: { id: address },
        thread,
        text: `mail ${i}`,
        receivedAt: new Date().toISOString(),
      });
    await send(1);
    const [session] = await until(
      () => sessionsOf('email', `${address}#${thread}`),
      (s) => s.length === 1,
    );
    await until(
      () => texts(session!.id),
      (t) => t.length === 2,
    );
    await idle(session!.id);
    await send(2);
    await until(
      () => texts(session!.id, 'user'),
      (t) => t.length === 2,
    );
    expect(await sessionsOf('email', `${address}#${thread}`)).toHaveLength(1);
  });

  it('an idle API session hands its token to a new session of the same person', async () => {
    const api = apiClient(running.url);
    const opened = await api.createSession('returning');
    const first = await api.chat(opened.token, 'my name is Bo');
    expect(first.json.replies.map((r: { text: string }) => r.text)).toEqual(['Noted']);

    await idle(opened.session_id);
    const second = await api.chat(opened.token, 'hello');
    expect(second.status).toBe(200);
    expect(second.json.replies.map((r: { text: string }) => r.text)).toEqual(['You said hello']);
    const now = await api.call('GET', '/api/session', { token: opened.token });
    expect(now.status).toBe(200);
    expect(now.json.session_id).not.toBe(opened.session_id);
    const history = await api.call('GET', '/api/session/messages', { token: opened.token });
    const said = history.json.messages.filter((m: { role: string }) => m.role === 'assistant');
    expect(said[0].text).toMatch(/^Welcome back Bo, last here \d{4}-/);
    const [old] = await q<SessionRow>('SELECT * FROM sessions WHERE id = $1', [opened.session_id]);
    await until(
      () => q<SessionRow>('SELECT * FROM sessions WHERE id = $1', [opened.session_id]),
      (r) => r[0]?.ended_at !== null,
    );
    const [ended] = await q<SessionRow>('SELECT * FROM sessions WHERE id = $1', [opened.session_id]);
    expect(ended!.end_reason).toBe('idle');
    const [current] = await q<SessionRow>('SELECT * FROM sessions WHERE id = $1', [now.json.session_id]);
    expect(current!.user_id).toBe(old!.user_id);
    expect(current!.user_id).not.toBeNull();
  });

  it("on idle renewal the new session's start waits for the old session's end (a slow ON SESSION END)", async () => {
    const api = apiClient(running.url);
    const opened = await api.createSession('handover');
    await api.chat(opened.token, 'shoes');
    await api.chat(opened.token, 'size 42');
    await idle(opened.session_id, HANDOVER_IDLE_MS);
    const after = await api.chat(opened.token, 'back again');
    expect(after.status).toBe(200);
    const current = (await api.call('GET', '/api/session', { token: opened.token })).json
      .session_id as string;
    expect(current).not.toBe(opened.session_id);
    // The end handler took 800 ms and left a summary; the new greeting read it.
    expect(
      await until(
        () => texts(current),
        (t) => t.length === 2,
      ),
    ).toEqual(['Welcome back; last time: shoes, size 42', 'Noted: back again']);
    expect(await texts(opened.session_id)).toEqual([
      'Hello, first time here',
      'Noted: shoes',
      'Noted: size 42',
      'Goodbye (idle)',
    ]);
  });

  it('two messages racing after the idle timeout renew the session once, and both land in the new one', async () => {
    const api = apiClient(running.url);
    const opened = await api.createSession('returning');
    await api.chat(opened.token, 'first');
    await idle(opened.session_id);
    const [a, b] = await Promise.all([
      api.chat(opened.token, 'racer one', {}, '?wait=false'),
      api.chat(opened.token, 'racer two', {}, '?wait=false'),
    ]);
    expect([a.status, b.status]).toEqual([202, 202]);
    const current = (await api.call('GET', '/api/session', { token: opened.token })).json
      .session_id as string;
    expect(current).not.toBe(opened.session_id);
    const said = await until(
      () => texts(current, 'user'),
      (t) => t.length === 2,
    );
    expect([...said].sort()).toEqual(['racer one', 'racer two']);
    // One renewal: the old session and exactly one successor.
    const successors = await q("SELECT id FROM sessions WHERE meta->>'previousSessionId' = $1", [
      opened.session_id,
    ]);
    expect(successors).toEqual([{ id: current }]);
    expect(await texts(opened.session_id, 'user')).toEqual(['first']);
  });

  it('an idle web session moves its socket to the new session with a new welcome', async () => {
    const socket = await TestSocket.open(wsUrl(running.url));
    socket.send({ type: 'hello', bot: 'returning', lastSeq: 0 });
    const welcome = await socket.nextOfType('welcome');
    socket.send({ type: 'message', id: randomUUID(), text: 'my name is Cy' });
    await socket.next((f) => f.type === 'message' && f.text === 'Noted', 'the reply');
    // A second tab on the same conversation.
    const tab = await TestSocket.open(wsUrl(running.url));
    tab.send({ type: 'hello', token: welcome.token, lastSeq: 0 });
    expect((await tab.nextOfType('welcome')).sessionId).toBe(welcome.sessionId);

    await idle(welcome.sessionId);
    socket.send({ type: 'message', id: randomUUID(), text: 'hello' });
    const renewed = await socket.nextOfType('welcome');
    expect(renewed.sessionId).not.toBe(welcome.sessionId);
    expect(renewed.token).toBeUndefined();
    // The other tab follows the token to the new session when the old one's end commits.
    const followed = await tab.nextOfType('welcome');
    expect(followed.sessionId).toBe(renewed.sessionId);
    expect(tab.frames.some((f) => f.type === 'ended')).toBe(false);
    await tab.next(
      (f) => f.type === 'message' && f.text === 'You said hello',
      'the answer, in the other tab',
    );
    tab.ws.close();
    const greeting = await socket.next(
      (f) => f.type === 'message' && f.role === 'assistant' && /^Welcome back Cy/.test(f.text),
      'the greeting of the new session',
    );
    expect(greeting.seq).toBe(2);
    await socket.next((f) => f.type === 'message' && f.text === 'You said hello', 'the answer');
    socket.ws.close();
  });

  it('the expiry job removes old anonymous sessions, keeps authenticated ones, applies message retention, and is safe in two workers at once', async () => {
    const insertSession = async (authLevel: string, lastActivityDaysAgo: number) => {
      const id = randomUUID();
      const at = new Date(Date.now() - lastActivityDaysAgo * DAY_MS);
      await q(
        `INSERT INTO sessions (id, bot, channel, native_key, auth_level, created_at, last_activity_at, last_seq)
         VALUES ($1::uuid, 'returning', 'api', $1::text, $2, $3, $3, 2)`,
        [id, authLevel, at],
      );
      await q('INSERT INTO session_state (session_id) VALUES ($1)', [id]);
      for (const seq of [1, 2])
        await q(
          `INSERT INTO messages (session_id, seq, role, content, delivery_status, created_at)
           VALUES ($1, $2, 'user', 'old words', 'received', $3)`,
          [id, seq, seq === 1 ? new Date(Date.now() - 40 * DAY_MS) : new Date()],
        );
      return id;
    };
    const stale = await insertSession('anonymous', 8);
    const fresh = await insertSession('anonymous', 1);
    const signedIn = await insertSession('authenticated', 400);

    // Two workers: each its own connection pool, cache and lock attempt, at the same moment.
    const bots = await loadBots(CONFIG_DIR);
    const workers = [0, 1].map(() => ({
      db: openPostgres({ url: running.hub.config.databaseUrl!, poolSize: 2, logger: silentLogger }),
      bots,
      cache: createMemoryCache({ maxSessions: 10, ttlSeconds: 60 }),
      logger: silentLogger,
    }));
    const reports = await Promise.all(workers.map((w) => runExpiry(w)));
    for (const w of workers) await w.db.close();
    expect(reports.some((r) => r.ran)).toBe(true);
    expect(reports.reduce((sum, r) => sum + r.sessions, 0)).toBe(1);

    expect(await q('SELECT id FROM sessions WHERE id = $1', [stale])).toEqual([]);
    expect(await q('SELECT 1 FROM messages WHERE session_id = $1', [stale])).toEqual([]);
    expect(await q('SELECT 1 FROM session_state WHERE session_id = $1', [stale])).toEqual([]);
    const expired = await q<{ data: { sessionId: string } }>(
      `SELECT data FROM session_events WHERE type = 'session.expired' AND session_id IS NULL`,
    );
    expect(expired.map((e) => e.data.sessionId)).toEqual([stale]);
    // Kept: the recent anonymous one and the signed-in one however old; each lost its 40-day-old message.
    for (const id of [fresh, signedIn]) {
      expect(await q('SELECT id FROM sessions WHERE id = $1', [id])).toHaveLength(1);
      expect(await q<{ seq: string }>('SELECT seq FROM messages WHERE session_id = $1', [id])).toEqual([
        { seq: 2 },
      ]);
    }
    // Running it again finds nothing more to do.
    const again = await running.hub.expire();
    expect(again).toMatchObject({ ran: true, sessions: 0 });
  });
});

describe('the expiry job in the embedded hub (the table scheduler)', () => {
  let running: RunningHub;
  beforeAll(async () => {
    running = await startTestHub({ configDir: CONFIG_DIR, expiryIntervalMs: 300 });
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('runs on its own and removes an expired anonymous session', async () => {
    const id = await insertExpiredSession(running.hub.db);
    await untilSessionRemoved(running.hub.db, id, 20_000);
  });
});

describe('the expiry job on Redis (the BullMQ scheduler)', () => {
  let database: TestDatabase;
  let redis: { prefix: string; cleanup: () => Promise<void> };
  let running: RunningHub;

  beforeAll(async () => {
    database = await createTestDatabase();
    redis = testRedisPrefix();
    running = await startTestHub({
      configDir: CONFIG_DIR,
      databaseUrl: database.url,
      redisUrl: TEST_REDIS_URL,
      redisPrefix: redis.prefix,
      expiryIntervalMs: 300,
    });
  });
  afterAll(async () => {
    await running?.stop();
    await redis?.cleanup();
    await database?.drop();
  });

  it('runs on its own schedule in a worker and removes an expired anonymous session', async () => {
    const id = await insertExpiredSession(running.hub.db);
    await untilSessionRemoved(running.hub.db, id);
    const { rows } = await running.hub.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM session_events WHERE type = 'session.expired' AND data->>'sessionId' = $1`,
      [id],
    );
    expect(rows[0]!.n).toBe(1);
  });
});

describe('the idle sweep: sessions nobody comes back to end on their own', () => {
  let running: RunningHub;
  const q = <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    running.hub.db.query<T>(sql, params).then((r) => r.rows);
  const texts = async (sessionId: string, role = 'assistant') =>
    (
      await q<{ content: string }>(
        'SELECT content FROM messages WHERE session_id = $1 AND role = $2 ORDER BY seq',
        [sessionId, role],
      )
    ).map((r) => r.content);
  const sessionRow = async (id: string) =>
    (await q<SessionRow>('SELECT * FROM sessions WHERE id = $1', [id]))[0];
  const untilEnded = (id: string) =>
    until(
      () => sessionRow(id),
      (row) => row?.ended_at !== null,
      20_000,
    );

  beforeAll(async () => {
    running = await startTestHub(
      { configDir: CONFIG_DIR, idleSweepIntervalMs: 300, schedulerPollMs: 50 },
      { adapters: [createWebAdapter(loadWebConfig({}))] },
    );
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('ends an idle WhatsApp session through its lane and runs ON SESSION END; the next message starts a new one', async () => {
    const phone = `+1556${String(Date.now()).slice(-7)}`;
    let n = 0;
    const send = (text: string) =>
      running.hub.ingress.accept({
        id: `whatsapp:wamid.${phone}.${++n}`,
        channel: 'whatsapp',
        bot: 'returning',
        from: { id: phone, name: 'Eve' },
        text,
        receivedAt: new Date().toISOString(),
      });
    await send('my name is Eve');
    const [first] = await until(
      () => q<SessionRow>("SELECT * FROM sessions WHERE channel = 'whatsapp' AND native_key = $1", [phone]),
      (s) => s.length === 1,
    );
    // Nobody writes again: the sweep ends it (`returning` idles out after 3 s).
    const ended = await untilEnded(first!.id);
    expect(ended!.end_reason).toBe('idle');
    const events = await q<{ type: string }>(
      'SELECT type FROM session_events WHERE session_id = $1 ORDER BY id',
      [first!.id],
    );
    expect(events.map((e) => e.type)).toEqual(['session.start', 'session.idle', 'goodbye', 'session.end']);
    expect(
      await q('SELECT value FROM bot_memory WHERE bot = $1 AND key = $2', [
        'returning',
        `ended_${first!.id}`,
      ]),
    ).toEqual([{ value: 'yes' }]);

    await send('hi again');
    const sessions = await until(
      () =>
        q<SessionRow>(
          "SELECT * FROM sessions WHERE channel = 'whatsapp' AND native_key = $1 ORDER BY created_at",
          [phone],
        ),
      (s) => s.length === 2,
    );
    expect(
      await until(
        () => texts(sessions[1]!.id),
        (t) => t.length === 2,
      ),
    ).toEqual([`Welcome back Eve, last here ${ended!.last_activity_at.toISOString()}`, 'You said hi again']);
  });

  it('an idle API session ends with its end handler; its token then starts the next session, which sees what the end left', async () => {
    const api = apiClient(running.url);
    const opened = await api.createSession('handover');
    await api.chat(opened.token, 'shoes');
    await untilEnded(opened.session_id);
    expect(
      await until(
        () => texts(opened.session_id),
        (t) => t.length === 3,
      ),
    ).toEqual(['Hello, first time here', 'Noted: shoes', 'Goodbye (idle)']);
    // The token still reads the ended conversation...
    const history = await api.call('GET', '/api/session/messages', { token: opened.token });
    expect(history.status).toBe(200);
    // ...and its next message starts a new session (the end is not run twice).
    const next = await api.chat(opened.token, 'boots');
    expect(next.status).toBe(200);
    expect(next.json.replies.map((r: { text: string }) => r.text)).toEqual(['Noted: boots']);
    const current = (await api.call('GET', '/api/session', { token: opened.token })).json
      .session_id as string;
    expect(current).not.toBe(opened.session_id);
    expect(
      await until(
        () => texts(current),
        (t) => t.length === 2,
      ),
    ).toEqual(['Welcome back; last time: shoes', 'Noted: boots']);
    expect(await texts(opened.session_id)).toHaveLength(3);
  });

  it('a web socket stays on a session the sweep ended, and its next message moves it to the new session', async () => {
    const socket = await TestSocket.open(wsUrl(running.url));
    socket.send({ type: 'hello', bot: 'handover', lastSeq: 0 });
    const welcome = await socket.nextOfType('welcome');
    socket.send({ type: 'message', id: randomUUID(), text: 'hats' });
    await socket.next((f) => f.type === 'message' && f.text === 'Noted: hats', 'the reply');
    await socket.next(
      (f) => f.type === 'message' && f.text === 'Goodbye (idle)',
      'the end handler, said by the sweep',
    );
    expect(socket.frames.some((f) => f.type === 'ended')).toBe(false);
    socket.send({ type: 'message', id: randomUUID(), text: 'caps' });
    const renewed = await socket.nextOfType('welcome');
    expect(renewed.sessionId).not.toBe(welcome.sessionId);
    await socket.next(
      (f) => f.type === 'message' && f.text === 'Welcome back; last time: hats',
      'the new greeting',
    );
    await socket.next((f) => f.type === 'message' && f.text === 'Noted: caps', 'the answer');
    socket.ws.close();
  });
});

describe('the idle sweep keeps order with what a session has in flight', () => {
  let running: RunningHub;
  beforeAll(async () => {
    running = await startTestHub({ configDir: CONFIG_DIR, idleSweepIntervalMs: 3_600_000 });
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('an end queued behind a message that keeps the session active is dropped', async () => {
    const { hub } = running;
    const phone = `+1557${String(Date.now()).slice(-7)}`;
    let n = 0;
    const send = (text: string) =>
      hub.ingress.accept({
        id: `whatsapp:wamid.${phone}.${++n}`,
        channel: 'whatsapp',
        bot: 'handover',
        from: { id: phone },
        text,
        receivedAt: new Date().toISOString(),
      });
    const replies = async (id: string) =>
      (
        await hub.db.query<{ content: string }>(
          "SELECT content FROM messages WHERE session_id = $1 AND role = 'assistant' ORDER BY seq",
          [id],
        )
      ).rows.map((r) => r.content);
    await send('first');
    const session = await until(
      async () =>
        (await hub.db.query<{ id: string }>('SELECT id FROM sessions WHERE native_key = $1', [phone])).rows,
      (rows) => rows.length === 1,
    );
    const id = session[0]!.id;
    await until(
      () => replies(id),
      (r) => r.length === 2,
    );
    // A message that takes a second, then a sweep that sees the session idle (an hour from now)
    // before that message's turn commits: its end is queued behind the message.
    await send('slow');
    const queued = await sweepIdleSessions(
      { db: hub.db, bots: hub.bots, ingress: hub.ingress, logger: silentLogger },
      new Date(Date.now() + 3_600_000),
    );
    expect(queued).toBe(1);
    await send('after');
    // The lane is FIFO: once 'after' is answered, the end before it has been handled.
    expect(
      await until(
        () => replies(id),
        (r) => r.length === 4,
      ),
    ).toEqual(['Hello, first time here', 'Noted: first', 'Noted: slow', 'Noted: after']);
    const { rows } = await hub.db.query<{ ended_at: Date | null }>(
      'SELECT ended_at FROM sessions WHERE id = $1',
      [id],
    );
    expect(rows[0]!.ended_at).toBeNull();
    // Nor was it told as an idle-out: the event is the end's own, written with it (not by the sweep).
    const events = await hub.db.query<{ type: string }>(
      'SELECT type FROM session_events WHERE session_id = $1 ORDER BY id',
      [id],
    );
    expect(events.rows.map((e) => e.type)).toEqual(['session.start']);
  });
});
