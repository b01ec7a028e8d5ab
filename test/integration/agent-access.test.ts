import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentClient, createAgentVia, eventsStatus, followEvents } from '../helpers/agents.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-agent-access-tests-0123456789';
const CONFIG = path.join(REPO_ROOT, 'test/fixtures/handoff');
const PASSWORD = 'correct horse battery';
/**
 * An open stream checks its credential every 30 s anyway; ending well before that shows that the
 * change itself was announced to it.
 */
const ANNOUNCED_WITHIN_MS = 10_000;

type Stream = Awaited<ReturnType<typeof followEvents>>;

describe('an agent event stream lasts as long as the sign-in or token it was opened with', () => {
  let running: RunningHub;
  let url: string;
  const admin = () => agentClient(url, { token: ADMIN_TOKEN });
  const open: Stream[] = [];

  async function agent(name: string, bots = ['helpdesk', 'quick']) {
    const email = `${name.toLowerCase()}-${randomUUID().slice(0, 8)}@example.com`;
    const made = await createAgentVia(url, ADMIN_TOKEN, { name, email, bots, password: PASSWORD });
    // Away: a conversation that asks for a human waits, and its event reaches every stream of theirs.
    const status = await agentClient(url, { token: made.token }).call('PUT', '/api/agent/status', {
      body: { status: 'away' },
    });
    expect(status.status).toBe(200);
    return { id: made.agent_id, token: made.token, email };
  }

  async function signedIn(email: string, password = PASSWORD) {
    const browser = agentClient(url);
    expect((await browser.login(email, password)).status).toBe(200);
    expect(browser.cookie).toBeDefined();
    return browser;
  }

  async function follow(auth: string | { cookie: string }): Promise<Stream> {
    const stream = await followEvents(url, auth);
    open.push(stream);
    await stream.waitFor((e) => e.event === 'ready');
    return stream;
  }

  /** A person of `bot` asks for a human; their session's id. */
  async function askForHuman(bot = 'helpdesk'): Promise<string> {
    const api = apiClient(url);
    const person = await api.createSession(bot);
    expect((await api.chat(person.token, 'I want a human please')).status).toBe(200);
    return person.session_id;
  }

  beforeAll(async () => {
    running = await startTestHub({ adminToken: ADMIN_TOKEN, configDir: CONFIG });
    url = running.url;
  });
  afterAll(async () => {
    await Promise.all(open.map((s) => s.close()));
    await running?.stop();
  });

  it('signing out ends that sign-in’s streams at once and refuses their reconnection; the agent’s token stream goes on', async () => {
    const ana = await agent('Ana');
    const browser = await signedIn(ana.email);
    const cookie = browser.cookie!;
    const byCookie = await follow({ cookie });
    const byToken = await follow(ana.token);

    expect(
      (await browser.call('POST', '/api/agent/logout', { headers: { 'x-requested-with': 'fetch' } })).status,
    ).toBe(200);
    expect(await byCookie.endsWithin(ANNOUNCED_WITHIN_MS)).toBe(true);
    expect(await eventsStatus(url, { cookie })).toBe(401);

    const session = await askForHuman();
    await byToken.waitFor((e) => e.event === 'conversation.waiting' && e.data.session_id === session);
    expect(byCookie.events.some((e) => e.event === 'conversation.waiting')).toBe(false);
  });

  it('a new password ends every sign-in of the agent; the new one signs in', async () => {
    const ben = await agent('Ben');
    const first = await signedIn(ben.email);
    const second = await signedIn(ben.email);
    const streams = [await follow({ cookie: first.cookie! }), await follow({ cookie: second.cookie! })];

    const changed = await admin().call('PATCH', `/api/admin/agents/${ben.id}`, {
      body: { password: 'a brand new passphrase' },
    });
    expect(changed.status).toBe(200);
    for (const stream of streams) expect(await stream.endsWithin(ANNOUNCED_WITHIN_MS)).toBe(true);
    for (const browser of [first, second])
      expect((await browser.call('GET', '/api/agent/me')).status).toBe(401);
    expect((await agentClient(url).login(ben.email, PASSWORD)).status).toBe(401);
    const again = await signedIn(ben.email, 'a brand new passphrase');
    expect((await again.call('GET', '/api/agent/me')).json.agent_id).toBe(ben.id);
  });

  it('a new token ends the old token’s streams; the new token opens one', async () => {
    const cleo = await agent('Cleo');
    const stream = await follow(cleo.token);
    const renewed = await admin().call('POST', `/api/admin/agents/${cleo.id}/token`);
    expect(renewed.status).toBe(200);
    expect(await stream.endsWithin(ANNOUNCED_WITHIN_MS)).toBe(true);
    expect(await eventsStatus(url, cleo.token)).toBe(401);
    const fresh = await follow(renewed.json.token);
    expect(fresh.events[0]!.data.agent_id).toBe(cleo.id);
  });

  it('removing the agent ends their streams', async () => {
    const dan = await agent('Dan');
    const browser = await signedIn(dan.email);
    const streams = [await follow(dan.token), await follow({ cookie: browser.cookie! })];
    expect((await admin().call('DELETE', `/api/admin/agents/${dan.id}`)).status).toBe(200);
    for (const stream of streams) expect(await stream.endsWithin(ANNOUNCED_WITHIN_MS)).toBe(true);
  });

  it('new bots apply to an open stream at once, and the stream stays open', async () => {
    const eve = await agent('Eve', ['quick']);
    const stream = await follow(eve.token);
    const changed = await admin().call('PATCH', `/api/admin/agents/${eve.id}`, {
      body: { bots: ['helpdesk', 'quick'] },
    });
    expect(changed.status).toBe(200);
    // The stream reads the agent again when the change is announced (its own check is 30 s away):
    // people keep asking until one of their conversations reaches it.
    const asked: string[] = [];
    const reached = await until(
      async () => {
        asked.push(await askForHuman('helpdesk'));
        return stream.events.some(
          (e) => e.event === 'conversation.waiting' && asked.includes(e.data.session_id),
        );
      },
      (seen) => seen,
      ANNOUNCED_WITHIN_MS,
      250,
    );
    expect(reached).toBe(true);
    expect(await stream.endsWithin(0)).toBe(false);
  });
});
