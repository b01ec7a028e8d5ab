import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnvelopeInput } from '../../src/envelope.ts';
import { listMessages } from '../../src/store/messages.ts';
import { findOpenSnapshotByKey } from '../../src/store/sessions.ts';
import { adminClient, rowsMentioningAny } from '../helpers/admin.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

/** The sample bot of config/bots/default, on WhatsApp, where a person is known again by their number. */
const ADMIN_TOKEN = 'operator-secret-for-the-default-bot-tests-0123456789';

describe('the sample bot (config/bots/default)', () => {
  let running: RunningHub;
  const ana = '+351910000001';
  let n = 0;

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN });
  });
  afterAll(async () => {
    await running?.stop();
  });

  const send = (text: string, kind: 'message' | 'end' = 'message', from = ana): Promise<unknown> => {
    n++;
    const env: EnvelopeInput = {
      id: `whatsapp:wamid.sample.${n}`,
      kind,
      channel: 'whatsapp',
      bot: 'default',
      from: { id: from },
      text,
      receivedAt: new Date().toISOString(),
    };
    return running.hub.ingress.accept(env);
  };

  /** Sends a message and returns the replies its turn produced. */
  async function say(text: string, from = ana) {
    await send(text, 'message', from);
    const envelopeId = `whatsapp:wamid.sample.${n}`;
    // The inbound row and its replies are committed together: once it is there, so are they.
    const sessionId = await until(
      async () =>
        (
          await running.hub.db.query<{ session_id: string }>(
            'SELECT session_id FROM messages WHERE envelope_id = $1',
            [envelopeId],
          )
        ).rows[0]?.session_id,
      (id) => id !== undefined,
    );
    const messages = await listMessages(running.hub.db, sessionId!, { limit: 200 });
    return messages
      .filter((m) => m.inReplyTo === envelopeId)
      .map((m) => ({
        text: m.content,
        ...(m.payload.suggestions ? { suggestions: m.payload.suggestions } : {}),
      }));
  }

  it('echoes, shows suggestions, runs the sign-up form with validated answers, and greets by name next time', async () => {
    expect(await say('hello')).toEqual([
      { text: "Hello! I'm the Switchboard demo bot. Say anything and I'll echo it back." },
      { text: 'You said: hello (message #1 in this session)' },
    ]);
    const help = await say('help');
    expect(help).toHaveLength(1);
    expect(help[0]!.suggestions).toEqual([
      { text: 'Sign up', value: 'sign up' },
      { text: 'Forget me', value: 'forget me' },
      { text: 'Help', value: 'help' },
    ]);
    expect(await say('Sign up')).toEqual([{ text: "Let's sign you up. What is your name?" }]);
    expect(await say('123')).toEqual([
      { text: 'Sorry, I need a name here, written with letters. Please try again.' },
    ]);
    expect(await say('Ana')).toEqual([{ text: 'Thanks, Ana. What is your email address?' }]);
    expect(await say('not an email')).toEqual([
      {
        text: 'Sorry, that does not look like an email address (for example ana@example.com). Please try again.',
      },
    ]);
    expect(await say('ana@example.com')).toEqual([{ text: 'When were you born? For example 31/12/1990.' }]);
    expect(await say('31/12/1990')).toEqual([
      {
        text: 'Which plan would you like?',
        suggestions: [{ text: 'Free' }, { text: 'Pro' }, { text: 'Team' }],
      },
    ]);
    expect(await say('3')).toEqual([{ text: 'Shall I send you the newsletter?' }]);
    expect(await say('yes')).toEqual([
      { text: 'All set: Ana <ana@example.com>, born 31 December 1990, Team plan, newsletter yes.' },
      {
        text: 'You are sign-up number 1. Type help to see what else I can do.',
        suggestions: [{ text: 'Help', value: 'help' }],
      },
    ]);
    const snap = await findOpenSnapshotByKey(running.hub.db, {
      bot: 'default',
      channel: 'whatsapp',
      nativeKey: ana,
    });
    expect(snap!.state.variables).toMatchObject({ user_name: 'Ana', email: 'ana@example.com', plan: 'Team' });
    expect(snap!.state.context).toEqual({ customer: 'Ana is on the Team plan' });

    // The session ends; the next message opens a new one, and the greeting knows the name.
    await send('', 'end');
    expect(await say('hi again')).toEqual([
      { text: "Welcome back, Ana! Say anything and I'll echo it back." },
      { text: 'You said: hi again (message #1 in this session)' },
    ]);
    // Forgetting writes an empty value to her memory (JSON null), and the next session is a stranger's.
    expect(await say('forget me')).toEqual([{ text: 'Done: I no longer know your name.' }]);
    await send('', 'end');
    expect((await say('hello?'))[0]).toEqual({
      text: "Hello! I'm the Switchboard demo bot. Say anything and I'll echo it back.",
    });
  });

  it("keeps the name in the person's USER MEMORY, which erasing them removes: nothing of it is left", async () => {
    const zoe = '+351910000002';
    const name = 'Zoe Erasable';
    for (const text of ['sign up', name, 'zoe@example.com', '1/2/1990', 'Free']) await say(text, zoe);
    expect((await say('no', zoe))[0]!.text).toBe(
      `All set: ${name} <zoe@example.com>, born 01 February 1990, Free plan, newsletter no.`,
    );
    const snap = await findOpenSnapshotByKey(running.hub.db, {
      bot: 'default',
      channel: 'whatsapp',
      nativeKey: zoe,
    });
    const userId = snap!.session.userId!;
    expect(userId).toMatch(/^[0-9a-f-]{36}$/);
    const { rows: memory } = await running.hub.db.query(
      'SELECT key, value FROM user_memory WHERE user_id = $1',
      [userId],
    );
    expect(memory).toEqual([{ key: 'name', value: name }]);
    await send('', 'end', zoe);
    expect((await say('hi', zoe))[0]!.text).toBe(
      `Welcome back, ${name}! Say anything and I'll echo it back.`,
    );

    const erased = await adminClient(running.url, ADMIN_TOKEN)('DELETE', `/api/users/${userId}`);
    expect(erased.status).toBe(200);
    // Nothing names her or her user id any more but the erasure's own audit event (her id only).
    const { rows: audit } = await running.hub.db.query<{ id: string }>(
      `SELECT id FROM session_events WHERE type = 'user.erased' AND data->>'userId' = $1`,
      [userId],
    );
    expect(audit).toHaveLength(1);
    const { found } = await rowsMentioningAny(running.hub.db, [name, userId]);
    expect(found.filter((row) => !row.startsWith(`session_events: (${audit[0]!.id},`))).toEqual([]);
  });
});
