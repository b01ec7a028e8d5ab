import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../helpers/cluster.ts';
import { apiClient } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const SESSIONS = 300;
const MESSAGES = 30;

type Api = ReturnType<typeof apiClient>;

/** Sends every session's messages in order (each accepted before the next), all sessions at once. */
async function sendAll(
  api: Api,
  tokens: string[],
  messages: number,
  onProgress?: (sent: number) => void,
): Promise<void> {
  let sent = 0;
  await Promise.all(
    tokens.map(async (token) => {
      for (let n = 0; n < messages; n++) {
        // Resent, as a platform would, until it is accepted (a worker may be restarting).
        await until(
          () => api.chat(token, `m${n}`, { message_id: `m${n}` }, '?wait=false').catch(() => undefined),
          (res) => res?.status === 202,
          15_000,
          100,
        );
        onProgress?.(++sent);
      }
    }),
  );
}

async function waitForRows(db: pg.Client, expected: number, timeoutMs: number): Promise<number> {
  const count = async () =>
    (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM messages`)).rows[0]!.n;
  // On a timeout the count so far, for the caller's assertion to show.
  return until(count, (n) => n >= expected, timeoutMs, 250).catch(count);
}

/** Every session: greeting, then each message followed by exactly its one reply, in send order. */
async function verifyHistories(db: pg.Client, sessionIds: string[], messages: number): Promise<string[]> {
  const { rows } = await db.query<{ session_id: string; role: string; content: string; seq: number }>(
    `SELECT session_id, role, content, seq FROM messages WHERE session_id = ANY($1::uuid[]) ORDER BY session_id, seq`,
    [sessionIds],
  );
  const bySession = new Map<string, string[]>();
  for (const r of rows) {
    if (!bySession.has(r.session_id)) bySession.set(r.session_id, []);
    bySession.get(r.session_id)!.push(`${r.role}:${r.content}`);
  }
  const expected = [
    'system:session started',
    "assistant:Hello! I'm the Switchboard demo bot. Say anything and I'll echo it back.",
  ];
  for (let n = 0; n < messages; n++)
    expected.push(`user:m${n}`, `assistant:You said: m${n} (message #${n + 1} in this session)`);
  const wrong: string[] = [];
  for (const id of sessionIds) {
    const got = bySession.get(id) ?? [];
    if (JSON.stringify(got) !== JSON.stringify(expected))
      wrong.push(
        `${id}: ${got.length} rows, first difference at ${got.findIndex((g, i) => g !== expected[i])}`,
      );
  }
  return wrong;
}

describe('scale-out: one gateway, three worker processes', () => {
  const cluster = new Cluster();
  let db: pg.Client;
  let api: Api;

  beforeAll(async () => {
    await cluster.init();
    await cluster.addGateway();
    await Promise.all([cluster.addWorker(), cluster.addWorker(), cluster.addWorker()]);
    api = apiClient(cluster.gateways[0]!.url);
    db = new pg.Client({ connectionString: cluster.database!.url });
    await db.connect();
  }, 180_000);

  afterAll(async () => {
    await db?.end();
    await cluster.stop();
  });

  async function openSessions(n: number): Promise<{ ids: string[]; tokens: string[] }> {
    const sessions = await Promise.all(Array.from({ length: n }, () => api.createSession()));
    return { ids: sessions.map((s) => s.session_id), tokens: sessions.map((s) => s.token) };
  }

  it(`keeps ${SESSIONS} sessions × ${MESSAGES} messages in send order, one reply each`, async () => {
    await db.query('TRUNCATE messages, session_events, session_state, sessions CASCADE');
    const { ids, tokens } = await openSessions(SESSIONS);
    await sendAll(api, tokens, MESSAGES);
    const expected = SESSIONS * (2 + 2 * MESSAGES);
    expect(await waitForRows(db, expected, 240_000)).toBe(expected);
    expect(await verifyHistories(db, ids, MESSAGES)).toEqual([]);
  }, 400_000);

  it('loses nothing and duplicates nothing while a worker is SIGKILLed three times', async () => {
    await db.query('TRUNCATE messages, session_events, session_state, sessions CASCADE');
    const { ids, tokens } = await openSessions(SESSIONS);
    const total = SESSIONS * MESSAGES;
    const killAt = [0.2, 0.45, 0.7].map((f) => Math.floor(total * f));
    const kills: Promise<void>[] = [];
    await sendAll(api, tokens, MESSAGES, (sent) => {
      if (sent === killAt[kills.length]) {
        const victim = cluster.workers.shift()!;
        kills.push(
          victim.stop('SIGKILL').then(async () => {
            await cluster.addWorker();
          }),
        );
      }
    });
    await Promise.all(kills);
    expect(kills).toHaveLength(3);
    const expected = SESSIONS * (2 + 2 * MESSAGES);
    expect(await waitForRows(db, expected, 300_000)).toBe(expected);
    expect(await verifyHistories(db, ids, MESSAGES)).toEqual([]);
    const dup = await db.query(
      `SELECT in_reply_to FROM messages WHERE in_reply_to IS NOT NULL GROUP BY in_reply_to HAVING count(*) > 1 AND in_reply_to NOT LIKE '%:start'`,
    );
    expect(dup.rows).toEqual([]);
  }, 500_000);

  it('a worker stopped with SIGTERM mid-run exits cleanly and hands its sessions on: nothing lost', async () => {
    await db.query('TRUNCATE messages, session_events, session_state, sessions CASCADE');
    const sessions = 100;
    const messages = 20;
    const { ids, tokens } = await openSessions(sessions);
    let stopped: Promise<number | null> | undefined;
    await sendAll(api, tokens, messages, (sent) => {
      if (sent === Math.floor((sessions * messages) / 3)) stopped = cluster.workers.shift()!.stop('SIGTERM');
    });
    expect(await stopped).toBe(0);
    const expected = sessions * (2 + 2 * messages);
    expect(await waitForRows(db, expected, 240_000)).toBe(expected);
    expect(await verifyHistories(db, ids, messages)).toEqual([]);
    await cluster.addWorker();
  }, 400_000);

  it('processes the same envelope once when it is submitted three times at once through two gateways', async () => {
    const second = await cluster.addGateway();
    const other = apiClient(second.url);
    const s = await api.createSession();
    const results = await Promise.all([
      api.chat(s.token, 'pay once', { message_id: 'same-1' }, '?wait=false'),
      other.chat(s.token, 'pay once', { message_id: 'same-1' }, '?wait=false'),
      api.chat(s.token, 'pay once', { message_id: 'same-1' }, '?wait=false'),
    ]);
    expect(results.map((r) => r.status)).toEqual([202, 202, 202]);
    await until(
      () => api.history(s.token),
      (h) => h.json.messages.some((m: { text: string }) => m.text.startsWith('You said: pay once')),
      30_000,
    );
    // The session's lane is FIFO: once a later message is answered, any copy queued before it
    // has been handled.
    const after = await api.chat(s.token, 'after', { message_id: 'after-1' });
    expect(after.status).toBe(200);
    const h = await api.history(s.token);
    expect(
      h.json.messages.filter((m: { role: string }) => m.role === 'user').map((m: { text: string }) => m.text),
    ).toEqual(['pay once', 'after']);
    expect(
      h.json.messages.filter((m: { text: string }) => m.text.startsWith('You said: pay once')),
    ).toHaveLength(1);
  }, 120_000);

  it('had no process crash on its own', () => {
    expect(cluster.crashes()).toEqual([]);
  });

  it('serves health and readiness on every role', async () => {
    for (const p of [...cluster.gateways, ...cluster.workers]) {
      const res = await fetch(`${p.url}/readyz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({
        status: 'ready',
        checks: { database: 'ok', queue: 'ok', redis: 'ok' },
      });
    }
  });
});
