import fs from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdapters } from '../../adapters/index.ts';
import type { Schema } from '../../src/client/index.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { createAgentVia } from '../helpers/agents.ts';
import { launchChromium, signInToConsole, type TestBrowser } from '../helpers/browser.ts';
import { silentLogger } from '../helpers/database.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub, testConfig } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import { postWhatsAppWebhook } from '../helpers/whatsapp-cloud.ts';

const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/console');
const ADMIN_TOKEN = 'console-test-admin-token-0123456789abcdef';
const ACCESS_TOKEN = 'EAAG-console-test';
const APP_SECRET = 'console-test-app-secret';
const BUSINESS_NUMBER = '106540352242922';
const PERSON_PHONE = '16505551234';
/** Set to a folder to write README's screenshots of the console while the test runs. */
const SCREENSHOTS = process.env.SCREENSHOTS_DIR;

/** The part of the documented text-message webhook the test rewrites: its one message's text. */
interface TextMessageWebhook {
  entry: [{ changes: [{ value: { messages: [{ text: { body: string } }] } }] }];
}
/** `GET /api/admin/agents`' answer. */
type AgentList = { agents: Schema<'Agent'>[] };

const ANA = { name: 'Ana Reyes', email: 'ana@shop.test', password: 'correct horse battery staple' };
const SAM = { name: 'Sam Outlet', email: 'sam@shop.test', password: 'another long passphrase here' };

/**
 * The agent console in Debian's chromium, with a person in the widget (another browser profile)
 * and one on WhatsApp (the local Graph API receives what the agent writes).
 */
describe('agent console in a real browser', () => {
  let graph: GraphApi;
  let running: RunningHub;
  let person: TestBrowser;
  let agent: TestBrowser;
  let console_: Page;
  /** The console's address of the WhatsApp person's conversation. */
  let whatsAppConversation = '';

  /** An admin API call; `T` is the answer the caller reads (most read only the status). */
  const admin = async <T = unknown>(method: string, route: string, body?: unknown) => {
    const res = await fetch(`${running.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json().catch(() => undefined)) as T };
  };

  const signIn = (page: Page, who: { email: string; password: string }) =>
    signInToConsole(page, running.url, who);

  const shot = async (page: Page, name: string) => {
    if (!SCREENSHOTS) return;
    await fs.mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, name) });
  };

  /** The documented text message, from the test's person, with this text and a message id of its own. */
  const postWhatsApp = async (text: string, id: string) => {
    const payload = doc.variant(doc.textMessage, {
      from: PERSON_PHONE,
      suffix: id,
      timestamp: new Date(),
      phoneNumberId: BUSINESS_NUMBER,
    }) as unknown as TextMessageWebhook;
    payload.entry[0].changes[0].value.messages[0].text.body = text;
    const res = await postWhatsAppWebhook(running.url, payload, APP_SECRET);
    expect(res.status).toBe(200);
  };
  const whatsAppTexts = () =>
    graph
      .to(PERSON_PHONE)
      .map((r) => (r.body.type === 'text' ? (r.body.text as { body: string }).body : `[${r.body.type}]`));

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    const env = {
      WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
      WHATSAPP_APP_SECRET: APP_SECRET,
      WHATSAPP_VERIFY_TOKEN: 'console-test-verify',
      WHATSAPP_GRAPH_URL: graph.url,
      WHATSAPP_NUMBERS: `${BUSINESS_NUMBER}:default`,
    };
    const config = testConfig({ configDir: CONFIG_DIR, adminToken: ADMIN_TOKEN });
    running = await startTestHub(
      { configDir: CONFIG_DIR, adminToken: ADMIN_TOKEN },
      { adapters: await loadAdapters(config, env, silentLogger) },
    );
    for (const [who, bots] of [
      [ANA, ['default']],
      [SAM, ['outlet']],
    ] as const) {
      const res = await admin('POST', '/api/admin/agents', { ...who, role: 'agent', bots, capacity: 5 });
      expect(res.status).toBe(201);
    }
    person = await launchChromium();
    agent = await launchChromium();
    console_ = await agent.context.newPage();
  });

  afterAll(async () => {
    await person?.close();
    await agent?.close();
    await running?.stop();
    await graph?.close();
  });

  /** The widget's messages of one kind, as shown in the person's browser. */
  const widgetTexts = (page: Page, kind: 'assistant' | 'agent' | 'user') =>
    page.locator(`.msg.${kind}`).allInnerTexts();
  const widgetShows = (page: Page, kind: 'assistant' | 'agent', text: string) =>
    page.locator(`.msg.${kind}`, { hasText: text }).first().waitFor({ timeout: 20_000 });
  const say = async (page: Page, text: string) => {
    await page.locator('textarea').fill(text);
    await page.locator('textarea').press('Enter');
  };
  const inboxRow = (page: Page, text: string) =>
    page
      .getByRole('list', { name: /conversations/ })
      .getByRole('link')
      .filter({ hasText: text });

  it('refuses a wrong password, and says so plainly', async () => {
    const page = await agent.context.newPage();
    await signIn(page, { email: ANA.email, password: 'not the password' });
    await page
      .getByRole('alert')
      .filter({ hasText: 'Wrong email or password.' })
      .waitFor({ timeout: 20_000 });
    await page.close();
  });

  it('says when sign-in is throttled after repeated failures', async () => {
    const page = await agent.context.newPage();
    const who = { email: 'nobody@shop.test', password: 'guess' };
    await page.goto(`${running.url}/console`);
    await page.getByLabel('Email').fill(who.email);
    await page.getByLabel('Password').fill(who.password);
    const alert = page.getByRole('alert');
    // Five failures for one address, then the hub refuses even to look, and the page says why.
    await until(
      async () => {
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('button', { name: 'Sign in' }).waitFor();
        await alert.waitFor();
        return alert.innerText();
      },
      (text) => /Too many failed attempts\. Try again in \d+ seconds\./.test(text),
      30_000,
    );
    await page.close();
  });

  it('a person asks for a human in the widget; the agent sees it arrive live, claims, answers, notes and releases; the bot answers again', async () => {
    await signIn(console_, ANA);
    await console_.getByRole('tab', { name: /Waiting/ }).waitFor();
    await console_.getByText('No conversations here.').waitFor();
    // A new agent starts offline; the switch in the top bar makes her available.
    await console_.getByRole('combobox', { name: 'Your status' }).selectOption('available');
    await until(
      async () =>
        (await admin<AgentList>('GET', '/api/admin/agents')).json.agents.find((a) => a.email === ANA.email)!
          .status,
      (status) => status === 'available',
      20_000,
    );

    const widget = await person.context.newPage();
    await widget.goto(running.url);
    await widgetShows(widget, 'assistant', 'Hi, this is the kettle shop.');
    await say(widget, 'human');
    await widgetShows(widget, 'assistant', 'Connecting you to an agent...');

    // It appears in Waiting without a reload, and the tab's title counts it.
    const row = inboxRow(console_, 'Connecting you to an agent...').filter({ hasText: 'web' });
    await row.waitFor({ timeout: 20_000 });
    await until(
      () => console_.title(),
      (t) => t.startsWith('(1)'),
      20_000,
    );
    await shot(console_, 'console-inbox.png');
    await row.click();

    await console_.getByRole('button', { name: 'Claim' }).click();
    await console_.getByRole('button', { name: 'Release to bot' }).waitFor();
    const reply = console_.getByRole('textbox', { name: /^Reply to/ });
    await reply.pressSequentially('Hello');
    // The person sees that someone is writing.
    await widget.locator('.typing', { hasText: /typing/ }).waitFor({ timeout: 20_000 });
    await reply.fill('Hello, I am Ana. Which kettle is it?');
    await reply.press('Enter');
    await widgetShows(widget, 'agent', 'Hello, I am Ana. Which kettle is it?');

    // The person answers: it reaches the agent, and the bot says nothing.
    await say(widget, 'The blue one');
    await console_.locator('.msg-user', { hasText: 'The blue one' }).waitFor({ timeout: 20_000 });

    // A note: shown apart in the console, never to the person.
    await console_.getByRole('checkbox', { name: 'Note' }).check();
    const note = console_.getByRole('textbox', { name: 'Internal note' });
    await note.fill('Customer has the 2019 model; warranty expired');
    await note.press('Enter');
    await console_.locator('.msg-note', { hasText: 'warranty expired' }).waitFor({ timeout: 20_000 });
    await console_.getByRole('checkbox', { name: 'Note' }).uncheck();
    await shot(console_, 'console-conversation.png');

    await console_.getByRole('button', { name: 'Release to bot' }).click();
    await console_.getByRole('button', { name: 'Claim' }).waitFor();
    await say(widget, 'thanks');
    await widgetShows(widget, 'assistant', 'Bot heard: thanks');

    // Everything the person saw, in order: no note, and no bot reply while Ana held the conversation.
    const shown = await widget.locator('.msg').allInnerTexts();
    expect(shown.join('\n')).not.toContain('warranty');
    expect(shown).toEqual(
      expect.arrayContaining(['Hello, I am Ana. Which kettle is it?', 'The blue one', 'Bot heard: thanks']),
    );
    expect(shown.filter((t) => t.startsWith('Bot heard:'))).toEqual(['Bot heard: thanks']);
    expect(await widgetTexts(widget, 'agent')).toEqual(['Hello, I am Ana. Which kettle is it?']);
    await widget.close();
  });

  it('the same with the person on WhatsApp: the agent answers and the Graph API receives it', async () => {
    await console_.goto(`${running.url}/console`);
    await postWhatsApp('human', 'console-1');
    await until(whatsAppTexts, (t) => t.includes('Connecting you to an agent...'), 20_000);
    const row = inboxRow(console_, 'Connecting you to an agent...').filter({ hasText: 'whatsapp' });
    await row.waitFor({ timeout: 20_000 });
    await row.click();
    // Beside the transcript: the person's linked WhatsApp identity and what happened lately.
    await console_
      .getByRole('list', { name: 'Linked identities' })
      .getByText(PERSON_PHONE)
      .waitFor({ timeout: 20_000 });
    await console_.getByRole('region', { name: 'Recent events' }).getByText('session.start').waitFor();
    await console_.getByRole('button', { name: 'Claim' }).click();
    whatsAppConversation = new URL(console_.url()).pathname;
    const reply = console_.getByRole('textbox', { name: /^Reply to/ });
    await reply.fill('Hi from Ana on WhatsApp');
    await reply.press('Enter');
    await until(whatsAppTexts, (t) => t.includes('Hi from Ana on WhatsApp'), 20_000);
    // The delivery status of the reply is shown beside it.
    await console_
      .locator('.msg-agent', { hasText: 'Hi from Ana on WhatsApp' })
      .locator('.delivery')
      .waitFor({ timeout: 20_000 });
  });

  it('at phone width the inbox and the reply box are usable', async () => {
    const phone = await agent.context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${running.url}/console`);
    await phone.getByRole('tab', { name: 'Mine' }).click();
    const row = inboxRow(phone, 'whatsapp');
    await row.waitFor({ timeout: 20_000 });
    const box = await row.boundingBox();
    expect(box!.x).toBeGreaterThanOrEqual(0);
    expect(box!.x + box!.width).toBeLessThanOrEqual(390);
    await row.click();
    const reply = phone.getByRole('textbox', { name: /^Reply to/ });
    await reply.scrollIntoViewIfNeeded();
    const replyBox = await reply.boundingBox();
    expect(replyBox!.x + replyBox!.width).toBeLessThanOrEqual(390);
    await reply.fill('Sent from a phone');
    await reply.press('Enter');
    await until(whatsAppTexts, (t) => t.includes('Sent from a phone'), 20_000);
    // Nothing runs off the side of the page.
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await phone.close();
  });

  it('an agent of another bot cannot open the conversation', async () => {
    expect(whatsAppConversation).toMatch(/^\/console\/conversations\/[0-9a-f-]{36}$/);
    const other = await launchChromium();
    try {
      const page = await other.context.newPage();
      await signIn(page, SAM);
      await page.getByRole('tab', { name: /Waiting/ }).waitFor();
      await page.goto(`${running.url}${whatsAppConversation}`);
      await page
        .getByRole('alert')
        .filter({ hasText: /bot you do not serve/ })
        .waitFor({ timeout: 20_000 });
      expect(await page.locator('.transcript').count()).toBe(0);
    } finally {
      await other.close();
    }
  });
  it('an admin manages agents in the console: adds one, changes their capacity, resets their token', async () => {
    const boss = { name: 'Bea Admin', email: 'bea@shop.test', password: 'a long admin passphrase' };
    expect(
      (await admin('POST', '/api/admin/agents', { ...boss, role: 'admin', bots: ['default'] })).status,
    ).toBe(201);
    const other = await launchChromium();
    try {
      const page = await other.context.newPage();
      await signIn(page, boss);
      await page.getByRole('link', { name: 'Agents' }).click();
      const form = page.getByRole('form', { name: 'Add an agent' });
      await form.getByLabel('Name').fill('Carl New');
      await form.getByLabel('Email').fill('carl@shop.test');
      await form.getByLabel('Password').fill('carl has a long passphrase');
      await form.getByLabel('Capacity').fill('3');
      await form.getByRole('button', { name: 'Add agent' }).click();
      await page
        .getByRole('status')
        .filter({ hasText: /Carl New added\. Their API token \(shown once\): \S{43}/ })
        .waitFor();

      await page.getByLabel('Capacity of Carl New').fill('7');
      await page
        .getByRole('row', { name: /Carl New/ })
        .getByRole('button', { name: 'Save' })
        .click();
      const carl = () =>
        admin<AgentList>('GET', '/api/admin/agents').then((r) =>
          r.json.agents.find((a) => a.email === 'carl@shop.test'),
        );
      await until(carl, (a) => a?.capacity === 7, 20_000);

      await page
        .getByRole('row', { name: /Carl New/ })
        .getByRole('button', { name: 'Reset token' })
        .click();
      const token = (await page.getByLabel('New token of Carl New').locator('code').innerText()).trim();
      const me = await fetch(`${running.url}/api/agent/me`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(me.status).toBe(200);
      expect(((await me.json()) as { email: string }).email).toBe('carl@shop.test');
    } finally {
      await other.close();
    }
  });

  it('an agent is told when a colleague takes the conversation it looks at, and goes back to the inbox after handing one over', async () => {
    const cy = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Cy Colleague',
      email: 'cy@shop.test',
      role: 'agent',
      bots: ['default'],
    });
    const people = apiClient(running.url);
    const waitingPerson = async () => {
      const person = await people.createSession('default');
      expect((await people.chat(person.token, 'human')).status).toBe(200);
      return person.session_id;
    };
    const holder = async (sessionId: string) =>
      (
        await fetch(`${running.url}/api/agent/conversations/${sessionId}`, {
          headers: { authorization: `Bearer ${cy.token}` },
        })
      ).json() as Promise<{ assigned_to: string | null }>;

    // A browser of its own, signed in as Ana.
    const own = await launchChromium();
    try {
      const page = await own.context.newPage();
      await signIn(page, ANA);
      await page.getByRole('tab', { name: /Waiting/ }).waitFor({ timeout: 20_000 });
      // Ana looks at a waiting conversation; Cy takes it: no longer hers to read.
      const first = await waitingPerson();
      await page.goto(`${running.url}/console/conversations/${first}`);
      await page.getByRole('button', { name: 'Claim' }).waitFor({ timeout: 20_000 });
      const taken = await fetch(`${running.url}/api/agent/conversations/${first}/claim`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cy.token}` },
      });
      expect(taken.status).toBe(200);
      await page
        .getByRole('alert')
        .filter({ hasText: 'another agent holds this conversation' })
        .waitFor({ timeout: 20_000 });
      expect(await page.getByRole('list', { name: 'Transcript' }).count()).toBe(0);

      // Ana takes another and hands it to Cy: the console goes back to her inbox.
      const second = await waitingPerson();
      await page.goto(`${running.url}/console/conversations/${second}`);
      await page.getByRole('button', { name: 'Claim' }).click();
      await page.getByRole('button', { name: 'Release to bot' }).waitFor({ timeout: 20_000 });
      const picker = page.getByRole('combobox', { name: 'Transfer to' });
      await picker
        .locator('option', { hasText: 'Cy Colleague' })
        .waitFor({ state: 'attached', timeout: 20_000 });
      await picker.selectOption(cy.agent_id);
      await page.getByRole('button', { name: 'Transfer' }).click();
      await page.waitForURL(`${running.url}/console`, { timeout: 20_000 });
      await page.getByRole('tab', { name: /Waiting/ }).waitFor();
      expect(await page.getByRole('alert').count()).toBe(0);
      expect((await holder(second)).assigned_to).toBe(cy.agent_id);
    } finally {
      await own.close();
    }
  });
});
