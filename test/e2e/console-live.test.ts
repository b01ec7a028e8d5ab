import path from 'node:path';
import type { Page, Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { launchChromium, signInToConsole, type TestBrowser } from '../helpers/browser.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { queuedMessage } from '../helpers/stranded-lane.ts';
import { until } from '../helpers/until.ts';

const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/console');
const ADMIN_TOKEN = 'console-live-admin-token-0123456789abcdef';
const ANA = { name: 'Ana Reyes', email: 'ana@live.test', password: 'correct horse battery staple' };

/**
 * The console's live views (the inbox, an open conversation) when something happens at an
 * awkward moment: after the page read what it shows but before the hub had subscribed its event
 * stream (a fresh page, or one whose stream reconnects). The stream's request is held back by the
 * browser here, as a slow network or a busy hub would hold it.
 */
describe('agent console, live while its event stream connects', () => {
  let running: RunningHub;
  let agent: TestBrowser;
  let agentToken: string;

  beforeAll(async () => {
    running = await startTestHub({ configDir: CONFIG_DIR, adminToken: ADMIN_TOKEN });
    ({ token: agentToken } = await createAgentVia(running.url, ADMIN_TOKEN, {
      ...ANA,
      role: 'agent',
      bots: ['default'],
    }));
    agent = await launchChromium();
  });

  afterAll(async () => {
    await agent?.close();
    await running?.stop();
  });

  /** Holds the page's event stream requests until `release` is called. */
  const holdEventStream = async (page: Page) => {
    let requested!: () => void;
    const held = new Promise<void>((resolve) => {
      requested = resolve;
    });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    await page.route('**/api/agent/events*', async (route: Route) => {
      requested();
      await released;
      await route.continue();
    });
    return { held, release };
  };

  /** The agent API's waiting conversations, as Ana reads them. */
  const waiting = async (): Promise<{ session_id: string }[]> =>
    (
      await agentClient(running.url, { token: agentToken }).call(
        'GET',
        '/api/agent/conversations?state=waiting',
      )
    ).json.conversations;

  let person: { authorization: string };
  let sessionId: string;

  it('shows a conversation that started waiting before the stream was subscribed, without a reload', async () => {
    const page = await agent.context.newPage();
    const stream = await holdEventStream(page);
    await signInToConsole(page, running.url, ANA);
    // The inbox has read its rows (none yet) and its stream is on its way.
    await page.getByText('No conversations here.').waitFor({ timeout: 20_000 });
    await stream.held;

    // A person asks for a human now: the event is published to no console.
    person = await queuedMessage(running.url, 'human');
    const rows = await until(waiting, (r) => r.length === 1, 20_000);
    sessionId = rows[0]!.session_id;
    expect(await page.getByText('No conversations here.').isVisible()).toBe(true);

    // The stream connects; the inbox reads its rows again, and the conversation is there.
    stream.release();
    await page
      .getByRole('list', { name: /conversations/ })
      .getByRole('link')
      .filter({ hasText: 'Connecting you to an agent...' })
      .waitFor({ timeout: 20_000 });
    await until(
      () => page.title(),
      (t) => t.startsWith('(1)'),
      20_000,
    );
    await page.close();
  });

  it("shows the person's message that came before the stream was subscribed, in the open conversation", async () => {
    const page = await agent.context.newPage();
    const stream = await holdEventStream(page);
    await page.goto(`${running.url}/console/conversations/${sessionId}`);
    await page
      .locator('.msg-assistant', { hasText: 'Connecting you to an agent...' })
      .waitFor({ timeout: 20_000 });
    await stream.held;

    const sent = await fetch(`${running.url}/api/chat?wait=false`, {
      method: 'POST',
      headers: { ...person, 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'Is anyone there?' }),
    });
    expect(sent.status).toBe(202);
    const history = async () =>
      (await (await fetch(`${running.url}/api/session/messages`, { headers: person })).json()) as {
        messages: { text?: string }[];
      };
    await until(history, (h) => h.messages.some((m) => m.text === 'Is anyone there?'), 20_000);
    expect(await page.locator('.msg-user', { hasText: 'Is anyone there?' }).count()).toBe(0);

    stream.release();
    await page.locator('.msg-user', { hasText: 'Is anyone there?' }).waitFor({ timeout: 20_000 });
    await page.close();
  });

  it('opens its stream again after the hub answered it with an error, and is live again', async () => {
    const page = await agent.context.newPage();
    // The first request for the stream meets a proxy's 502 (the hub restarting behind it): the
    // browser gives up on such a stream for good.
    let refused = 0;
    await page.route('**/api/agent/events*', async (route: Route) => {
      if (refused++ === 0) await route.fulfill({ status: 502, body: 'Bad Gateway' });
      else await route.continue();
    });
    await page.goto(`${running.url}/console/conversations/${sessionId}`);
    await page
      .locator('.msg-assistant', { hasText: 'Connecting you to an agent...' })
      .first()
      .waitFor({ timeout: 20_000 });
    await until(
      () => refused,
      (n) => n >= 2,
      20_000,
    );

    const sent = await fetch(`${running.url}/api/chat?wait=false`, {
      method: 'POST',
      headers: { ...person, 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'Hello again?' }),
    });
    expect(sent.status).toBe(202);
    await page.locator('.msg-user', { hasText: 'Hello again?' }).waitFor({ timeout: 20_000 });
    await page.close();
  });

  it('goes back to the sign-in form, on the same page, when its sign-in ends elsewhere; signing in again goes on there', async () => {
    // A browser of its own: the sign-out ends this browser's sign-in only.
    const own = await launchChromium();
    try {
      const opened = await fetch(`${running.url}/api/session`, { method: 'POST' });
      const { session_id, token } = (await opened.json()) as { session_id: string; token: string };
      const asked = await fetch(`${running.url}/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'human' }),
      });
      expect(asked.status).toBe(200);

      const page = await own.context.newPage();
      await signInToConsole(page, running.url, ANA);
      await page.getByRole('link', { name: 'Inbox' }).waitFor({ timeout: 20_000 });
      await page.goto(`${running.url}/console/conversations/${session_id}`);
      const answer = page.locator('.msg-assistant', { hasText: 'Connecting you to an agent...' });
      await answer.waitFor({ timeout: 20_000 });

      // Signed out in another tab (or by an admin): the hub ends the page's stream.
      const cookie = (await own.context.cookies(running.url)).find((c) => c.name === 'sb_agent');
      expect(cookie).toBeDefined();
      const out = await fetch(`${running.url}/api/agent/logout`, {
        method: 'POST',
        headers: { cookie: `sb_agent=${cookie!.value}`, 'x-requested-with': 'switchboard-console' },
      });
      expect(out.status).toBe(200);

      // Without anyone touching the page, it asks to sign in again, and says why.
      await page
        .getByRole('status')
        .filter({ hasText: 'Your sign-in has ended.' })
        .waitFor({ timeout: 20_000 });
      expect(await page.getByRole('button', { name: 'Sign in' }).isVisible()).toBe(true);
      expect(new URL(page.url()).pathname).toBe(`/console/conversations/${session_id}`);

      await page.getByLabel('Email').fill(ANA.email);
      await page.getByLabel('Password').fill(ANA.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await answer.waitFor({ timeout: 20_000 });
      expect(await page.getByRole('status').filter({ hasText: 'Your sign-in has ended.' }).count()).toBe(0);

      // Its new stream is live: the person's next message appears.
      const sent = await fetch(`${running.url}/api/chat?wait=false`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'Still there?' }),
      });
      expect(sent.status).toBe(202);
      await page.locator('.msg-user', { hasText: 'Still there?' }).waitFor({ timeout: 20_000 });
    } finally {
      await own.close();
    }
  });
  it('closes the conversation it shows when its session is erased, and says so', async () => {
    const opened = await fetch(`${running.url}/api/session`, { method: 'POST' });
    const { session_id, token } = (await opened.json()) as { session_id: string; token: string };
    const person = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const asked = await fetch(`${running.url}/api/chat`, {
      method: 'POST',
      headers: person,
      body: JSON.stringify({ text: 'human' }),
    });
    expect(asked.status).toBe(200);

    const page = await agent.context.newPage();
    await page.goto(`${running.url}/console/conversations/${session_id}`);
    await page
      .locator('.msg-assistant', { hasText: 'Connecting you to an agent...' })
      .waitFor({ timeout: 20_000 });
    // The page's stream is live once a message the person sends now appears on it.
    const sent = await fetch(`${running.url}/api/chat?wait=false`, {
      method: 'POST',
      headers: person,
      body: JSON.stringify({ text: 'Please delete what you have of me' }),
    });
    expect(sent.status).toBe(202);
    await page
      .locator('.msg-user', { hasText: 'Please delete what you have of me' })
      .waitFor({ timeout: 20_000 });

    // An operator erases the session (the person asked): the page drops what it showed, at once.
    const erased = await fetch(`${running.url}/api/admin/sessions/${session_id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(erased.status).toBe(200);
    await page
      .getByRole('alert')
      .filter({ hasText: 'This conversation was erased' })
      .waitFor({ timeout: 20_000 });
    expect(await page.getByRole('list', { name: 'Transcript' }).count()).toBe(0);
    expect(await page.getByText('Please delete what you have of me').count()).toBe(0);
    await page.close();
  });
});
