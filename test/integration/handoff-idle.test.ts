import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepIdleSessions } from '../../src/lifecycle/idle-sweep.ts';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { silentLogger } from '../helpers/database.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-handoff-idle-tests-0123456789';
/** Past the default bot's idle timeout (30 minutes, config/bots/default). */
const QUIET_MS = 31 * 60_000;

type SessionRow = { id: string; ended_at: Date | null; end_reason: string | null };

/**
 * The shipped default bot hands a person to an agent on `agent`. While the agent holds the
 * conversation the bot's idle timeout does not end it, however long the person is quiet; once
 * it is back with the bot, it idles out as any session does.
 */
describe('the idle timeout and a conversation held by an agent', () => {
  let running: RunningHub;
  let agent: ReturnType<typeof agentClient>;
  let agentId: string;
  const q = <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    running.hub.db.query<T>(sql, params).then((r) => r.rows);
  const sweep = (at: Date) =>
    sweepIdleSessions(
      { db: running.hub.db, bots: running.hub.bots, ingress: running.hub.ingress, logger: silentLogger },
      at,
    );

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN });
    const made = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Zed',
      email: `zed-${randomUUID().slice(0, 8)}@example.com`,
      bots: ['default'],
    });
    agentId = made.agent_id;
    agent = agentClient(running.url, { token: made.token });
    expect((await agent.call('PUT', '/api/agent/status', { body: { status: 'available' } })).status).toBe(
      200,
    );
  });
  afterAll(async () => {
    await running?.stop();
  });

  /** A WhatsApp message of `phone`, received at `receivedAt`; resolves with its session once recorded. */
  async function whatsapp(phone: string, text: string, receivedAt = new Date()): Promise<string> {
    const id = `whatsapp:wamid.${randomUUID()}`;
    await running.hub.ingress.accept({
      id,
      channel: 'whatsapp',
      bot: 'default',
      from: { id: phone },
      text,
      receivedAt: receivedAt.toISOString(),
    });
    const rows = await until(
      () => q<{ session_id: string }>('SELECT session_id FROM messages WHERE envelope_id = $1', [id]),
      (r) => r.length === 1,
    );
    return rows[0]!.session_id;
  }

  const session = async (id: string) =>
    (await q<SessionRow>('SELECT * FROM sessions WHERE id = $1', [id]))[0]!;
  const handoffOf = async (sessionId: string) =>
    (
      await q<{ state: string; agent_id: string | null; end_reason: string | null }>(
        'SELECT state, agent_id, end_reason FROM handoffs WHERE session_id = $1',
        [sessionId],
      )
    )[0];
  const texts = async (sessionId: string) =>
    (
      await q<{ role: string; content: string }>(
        'SELECT role, content FROM messages WHERE session_id = $1 ORDER BY seq',
        [sessionId],
      )
    ).map((m) => `${m.role}: ${m.content}`);

  /** The agent writes to the person; resolves once the message is in the conversation's history. */
  async function agentSays(sessionId: string, text: string): Promise<void> {
    const res = await agent.call('POST', `/api/agent/conversations/${sessionId}/messages`, {
      body: { text },
    });
    expect(res.status).toBe(202);
    await until(
      () => texts(sessionId),
      (t) => t.includes(`agent: ${text}`),
    );
  }

  it('WhatsApp: the sweep leaves a held conversation alone while the person is quiet, ends one without a handoff, and the held one again once it is back with the bot', async () => {
    const held = '+351910000201';
    const plain = '+351910000202';
    const heldSession = await whatsapp(held, 'hello');
    expect(await whatsapp(held, 'agent')).toBe(heldSession);
    expect(
      await until(
        () => handoffOf(heldSession),
        (h) => h?.state === 'assigned',
      ),
    ).toMatchObject({
      agent_id: agentId,
    });
    await agentSays(heldSession, 'Let me look up your order, one moment');
    const plainSession = await whatsapp(plain, 'hello');

    // 31 minutes after the person's last message: only the conversation without a handoff ends.
    expect(await sweep(new Date(Date.now() + QUIET_MS))).toBe(1);
    expect(
      await until(
        () => session(plainSession),
        (s) => s.ended_at !== null,
      ),
    ).toMatchObject({
      end_reason: 'idle',
    });
    expect(await session(heldSession)).toMatchObject({ ended_at: null, end_reason: null });
    expect(await handoffOf(heldSession)).toMatchObject({ state: 'assigned', agent_id: agentId });
    const events = await q<{ type: string }>('SELECT type FROM session_events WHERE session_id = $1', [
      heldSession,
    ]);
    expect(events.map((e) => e.type)).not.toContain('session.idle');

    // The agent is still writing; the sweep's next runs leave the conversation with the agent too.
    await agentSays(heldSession, 'Found it: it ships tomorrow');
    expect(await sweep(new Date(Date.now() + QUIET_MS))).toBe(0);

    // Released: the conversation is the bot's again, and idles out like any other.
    expect((await agent.call('POST', `/api/agent/conversations/${heldSession}/release`)).status).toBe(200);
    await until(
      () => texts(heldSession),
      (t) => t.includes('assistant: You are back with the bot. Say help to see what I can do.'),
    );
    expect(await sweep(new Date(Date.now() + QUIET_MS))).toBe(1);
    expect(
      await until(
        () => session(heldSession),
        (s) => s.ended_at !== null,
      ),
    ).toMatchObject({
      end_reason: 'idle',
    });
  });

  it('WhatsApp: the person answering the agent after more than the idle timeout reaches the agent, in the same session', async () => {
    const phone = '+351910000203';
    const heldSession = await whatsapp(phone, 'agent');
    await until(
      () => handoffOf(heldSession),
      (h) => h?.state === 'assigned',
    );
    await agentSays(heldSession, 'What is your order number?');

    const answer = await whatsapp(phone, 'It is 1043, sorry for the wait', new Date(Date.now() + QUIET_MS));
    expect(answer).toBe(heldSession);
    expect(await session(heldSession)).toMatchObject({ ended_at: null });
    expect(await handoffOf(heldSession)).toMatchObject({ state: 'assigned', agent_id: agentId });
    // The bot did not answer it: the agent did not lose the person to a new bot session.
    expect((await texts(heldSession)).slice(-2)).toEqual([
      'agent: What is your order number?',
      'user: It is 1043, sorry for the wait',
    ]);
    expect(await q('SELECT id FROM sessions WHERE native_key = $1', [phone])).toHaveLength(1);
  });

  it('REST API: a token session held by an agent keeps its session when the person answers after the idle timeout', async () => {
    const api = apiClient(running.url);
    const person = await api.createSession();
    const asked = await api.chat(person.token, 'agent');
    expect(asked.status).toBe(200);
    await until(
      () => handoffOf(person.session_id),
      (h) => h?.state === 'assigned',
    );
    await agentSays(person.session_id, 'Hi, Zed here. What can I do?');
    // The person then says nothing for 31 minutes (their last activity, as the hub keeps it).
    await q(
      `UPDATE sessions SET last_activity_at = last_activity_at - $2 * interval '1 millisecond' WHERE id = $1`,
      [person.session_id, QUIET_MS],
    );

    const answer = await api.chat(person.token, 'I need help with my invoice');
    expect(answer.status).toBe(200);
    expect(answer.json.replies).toEqual([]);
    expect((await api.call('GET', '/api/session', { token: person.token })).json.session_id).toBe(
      person.session_id,
    );
    expect(await session(person.session_id)).toMatchObject({ ended_at: null });
    expect(await handoffOf(person.session_id)).toMatchObject({ state: 'assigned', agent_id: agentId });
    await until(
      () => texts(person.session_id),
      (t) => t.at(-1) === 'user: I need help with my invoice',
    );
  });
});
