import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Channel, EnvelopeInput } from '../../src/envelope.ts';
import { listMessages } from '../../src/store/messages.ts';
import { findOpenSnapshotByKey, loadSnapshot } from '../../src/store/sessions.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const DIALOG_CONFIG = path.join(REPO_ROOT, 'test/fixtures/dialog');
const NAMES = 'Ana Bob Cyd Dee Eve Fay Gus Hal Ida Jon Kai Lou Moe Ned Oz Pia Quin Rex Sol Tia'.split(' ');

const identity: Record<'whatsapp' | 'teams' | 'email', (i: number) => string> = {
  whatsapp: (i) => `+49151000${String(i).padStart(4, '0')}`,
  teams: (i) => `29:aad-user-${i}`,
  email: (i) => `person${i}@example.com`,
};

function envelope(channel: Channel, from: string, n: number, text: string): EnvelopeInput {
  return {
    id: `${channel}:dialog-${from}-${n}`,
    channel,
    bot: 'intake',
    from: { id: from },
    text,
    receivedAt: new Date().toISOString(),
  };
}

describe('dialog scripts through a real hub (PostgreSQL, in-process queue)', () => {
  let running: RunningHub;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    running = await startTestHub({ configDir: DIALOG_CONFIG, queueConcurrency: 64 });
    api = apiClient(running.url);
  });
  afterAll(async () => {
    await running?.stop();
  });

  const history = async (sessionId: string) =>
    (await listMessages(running.hub.db, sessionId, { limit: 100 })).map((m) => `${m.role}:${m.content}`);

  it('runs the same script in many sessions at once: no variable leaks, shared bot memory, channels told apart', async () => {
    const channels = ['whatsapp', 'teams', 'email'] as const;
    const people = NAMES.slice(0, 15).map((name, i) => {
      const channel = channels[i % channels.length]!;
      return { name, channel, from: identity[channel](i) };
    });
    // Every session's three messages are queued at once; each session's lane keeps their order.
    await Promise.all(
      people.map(async (p) => {
        for (const [n, text] of ['hi', p.name, 'pro'].entries()) {
          const accepted = await running.hub.ingress.accept(envelope(p.channel, p.from, n, text));
          expect(accepted.status).toBe('accepted');
        }
      }),
    );
    // Five API sessions in parallel, through HTTP.
    const apiPeople = NAMES.slice(15, 20).map((name) => ({ name }));
    const apiResults = await Promise.all(
      apiPeople.map(async (p) => {
        const s = await api.createSession('intake');
        const asked = await api.chat(s.token, p.name);
        const done = await api.chat(s.token, '2');
        return { ...p, session: s, asked: asked.json, done: done.json };
      }),
    );

    for (const p of people) {
      const snap = await until(
        () => findOpenSnapshotByKey(running.hub.db, { bot: 'intake', channel: p.channel, nativeKey: p.from }),
        (s) => s?.state.variables.plan !== undefined,
      );
      expect(snap!.state.variables).toEqual({ user_name: p.name, plan: 'Pro' });
      expect(snap!.state.dialog).toBeNull();
      expect(await history(snap!.session.id)).toEqual([
        'user:hi',
        `assistant:Welcome on ${p.channel}. What is your name?`,
        `user:${p.name}`,
        `assistant:Which plan, ${p.name}?`,
        'user:pro',
        `assistant:Thanks ${p.name} (${p.channel}), plan Pro`,
      ]);
    }
    for (const p of apiResults) {
      expect(p.asked.replies).toMatchObject([
        { text: `Which plan, ${p.name}?`, suggestions: [{ text: 'Basic' }, { text: 'Pro' }] },
      ]);
      expect(p.done.replies.map((r: { text: string }) => r.text)).toEqual([
        `Thanks ${p.name} (api), plan Pro`,
      ]);
      const snap = await loadSnapshot(running.hub.db, p.session.session_id);
      expect(snap!.state.variables).toEqual({ user_name: p.name, plan: 'Pro' });
    }

    // Every session wrote its own key of the bot's memory.
    const { rows } = await running.hub.db.query<{ key: string; value: string }>(
      `SELECT key, value FROM bot_memory WHERE bot = 'intake' AND key LIKE 'name_of_%'`,
    );
    expect(rows.map((r) => r.value).sort()).toEqual(
      [...people.map((p) => `${p.name}@${p.channel}`), ...apiPeople.map((p) => `${p.name}@api`)].sort(),
    );

    // Memory one session sets, every other session reads.
    const [first, ...others] = people;
    await running.hub.ingress.accept(
      envelope(first!.channel, first!.from, 10, 'remember the password is swordfish'),
    );
    await until(
      async () =>
        (await running.hub.db.query(`SELECT 1 FROM bot_memory WHERE bot = 'intake' AND key = 'shared'`)).rows
          .length,
      (n) => n === 1,
    );
    await Promise.all(
      others.map((p) => running.hub.ingress.accept(envelope(p.channel, p.from, 11, 'recall'))),
    );
    for (const p of others) {
      const snap = await findOpenSnapshotByKey(running.hub.db, {
        bot: 'intake',
        channel: p.channel,
        nativeKey: p.from,
      });
      const lines = await until(
        () => history(snap!.session.id),
        (h) => h.length >= 8,
      );
      expect(lines.slice(6)).toEqual(['user:recall', 'assistant:shared=the password is swordfish']);
    }
    // And the session variables stayed each session's own.
    const echo = people[4]!;
    await running.hub.ingress.accept(envelope(echo.channel, echo.from, 12, 'hello'));
    const snap = await findOpenSnapshotByKey(running.hub.db, {
      bot: 'intake',
      channel: echo.channel,
      nativeKey: echo.from,
    });
    const lines = await until(
      () => history(snap!.session.id),
      (h) => h.length >= 10,
    );
    expect(lines.at(-1)).toBe(`assistant:${echo.name} on ${echo.channel} said hello`);
  });

  it('says when a session waits at HEAR, re-asks an invalid answer, and runs ON SESSION END when it ends', async () => {
    const s = await api.createSession('intake');
    const waiting = await until(
      () => api.call('GET', '/api/session', { token: s.token }),
      (r) => r.json?.state?.waiting_for_input === true,
    );
    expect(waiting.json.last_seq).toBe(2);
    const retry = await api.chat(s.token, '42');
    expect(retry.json.replies.map((r: { text: string }) => r.text)).toEqual([
      'Sorry, I need a name here, written with letters. Please try again.',
    ]);
    await api.chat(s.token, 'Zoe');
    await api.chat(s.token, 'Basic');
    const after = await api.call('GET', '/api/session', { token: s.token });
    expect(after.json.state).toMatchObject({
      waiting_for_input: false,
      variables: { user_name: 'Zoe', plan: 'Basic' },
    });

    expect((await api.call('DELETE', '/api/session', { token: s.token })).status).toBe(200);
    const events = await until(
      async () =>
        (
          await running.hub.db.query<{ data: unknown }>(
            `SELECT data FROM session_events WHERE session_id = $1 AND type = 'intake_end'`,
            [s.session_id],
          )
        ).rows,
      (r) => r.length === 1,
    );
    expect(events[0]!.data).toEqual({ value: 'Zoe' });
  });

  it('answers a script that fails with the apology of bot.json, records the error, and goes on', async () => {
    const s = await api.createSession('intake');
    await api.chat(s.token, 'Uma');
    await api.chat(s.token, 'Pro');
    const crashed = await api.chat(s.token, 'crash');
    expect(crashed.json.replies.map((r: { text: string }) => r.text)).toEqual(['Sorry, the intake failed.']);
    const { rows } = await running.hub.db.query<{ data: Record<string, unknown> }>(
      `SELECT data FROM session_events WHERE session_id = $1 AND type = 'dialog.error'`,
      [s.session_id],
    );
    expect(rows.map((r) => r.data)).toEqual([
      { script: 'message.bas', line: 8, column: 9, message: 'division by zero' },
    ]);
    const next = await api.chat(s.token, 'still here');
    expect(next.json.replies.map((r: { text: string }) => r.text)).toEqual(['Uma on api said still here']);
  });
});
