import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPEN_AFTER_END_MS } from '../../src/store/handoffs.ts';
import { agentClient, createAgentVia, followEvents } from '../helpers/agents.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-handoff-tests-0123456789';
const CONFIG = path.join(REPO_ROOT, 'test/fixtures/handoff');

type Message = { seq: number; role: string; text: string; agent_id?: string };

describe('human handoff through the REST channel', () => {
  let running: RunningHub;
  let url: string;
  let api: ReturnType<typeof apiClient>;
  /** The agents' and the person's exchanges are checked against the hub's OpenAPI document. */
  let contract: ReturnType<typeof openApiContract>;
  const breaches: string[] = [];
  const onExchange = (e: Parameters<ReturnType<typeof openApiContract>['check']>[0]) =>
    breaches.push(...contract.check(e));

  async function agent(name: string, extra: Record<string, unknown> = {}) {
    const made = await createAgentVia(url, ADMIN_TOKEN, {
      name,
      email: `${name.toLowerCase()}-${randomUUID().slice(0, 8)}@example.com`,
      bots: ['helpdesk', 'quick'],
      ...extra,
    });
    return {
      id: made.agent_id,
      token: made.token,
      client: agentClient(url, { token: made.token, onExchange }),
    };
  }

  const setStatus = async (a: { client: ReturnType<typeof agentClient> }, status: string) =>
    expect((await a.client.call('PUT', '/api/agent/status', { body: { status } })).status).toBe(200);

  async function history(token: string): Promise<Message[]> {
    return (await api.history(token, '?limit=200')).json.messages;
  }

  async function waitForText(token: string, text: string): Promise<Message[]> {
    return until(
      () => history(token),
      (ms) => ms.some((m) => m.text === text),
      15_000,
    );
  }

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN, configDir: CONFIG, schedulerPollMs: 50 });
    url = running.url;
    api = apiClient(url, { onExchange });
    contract = openApiContract(await (await fetch(`${url}/openapi.json`)).json());
  });
  afterAll(async () => {
    await running?.stop();
  });

  it('the seed function: waiting, claimed, the agent answers, the person reaches the agent only, release runs ON TRANSFER END', async () => {
    const ana = await agent('Ana');
    await setStatus(ana, 'away'); // nobody available: the conversation waits
    const stream = await followEvents(url, ana.token);
    const person = await api.createSession('helpdesk');

    const asked = await api.chat(person.token, 'I want a human please');
    expect(asked.status).toBe(200);
    expect(asked.json.replies.map((r: { text: string }) => r.text)).toEqual([
      'Connecting you to an agent...',
    ]);
    const waiting = await stream.waitFor(
      (e) => e.event === 'conversation.waiting' && e.data.session_id === person.session_id,
    );
    expect(waiting.data.assigned_to).toBeNull();

    const list = await ana.client.call('GET', '/api/agent/conversations?state=waiting');
    expect(list.status).toBe(200);
    const row = list.json.conversations.find(
      (c: { session_id: string }) => c.session_id === person.session_id,
    );
    expect(row).toEqual({
      session_id: person.session_id,
      bot: 'helpdesk',
      channel: 'api',
      person: { name: null, native_id: person.session_id },
      state: 'waiting',
      queue: null,
      waiting_since: expect.any(String),
      assigned_to: null,
      last_message: {
        role: 'assistant',
        text: 'Connecting you to an agent...',
        created_at: expect.any(String),
      },
    });
    expect(list.json).toHaveProperty('next_before');

    // While waiting, the person's messages go to the agents, not the bot.
    const meanwhile = await api.chat(person.token, 'hello? anyone?');
    expect(meanwhile.json.replies).toEqual([]);

    await setStatus(ana, 'available');
    const claim = await ana.client.call('POST', `/api/agent/conversations/${person.session_id}/claim`);
    expect(claim.status).toBe(200);
    expect(claim.json).toMatchObject({ session_id: person.session_id, assigned_to: ana.id });
    expect(
      (await ana.client.call('POST', `/api/agent/conversations/${person.session_id}/claim`)).status,
    ).toBe(200);
    await waitForText(person.token, 'Ana is here to help');
    expect(
      (await ana.client.call('GET', '/api/agent/conversations?state=mine')).json.conversations[0],
    ).toMatchObject({
      session_id: person.session_id,
      state: 'assigned',
      assigned_to: ana.id,
    });

    const said = await ana.client.call('POST', `/api/agent/conversations/${person.session_id}/messages`, {
      body: { text: 'Hi, Ana here. How can I help?' },
    });
    expect(said.status).toBe(202);
    expect(said.json.message_id).toEqual(expect.any(String));
    const seen = await waitForText(person.token, 'Hi, Ana here. How can I help?');
    const fromAna = seen.find((m) => m.text === 'Hi, Ana here. How can I help?')!;
    expect(fromAna.role).toBe('agent');

    const next = await api.chat(person.token, 'my order is late');
    expect(next.json.replies).toEqual([]);
    await stream.waitFor(
      (e) => e.event === 'conversation.message' && e.data.message?.text === 'my order is late',
    );

    const release = await ana.client.call('POST', `/api/agent/conversations/${person.session_id}/release`);
    expect(release.status).toBe(200);
    await waitForText(person.token, 'The bot is back (released).');
    await stream.waitFor(
      (e) => e.event === 'conversation.released' && e.data.session_id === person.session_id,
    );

    const back = await api.chat(person.token, 'thanks');
    expect(back.json.replies.map((r: { text: string }) => r.text)).toEqual(['bot: thanks']);

    // The whole conversation, in order, as the person sees it.
    const texts = (await history(person.token)).map((m) => `${m.role}: ${m.text}`);
    expect(texts.slice(1)).toEqual([
      'assistant: Hello! How can I help?',
      'user: I want a human please',
      'assistant: Connecting you to an agent...',
      'user: hello? anyone?',
      'assistant: Ana is here to help',
      'agent: Hi, Ana here. How can I help?',
      'user: my order is late',
      'system: transfer ended',
      'assistant: The bot is back (released).',
      'user: thanks',
      'assistant: bot: thanks',
    ]);
    await stream.close();
    await setStatus(ana, 'offline');
  });

  it('GET AVAILABLE AGENT finds an available agent and the session is assigned at once', async () => {
    const bo = await agent('Bo', { bots: ['quick'], capacity: 2 });
    await setStatus(bo, 'available');
    const person = await api.createSession('quick');
    const asked = await api.chat(person.token, 'human');
    expect(asked.json.replies.map((r: { text: string }) => r.text)).toEqual([
      'Connecting you to an agent...',
    ]);
    await waitForText(person.token, 'Bo joined the conversation');
    const mine = await bo.client.call('GET', '/api/agent/conversations?state=mine');
    expect(mine.json.conversations.map((c: { session_id: string }) => c.session_id)).toContain(
      person.session_id,
    );
    // Going offline gives the conversation back to the bot.
    await setStatus(bo, 'offline');
    await waitForText(person.token, 'The bot is back (agent_offline).');
  });

  it('claims: held_by_other and at_capacity are 409; 404 unknown, 403 another bot, 413 too long, 422 transfer to a stranger', async () => {
    const cy = await agent('Cy', { capacity: 1 });
    const di = await agent('Di');
    const outsider = await agent('Ed', { bots: ['default'] });
    const [p1, p2] = [await api.createSession('helpdesk'), await api.createSession('helpdesk')];
    for (const p of [p1, p2]) await api.chat(p.token, 'human');

    expect((await cy.client.call('POST', `/api/agent/conversations/${p1.session_id}/claim`)).status).toBe(
      200,
    );
    const other = await di.client.call('POST', `/api/agent/conversations/${p1.session_id}/claim`);
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe('held_by_other');
    const full = await cy.client.call('POST', `/api/agent/conversations/${p2.session_id}/claim`);
    expect(full.status).toBe(409);
    expect(full.json.error.code).toBe('at_capacity');

    expect((await cy.client.call('GET', `/api/agent/conversations/${randomUUID()}`)).status).toBe(404);
    expect((await cy.client.call('POST', `/api/agent/conversations/${randomUUID()}/claim`)).status).toBe(404);
    expect((await outsider.client.call('GET', `/api/agent/conversations/${p1.session_id}`)).status).toBe(403);
    expect(
      (await outsider.client.call('POST', `/api/agent/conversations/${p2.session_id}/claim`)).status,
    ).toBe(403);
    const long = await cy.client.call('POST', `/api/agent/conversations/${p1.session_id}/messages`, {
      body: { text: 'x'.repeat(running.hub.config.maxTextBytes + 1) },
    });
    expect(long.status).toBe(413);
    const notHolder = await di.client.call('POST', `/api/agent/conversations/${p1.session_id}/messages`, {
      body: { text: 'hi' },
    });
    expect(notHolder.status).toBe(409);

    const stranger = await cy.client.call('POST', `/api/agent/conversations/${p1.session_id}/transfer`, {
      body: { agent_id: outsider.id },
    });
    expect(stranger.status).toBe(422);
    const moved = await cy.client.call('POST', `/api/agent/conversations/${p1.session_id}/transfer`, {
      body: { agent_id: di.id },
    });
    expect(moved.status).toBe(200);
    expect(moved.json.assigned_to).toBe(di.id);
    await waitForText(p1.token, 'Di is here to help');
    expect(
      (
        await di.client.call('POST', `/api/agent/conversations/${p1.session_id}/messages`, {
          body: { text: 'Di here' },
        })
      ).status,
    ).toBe(202);
    await waitForText(p1.token, 'Di here');
    // all is for supervisors
    expect((await cy.client.call('GET', '/api/agent/conversations?state=all')).status).toBe(403);
  });

  it('notes stay internal; every transcript read is audited', async () => {
    const fay = await agent('Fay');
    const sup = await agent('Gus', { role: 'supervisor' });
    const person = await api.createSession('helpdesk');
    await api.chat(person.token, 'human');
    expect(
      (await fay.client.call('POST', `/api/agent/conversations/${person.session_id}/claim`)).status,
    ).toBe(200);
    const note = await fay.client.call('POST', `/api/agent/conversations/${person.session_id}/notes`, {
      body: { text: 'VIP customer, be nice' },
    });
    expect(note.status).toBe(201);
    await fay.client.call('POST', `/api/agent/conversations/${person.session_id}/messages`, {
      body: { text: 'after the note' },
    });
    await waitForText(person.token, 'after the note');
    expect((await history(person.token)).map((m) => m.text)).not.toContain('VIP customer, be nice');

    const detail = await until(
      () =>
        sup.client.call('GET', `/api/agent/conversations/${person.session_id}`, {
          headers: { 'user-agent': 'console-test' },
        }),
      (r) => r.json.messages.some((m: Message) => m.role === 'note'),
    );
    expect(detail.status).toBe(200);
    const noteRow = detail.json.messages.find((m: Message) => m.role === 'note');
    expect(noteRow).toMatchObject({ text: 'VIP customer, be nice', agent_id: fay.id });
    expect(detail.json.messages.find((m: Message) => m.role === 'agent')).toMatchObject({ agent_id: fay.id });
    expect(detail.json).toMatchObject({
      state: 'assigned',
      assigned_to: fay.id,
      variables: expect.any(Object),
      context: {},
    });

    const audit = await running.hub.db.query<{ agent_id: string; ip: string; user_agent: string }>(
      'SELECT agent_id, ip, user_agent FROM transcript_reads WHERE session_id = $1',
      [person.session_id],
    );
    expect(audit.rows.some((r) => r.agent_id === sup.id && r.user_agent === 'console-test' && r.ip)).toBe(
      true,
    );
    const all = await sup.client.call('GET', '/api/agent/conversations?state=all');
    expect(all.status).toBe(200);
  });

  it("an agent limited to a queue reads, claims and notes only what its list shows: its queue's waiting conversations and its own (for a while after it gave one back)", async () => {
    const kim = await agent('Kim', { queues: ['billing'] });
    const lee = await agent('Lee');
    const sup = await agent('Sol', { role: 'supervisor', queues: ['billing'] });
    const handedTo = async (text: string) => {
      const person = await api.createSession('helpdesk');
      const asked = await api.chat(person.token, text);
      expect(asked.status).toBe(200);
      return person;
    };
    const vip = await handedTo('vip please');
    const billing = await handedTo('billing please');
    const taken = await handedTo('billing please');
    const plain = await api.createSession('helpdesk');
    const route = (p: { session_id: string }, rest = '') => `/api/agent/conversations/${p.session_id}${rest}`;
    const note = { body: { text: 'a note from Kim' } };
    const refused = async (
      res: Promise<{ status: number; json: { error: { code: string; message: string } } }>,
    ) => {
      const answer = await res;
      expect(answer.status).toBe(403);
      expect(answer.json.error.code).toBe('forbidden');
      return answer.json.error.message;
    };
    const kimsReads = async (p: { session_id: string }) =>
      (
        await running.hub.db.query('SELECT 1 FROM transcript_reads WHERE session_id = $1 AND agent_id = $2', [
          p.session_id,
          kim.id,
        ])
      ).rowCount;
    const notes = async (p: { session_id: string }) =>
      (
        await running.hub.db.query(`SELECT content FROM messages WHERE session_id = $1 AND role = 'note'`, [
          p.session_id,
        ])
      ).rows.map((r) => r.content);

    // Waiting in "vip", not one of Kim's queues: not in her list, and not hers to read, take or note.
    const waiting = (
      await kim.client.call('GET', '/api/agent/conversations?state=waiting')
    ).json.conversations.map((c: { session_id: string }) => c.session_id);
    expect(waiting).toContain(billing.session_id);
    expect(waiting).not.toContain(vip.session_id);
    await refused(kim.client.call('GET', route(vip)));
    await refused(kim.client.call('POST', route(vip, '/claim')));
    await refused(kim.client.call('POST', route(vip, '/notes'), note));
    // Nor one that was never handed to people.
    await refused(kim.client.call('GET', route(plain)));
    expect(await kimsReads(vip)).toBe(0);
    expect(await notes(vip)).toEqual([]);
    // A supervisor sees every open conversation of its bots, whatever its queues.
    expect((await sup.client.call('GET', route(vip))).status).toBe(200);

    // Held by another agent: refused, one of Kim's queues or not (a claim of it is still told who won).
    expect((await lee.client.call('POST', route(vip, '/claim'))).status).toBe(200);
    expect((await lee.client.call('POST', route(taken, '/claim'))).status).toBe(200);
    expect(await refused(kim.client.call('GET', route(vip)))).not.toMatch(/another agent/);
    expect(await refused(kim.client.call('GET', route(taken)))).toBe('another agent holds this conversation');
    await refused(kim.client.call('POST', route(taken, '/notes'), note));
    const lost = await kim.client.call('POST', route(taken, '/claim'));
    expect(lost.status).toBe(409);
    expect(lost.json.error.code).toBe('held_by_other');

    // Her queue's waiting conversation, then her own: read, noted, claimed.
    expect((await kim.client.call('GET', route(billing))).status).toBe(200);
    expect((await kim.client.call('POST', route(billing, '/notes'), note)).status).toBe(201);
    expect((await kim.client.call('POST', route(billing, '/claim'))).status).toBe(200);
    const held = await kim.client.call('GET', route(billing));
    expect(held.json).toMatchObject({ state: 'assigned', assigned_to: kim.id });

    // Given back to the bot: still hers to read (the console shows it) and note, for a while.
    expect((await kim.client.call('POST', route(billing, '/release'))).status).toBe(200);
    const released = await kim.client.call('GET', route(billing));
    expect(released.status).toBe(200);
    expect(released.json.state).toBeNull();
    expect((await kim.client.call('POST', route(billing, '/notes'), note)).status).toBe(201);
    await running.hub.db.query(
      `UPDATE handoffs SET ended_at = now() - make_interval(secs => $2::double precision / 1000 + 60)
       WHERE session_id = $1`,
      [billing.session_id, OPEN_AFTER_END_MS],
    );
    await refused(kim.client.call('GET', route(billing)));
    // Handed over again, to a queue of others: the new handoff decides.
    await running.hub.db.query(`UPDATE handoffs SET ended_at = now() WHERE session_id = $1`, [
      billing.session_id,
    ]);
    expect((await kim.client.call('GET', route(billing))).status).toBe(200);
    await api.chat(billing.token, 'vip please');
    await refused(kim.client.call('GET', route(billing)));
    await until(
      () => notes(billing),
      (n) => n.length === 2,
    );
  });

  it('a conversation nobody takes goes back to the bot after handoff.waitTimeoutMinutes', async () => {
    const person = await api.createSession('quick');
    await api.chat(person.token, 'billing please');
    await waitForText(person.token, 'The bot is back (timeout).');
    const ended = await running.hub.db.query('SELECT state, end_reason FROM handoffs WHERE session_id = $1', [
      person.session_id,
    ]);
    expect(ended.rows).toEqual([{ state: 'ended', end_reason: 'timeout' }]);
    expect((await api.chat(person.token, 'ok')).json.replies.map((r: { text: string }) => r.text)).toEqual([
      'bot: ok',
    ]);
  });

  it('the event stream resumes after Last-Event-ID', async () => {
    const hal = await agent('Hal');
    const first = await followEvents(url, hal.token);
    const person = await api.createSession('helpdesk');
    await api.chat(person.token, 'human');
    const waiting = await first.waitFor(
      (e) => e.event === 'conversation.waiting' && e.data.session_id === person.session_id,
    );
    await first.close();
    // Missed while away:
    await api.chat(person.token, 'while you were away');
    const resumed = await followEvents(url, hal.token, waiting.id);
    const missed = await resumed.waitFor(
      (e) => e.event === 'conversation.message' && e.data.session_id === person.session_id,
    );
    expect(missed.data.message.text).toBe('while you were away');
    expect(resumed.events.some((e) => e.id === waiting.id)).toBe(false);
    await resumed.close();
  });

  it('every exchange above matched the OpenAPI document', () => {
    expect(contract.judged.some((e) => e.path.startsWith('/api/agent/conversations'))).toBe(true);
    expect(breaches).toEqual([]);
  });
});
