import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RATING_SUGGESTIONS } from '../../src/lifecycle/rating.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';

const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/rating');
const ADMIN_TOKEN = 'ask-rating-admin-token-0123456789abcdef01';

interface SessionRow {
  id: string;
  ended_at: Date | null;
  end_reason: string | null;
}

/** WhatsApp messages from `phone` to the `rater` bot, queued through a hub's ingress (ids count up). */
function raterSender(phone: string) {
  let n = 0;
  return (through: RunningHub, text: string) =>
    through.hub.ingress.accept({
      id: `whatsapp:wamid.${phone}.${++n}`,
      channel: 'whatsapp',
      bot: 'rater',
      from: { id: phone },
      text,
      receivedAt: new Date().toISOString(),
    });
}

/**
 * `sessions.askRating`: the hub asks for 1–5 stars when a conversation ends, and a rating sent
 * back within the window is the ended session's `rating` event instead of a new session.
 * (WhatsApp envelopes through the ingress: the routing is the core's; the channels' rendering
 * is tested through their adapters.)
 */
describe('askRating: a rating after the end answers the ended session', () => {
  let running: RunningHub;
  const q = <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    running.hub.db.query<T>(sql, params).then((r) => r.rows);
  const sessionsOf = (bot: string, phone: string) =>
    q<SessionRow>(
      "SELECT id, ended_at, end_reason FROM sessions WHERE bot = $1 AND channel = 'whatsapp' AND native_key = $2 ORDER BY created_at",
      [bot, phone],
    );
  const history = (sessionId: string) =>
    q<{ role: string; content: string; payload: { suggestions?: unknown } }>(
      "SELECT role, content, payload FROM messages WHERE session_id = $1 AND role IN ('user', 'assistant') ORDER BY seq",
      [sessionId],
    );
  const ratings = (sessionId: string) =>
    q<{ data: unknown }>("SELECT data FROM session_events WHERE session_id = $1 AND type = 'rating'", [
      sessionId,
    ]);

  /** Waits until `text` is in the session's history (the bot's answer to a message). */
  const said = (sessionId: string, text: string) =>
    until(
      () => history(sessionId),
      (h) => h.some((m) => m.content === text),
    );

  let phoneN = 0;
  /** A person on WhatsApp writing to `bot`; `send` returns once the message is queued. */
  function person(bot: string) {
    const phone = `+1555${String(Date.now()).slice(-6)}${++phoneN}`;
    let n = 0;
    const send = (text: string, id = `whatsapp:wamid.${phone}.${++n}`) =>
      running.hub.ingress.accept({
        id,
        channel: 'whatsapp',
        bot,
        from: { id: phone, name: 'Rita' },
        text,
        receivedAt: new Date().toISOString(),
      });
    const sessions = () => sessionsOf(bot, phone);
    /** Says `first`, then `bye` (the fixture bots end on it); the ended session, once it is ended. */
    const endConversation = async (first = 'hi') => {
      await send(first);
      await send('bye');
      const [ended] = await until(sessions, (s) => s.length === 1 && s[0]!.ended_at !== null);
      return ended!;
    };
    return { phone, send, sessions, endConversation };
  }

  beforeAll(async () => {
    running = await startTestHub({
      configDir: CONFIG_DIR,
      adminToken: ADMIN_TOKEN,
      idleSweepIntervalMs: 300,
      schedulerPollMs: 50,
    });
  });
  afterAll(async () => {
    await running?.stop();
  });

  it("asks with the five stars when the bot ends the conversation; the answer is the ended session's rating", async () => {
    const p = person('rater');
    const first = await p.endConversation();
    expect(first.end_reason).toBe('done');
    const asked = await until(
      () => history(first.id),
      (h) => h.some((m) => m.payload.suggestions),
    );
    expect(asked.at(-1)).toEqual({
      role: 'assistant',
      content: 'How would you rate this conversation? 1 star is poor, 5 stars excellent.',
      payload: { suggestions: RATING_SUGGESTIONS },
    });
    const [ask] = await q<{ open_until: Date; answered_at: Date | null }>(
      'SELECT open_until, answered_at FROM rating_asks WHERE session_id = $1',
      [first.id],
    );
    expect(ask!.answered_at).toBeNull();
    // The window is the bot's 5 minutes.
    expect(ask!.open_until.getTime() - Date.now()).toBeGreaterThan(4 * 60_000);

    await p.send('4');
    const rated = await until(
      () => ratings(first.id),
      (r) => r.length === 1,
    );
    expect(rated[0]!.data).toEqual({ score: 4, source: 'askRating' });
    expect((await history(first.id)).slice(-2).map((m) => [m.role, m.content])).toEqual([
      ['user', '4'],
      ['assistant', 'Thanks for rating us'],
    ]);
    // No new session: the rating went to the ended one.
    expect((await p.sessions()).length).toBe(1);
    expect(
      (await q<{ score: number }>('SELECT score FROM rating_asks WHERE session_id = $1', [first.id]))[0]!
        .score,
    ).toBe(4);

    // The ask is answered: another digit is a new conversation, as any message.
    await p.send('5');
    const two = await until(p.sessions, (s) => s.length === 2);
    await said(two[1]!.id, 'You said 5');
    expect(await ratings(first.id)).toHaveLength(1);
  });

  it('a message that is not a rating opens a new session; a row of stars is a rating', async () => {
    const p = person('rater');
    const first = await p.endConversation('hello');
    await p.send('where is my order?');
    const both = await until(p.sessions, (s) => s.length === 2);
    await said(both[1]!.id, 'You said where is my order?');
    expect(await ratings(first.id)).toEqual([]);
    expect(await ratings(both[1]!.id)).toEqual([]);

    // A star row (what a keyboard button showing the stars sends) to another ended conversation.
    const r = person('rater');
    const ended = await r.endConversation('hello');
    await r.send('★★');
    expect(
      (
        await until(
          () => ratings(ended!.id),
          (x) => x.length === 1,
        )
      )[0]!.data,
    ).toEqual({ score: 2, source: 'askRating' });
  });

  it('the same rating delivered twice is counted once', async () => {
    const p = person('rater');
    const first = await p.endConversation();
    await p.send('3', `whatsapp:wamid.${p.phone}.again`);
    await until(
      () => ratings(first.id),
      (r) => r.length === 1,
    );
    await p.send('3', `whatsapp:wamid.${p.phone}.again`);
    // A message after the repeat proves the repeat was handled (the lane keeps the order).
    await p.send('after');
    const sessions = await until(p.sessions, (s) => s.length === 2);
    await said(sessions[1]!.id, 'You said after');
    expect(await ratings(first.id)).toHaveLength(1);
    expect((await history(first.id)).filter((m) => m.role === 'user').map((m) => m.content)).toEqual([
      'hi',
      'bye',
      '3',
    ]);
  });

  it('after the window a digit is a new conversation', async () => {
    const p = person('rater');
    const first = await p.endConversation();
    await until(
      () => q('SELECT 1 FROM rating_asks WHERE session_id = $1', [first.id]),
      (r) => r.length === 1,
    );
    // The window is the bot's; moving its end to the past stands for waiting 5 minutes.
    await q("UPDATE rating_asks SET open_until = now() - interval '1 second' WHERE session_id = $1", [
      first.id,
    ]);
    await p.send('5');
    const two = await until(p.sessions, (s) => s.length === 2);
    await said(two[1]!.id, 'You said 5');
    expect(await ratings(first.id)).toEqual([]);
  });

  it('the idle sweep ends a quiet conversation with the ask, and the rating reaches it', async () => {
    const p = person('rater');
    await p.send('hi');
    const [first] = await until(p.sessions, (s) => s.length === 1 && s[0]!.ended_at !== null, 20_000);
    expect(first!.end_reason).toBe('idle');
    const h = await until(
      () => history(first!.id),
      (x) => x.some((m) => m.payload.suggestions),
    );
    expect(h.map((m) => m.content)).toEqual([
      'hi',
      'Hello',
      'You said hi',
      'Ended (idle)',
      'How would you rate this conversation? 1 star is poor, 5 stars excellent.',
    ]);
    await p.send('5');
    await until(
      () => ratings(first!.id),
      (r) => r.length === 1,
    );
    expect((await p.sessions()).length).toBe(1);
  });

  it('an API session the sweep ended is asked; its token rates it, and then starts the next session', async () => {
    const api = apiClient(running.url);
    const opened = await api.createSession('rater');
    expect((await api.chat(opened.token, 'hi')).status).toBe(200);
    await until(
      () => q<SessionRow>('SELECT id, ended_at, end_reason FROM sessions WHERE id = $1', [opened.session_id]),
      (s) => s[0]?.ended_at !== null && s[0]?.end_reason === 'idle',
      20_000,
    );
    const asked = await until(
      () => history(opened.session_id),
      (h) => h.some((m) => m.payload.suggestions),
    );
    expect(asked.at(-1)!.payload.suggestions).toEqual(RATING_SUGGESTIONS);
    const rated = await api.chat(opened.token, '4');
    expect(rated.status).toBe(200);
    expect(rated.json).toMatchObject({
      status: 'completed',
      envelope_id: expect.stringMatching(new RegExp(`^api:${opened.session_id}:`)),
      replies: [expect.objectContaining({ text: 'Thanks for rating us' })],
    });
    expect(await ratings(opened.session_id)).toEqual([{ data: { score: 4, source: 'askRating' } }]);
    // The ask is answered: the token's next message starts the next session, as after any idle-out.
    const next = await api.chat(opened.token, 'hello again');
    expect(next.status).toBe(200);
    expect(next.json.envelope_id).not.toContain(opened.session_id);
    expect(next.json.replies.map((r: { text: string }) => r.text)).toContain('You said hello again');
  });

  it('a bot without askRating does not ask, and a digit after its end is a new conversation', async () => {
    const p = person('quiet');
    const first = await p.endConversation();
    await p.send('5');
    await until(p.sessions, (s) => s.length === 2);
    expect((await history(first.id)).map((m) => m.content)).toEqual([
      'hi',
      'Hello',
      'You said hi',
      'bye',
      'Goodbye',
    ]);
    expect(await q('SELECT 1 FROM rating_asks WHERE session_id = $1', [first.id])).toEqual([]);
  });

  it('the satisfaction chart counts the ratings the ask collected', async () => {
    const { rows } = await running.hub.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM session_events WHERE bot = 'rater' AND type = 'rating'",
    );
    const res = await fetch(`${running.url}/api/admin/analytics/satisfaction?bot=rater`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { series: { name: string; total: number | null }[] };
    expect(rows[0]!.n).toBeGreaterThan(0);
    expect(body.series.find((s) => s.name === 'ratings')!.total).toBe(rows[0]!.n);
  });
});

describe('askRating across a restart, and an idle-out the person caused', () => {
  let database: TestDatabase;
  let running: RunningHub | undefined;
  const q = <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    running!.hub.db.query<T>(sql, params).then((r) => r.rows);
  // The sweep stays away: a session here ends only when a message finds it idle.
  const start = () =>
    startTestHub({ configDir: CONFIG_DIR, databaseUrl: database.url, idleSweepIntervalMs: 3_600_000 });
  const phone = `+1666${String(Date.now()).slice(-7)}`;
  const sendThrough = raterSender(phone);
  const send = (text: string) => sendThrough(running!, text);
  const sessions = () =>
    q<SessionRow>(
      "SELECT id, ended_at, end_reason FROM sessions WHERE channel = 'whatsapp' AND native_key = $1 ORDER BY created_at",
      [phone],
    );

  beforeAll(async () => {
    database = await createTestDatabase();
    running = await start();
  });
  afterAll(async () => {
    await running?.stop();
    await database?.drop();
  });

  it('an ask made before a restart is answered after it', async () => {
    await send('hi');
    await send('bye');
    const [first] = await until(sessions, (s) => s.length === 1 && s[0]!.ended_at !== null);
    await until(
      () => q('SELECT 1 FROM rating_asks WHERE session_id = $1', [first!.id]),
      (r) => r.length === 1,
    );
    await running!.stop();
    running = await start();
    await send('5');
    const rated = await until(
      () =>
        q<{ data: unknown }>("SELECT data FROM session_events WHERE session_id = $1 AND type = 'rating'", [
          first!.id,
        ]),
      (r) => r.length === 1,
    );
    expect(rated[0]!.data).toEqual({ score: 5, source: 'askRating' });
    expect(await sessions()).toHaveLength(1);
  });

  it('a session the person’s own message idles out is not asked', async () => {
    await send('hello again');
    const [, second] = await until(sessions, (s) => s.length === 2);
    // Idle by the session's own last activity (the bot's 3 s), as the hub recorded it.
    await until(
      async () =>
        (
          await q<{ ms: number }>(
            'SELECT extract(epoch FROM clock_timestamp() - last_activity_at)::float8 * 1000 AS ms FROM sessions WHERE id = $1',
            [second!.id],
          )
        )[0]!.ms,
      (ms) => ms > 3_200,
      20_000,
      100,
    );
    await send('4');
    const all = await until(sessions, (s) => s.length === 3 && s[1]!.ended_at !== null);
    expect(all[1]!.end_reason).toBe('idle');
    expect(await q('SELECT 1 FROM rating_asks WHERE session_id = $1', [second!.id])).toEqual([]);
    // The digit went to the new session as an ordinary message.
    await until(
      () =>
        q<{ content: string }>("SELECT content FROM messages WHERE session_id = $1 AND role = 'assistant'", [
          all[2]!.id,
        ]),
      (m) => m.some((r) => r.content === 'You said 4'),
    );
  });
});

describe('askRating with Redis: two hubs on one database and one Redis', () => {
  let database: TestDatabase;
  let redis: { prefix: string; cleanup: () => Promise<void> };
  const hubs: RunningHub[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    redis = testRedisPrefix();
    for (let i = 0; i < 2; i++)
      hubs.push(
        await startTestHub({
          configDir: CONFIG_DIR,
          databaseUrl: database.url,
          redisUrl: TEST_REDIS_URL,
          redisPrefix: redis.prefix,
        }),
      );
  });
  afterAll(async () => {
    for (const h of hubs) await h.stop();
    await redis?.cleanup();
    await database?.drop();
  });

  it('the ask made through one hub is answered through the other, once', async () => {
    const phone = `+1777${String(Date.now()).slice(-7)}`;
    const send = raterSender(phone);
    const q = <T>(sql: string, params: unknown[]) =>
      hubs[0]!.hub.db.query<T>(sql, params).then((r) => r.rows);
    const sessions = () =>
      q<SessionRow>(
        "SELECT id, ended_at, end_reason FROM sessions WHERE channel = 'whatsapp' AND native_key = $1 ORDER BY created_at",
        [phone],
      );
    await send(hubs[0]!, 'hi');
    await send(hubs[0]!, 'bye');
    const [first] = await until(sessions, (s) => s.length === 1 && s[0]!.ended_at !== null);
    await until(
      () => q('SELECT 1 FROM rating_asks WHERE session_id = $1', [first!.id]),
      (r) => r.length === 1,
    );
    await send(hubs[1]!, '2');
    await send(hubs[1]!, '3');
    // The second rating is a new conversation: the ask was answered by the first.
    const both = await until(sessions, (s) => s.length === 2);
    await until(
      () =>
        q<{ content: string }>("SELECT content FROM messages WHERE session_id = $1 AND role = 'assistant'", [
          both[1]!.id,
        ]),
      (m) => m.some((r) => r.content === 'You said 3'),
    );
    expect(
      await q<{ data: unknown }>(
        "SELECT data FROM session_events WHERE session_id = $1 AND type = 'rating'",
        [first!.id],
      ),
    ).toEqual([{ data: { score: 2, source: 'askRating' } }]);
  });
});
