import fs from 'node:fs/promises';
import path from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdapters } from '../../adapters/index.ts';
import { CHARTS } from '../../console/src/Dashboard.tsx';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { createAgentVia } from '../helpers/agents.ts';
import {
  countJsonReads,
  holdAnswers,
  launchChromium,
  signInToConsole,
  type TestBrowser,
} from '../helpers/browser.ts';
import { silentLogger } from '../helpers/database.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { apiClient, type RunningHub, startTestHub, testConfig } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import { postWhatsAppWebhook } from '../helpers/whatsapp-cloud.ts';

const ADMIN_TOKEN = 'dashboard-e2e-admin-token-0123456789abcdef';
const ACCESS_TOKEN = 'EAAG-dashboard-test';
const APP_SECRET = 'dashboard-test-app-secret';
const BUSINESS_NUMBER = '106540352242999';
const PERSON_PHONE = '16505559876';
/** Set to a folder to write README's screenshots of the dashboard while the test runs. */
const SCREENSHOTS = process.env.SCREENSHOTS_DIR;

/** The part of the documented text-message webhook the test rewrites: its one message's text. */
interface TextMessageWebhook {
  entry: [{ changes: [{ value: { messages: [{ text: { body: string } }] } }] }];
}

/** The charts the dashboard draws: one analytics request each. */
const CHART_COUNT = CHARTS.length;

const SUE = { name: 'Sue Pervisor', email: 'sue@shop.test', password: 'supervisor passphrase here' };
const AL = { name: 'Al Agent', email: 'al@shop.test', password: 'plain agent passphrase' };
/** A supervisor of the support bot only: everything above is the default bot's. */
const SID = { name: 'Sid Support', email: 'sid@shop.test', password: 'support supervisor passphrase' };

/**
 * The operator dashboard in Debian's chromium: conversations on two channels (the REST API and
 * WhatsApp Cloud) drawn as charts whose numbers are the database's, filters, CSV, live refresh,
 * transcript search, inspection of a waiting HEAR, the audit log, and a plain agent refused.
 */
describe('operator dashboard in a real browser', () => {
  let graph: GraphApi;
  let running: RunningHub;
  let browser: TestBrowser;
  let page: Page;
  let api: ReturnType<typeof apiClient>;
  let whatsAppSession = '';

  const shot = async (name: string, on?: Page) => {
    if (!SCREENSHOTS) return;
    await fs.mkdir(SCREENSHOTS, { recursive: true });
    await (on ?? page).screenshot({ path: path.join(SCREENSHOTS, name), fullPage: !on });
  };

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

  const count = async (sql: string, params: unknown[] = []) =>
    Number((await running.hub.db.query<{ n: string }>(sql, params)).rows[0]!.n);
  const messagesIn = (channel: string, roles: string[]) =>
    count(
      `SELECT count(*) AS n FROM messages m JOIN sessions s ON s.id = m.session_id
       WHERE s.channel = $1 AND m.role = ANY($2::text[])`,
      [channel, roles],
    );

  const signIn = async (who: { email: string; password: string }) => {
    await signInToConsole(page, running.url, who);
    await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: 20_000 });
  };
  /** Waits until the element's text passes `check` (a string: equals it), and returns the text. */
  const textOf = (loc: Locator, check: string | RegExp, timeoutMs = 20_000) =>
    until(
      () =>
        loc
          .first()
          .textContent({ timeout: 1_000 })
          .catch(() => null),
      (t) => t !== null && (typeof check === 'string' ? t === check : check.test(t)),
      timeoutMs,
    );
  const total = (metric: string, series: string) =>
    page.locator(`figure[data-metric="${metric}"] li[data-series="${series}"] .total`);

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    const env = {
      WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
      WHATSAPP_APP_SECRET: APP_SECRET,
      WHATSAPP_VERIFY_TOKEN: 'dashboard-test-verify',
      WHATSAPP_GRAPH_URL: graph.url,
      WHATSAPP_NUMBERS: `${BUSINESS_NUMBER}:default`,
    };
    running = await startTestHub(
      { adminToken: ADMIN_TOKEN },
      { adapters: await loadAdapters(testConfig({ adminToken: ADMIN_TOKEN }), env, silentLogger) },
    );
    await createAgentVia(running.url, ADMIN_TOKEN, { ...SUE, role: 'supervisor', bots: ['*'] });
    await createAgentVia(running.url, ADMIN_TOKEN, { ...AL, role: 'agent', bots: ['*'] });
    await createAgentVia(running.url, ADMIN_TOKEN, { ...SID, role: 'supervisor', bots: ['support'] });
    api = apiClient(running.url);

    // Two people on the REST API, one on WhatsApp who starts the sign-up form (HEAR waits).
    for (const text of ['do you sell marmalade jars?', 'thanks']) {
      const s = await api.createSession();
      expect((await api.chat(s.token, text)).status).toBe(200);
    }
    await postWhatsApp('hello from my phone', 'a1');
    await postWhatsApp('sign up', 'a2');
    await until(
      () => count(`SELECT count(*) AS n FROM messages WHERE role = 'user' AND envelope_id LIKE 'whatsapp:%'`),
      (n) => n === 2,
    );
    const { rows } = await running.hub.db.query<{ id: string }>(
      `SELECT id FROM sessions WHERE channel = 'whatsapp'`,
    );
    whatsAppSession = rows[0]!.id;
    // The form's question was answered into the session's state: HEAR waits.
    await until(
      () =>
        running.hub.db.query(`SELECT 1 FROM session_state WHERE session_id = $1 AND dialog IS NOT NULL`, [
          whatsAppSession,
        ]),
      (r) => r.rows.length === 1,
    );

    browser = await launchChromium();
    page = await browser.context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await running?.stop();
    await graph?.close();
  });

  it('refuses an agent without the supervisor or admin role (403), and shows them no dashboard', async () => {
    await signIn(AL);
    expect(await page.getByRole('link', { name: 'Dashboard' }).count()).toBe(0);
    const status = await page.evaluate(async () => (await fetch('/api/admin/analytics/messages')).status);
    expect(status).toBe(403);
    await page.goto(`${running.url}/console/dashboard`);
    await page.getByRole('alert').filter({ hasText: 'This page is for supervisors and admins.' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Email').waitFor();
  });

  it('draws charts from the conversations on two channels, with the numbers the database has', async () => {
    await signIn(SUE);
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await page.waitForURL('**/console/dashboard');
    const expected: [string, number][] = [
      ['api in', await messagesIn('api', ['user'])],
      ['api out', await messagesIn('api', ['assistant', 'agent'])],
      ['whatsapp in', await messagesIn('whatsapp', ['user'])],
      ['whatsapp out', await messagesIn('whatsapp', ['assistant', 'agent'])],
    ];
    expect(expected[0]![1]).toBe(2);
    expect(expected[2]![1]).toBe(2);
    for (const [series, n] of expected) await textOf(total('messages', series), String(n));
    await textOf(
      total('sessions', 'new'),
      String(await count('SELECT count(*) AS n FROM sessions WHERE parent_id IS NULL')),
    );
    // The embedded hub's one queue, the inbox: everything handled, nothing set aside.
    const inbox = page.locator('section.queues tr[data-queue="inbound"]');
    expect(await inbox.locator('th').textContent()).toContain('embedded');
    await textOf(inbox.locator('td[data-field="depth"]'), '0');
    expect(await inbox.locator('td[data-field="deadLetters"]').textContent()).toBe('0');
    expect(await inbox.locator('td[data-field="stranded"]').textContent()).toBe('–');
    expect(await page.locator('section.queues tbody tr').count()).toBe(1);
    // The scheduler's jobs set aside: none, then one (a job that failed its last attempt), shown
    // with what to do, then none again once it runs.
    const setAside = page.locator('section.queues [data-field="schedulerFailed"]');
    await textOf(setAside, '0');
    await running.hub.db.query(
      `INSERT INTO scheduled_jobs (id, name, payload, run_at, attempts, failed_at, last_error)
       VALUES ('dashboard-set-aside', 'test.nothing', '{}', now(), 5, now(), 'receiver answered 500')`,
    );
    await textOf(setAside, '1');
    expect(await setAside.getAttribute('class')).toBe('alert');
    expect(await page.getByRole('list', { name: 'What needs attention' }).textContent()).toContain(
      'Scheduled work: 1 job was set aside after its last attempt',
    );
    await running.hub.db.query(`DELETE FROM scheduled_jobs WHERE id = 'dashboard-set-aside'`);
    await textOf(setAside, '0');
    await page.getByRole('list', { name: 'What needs attention' }).waitFor({ state: 'detached' });
    // Every chart with data is drawn (uPlot's canvas).
    for (const metric of ['messages', 'sessions', 'response-time']) {
      await page.locator(`figure[data-metric="${metric}"] canvas`).first().waitFor();
    }
    await shot('dashboard.png');
  });

  it('changes the charts with the bot and range filters', async () => {
    await page.getByLabel('Bot', { exact: true }).selectOption('support');
    await page.locator('figure[data-metric="messages"]').getByText('Nothing in this range.').waitFor();
    await page.getByLabel('Bot', { exact: true }).selectOption('default');
    await textOf(total('messages', 'api in'), '2');
    await page.getByLabel('Range', { exact: true }).selectOption('7d');
    await until(
      () => page.locator('figure[data-metric="messages"] a.csv').getAttribute('href'),
      (href) => /bucket=day/.test(href ?? ''),
    );
    await textOf(total('messages', 'whatsapp in'), '2');
    await page.getByLabel('Range', { exact: true }).selectOption('24h');
    await page.getByLabel('Bot', { exact: true }).selectOption('');
  });

  it('keeps the charts of the filters chosen when an answer for the filters before comes back late', async () => {
    const jsonReads = await countJsonReads(page);
    // The charts' answers for the default bot are read from the hub at once, but handed to the
    // page only when the test says: as a slow answer would come.
    const slow = await holdAnswers(page, /\/api\/admin\/analytics\/[a-z-]+\?.*bot=default/);
    try {
      await page.reload();
      await page.getByRole('checkbox', { name: 'Live' }).uncheck();
      await page.getByLabel('Bot', { exact: true }).selectOption('default');
      await until(
        async () => slow.count(),
        (n) => n === CHART_COUNT,
      );
      // The supervisor changes her mind before they come: the support bot, which has nothing.
      await page.getByLabel('Bot', { exact: true }).selectOption('support');
      const messages = page.locator('figure[data-metric="messages"]');
      await messages.getByText('Nothing in this range.').waitFor({ timeout: 20_000 });

      // The default bot's answers come now; the page reads them, and keeps the support bot's charts.
      await slow.release();
      await until(
        () => jsonReads('bot=default'),
        (n) => n === CHART_COUNT,
      );
      expect(await messages.getByText('Nothing in this range.').isVisible()).toBe(true);
      expect(await total('messages', 'api in').count()).toBe(0);
    } finally {
      // The tests after this one see the dashboard as it was.
      await slow.stop();
      await page.getByLabel('Bot', { exact: true }).selectOption('');
      await page.getByRole('checkbox', { name: 'Live' }).check();
    }
    await textOf(total('messages', 'api in'), '2');
  });

  it('downloads each chart as CSV, with the same numbers', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator('figure[data-metric="messages"] a.csv').click(),
    ]);
    expect(download.suggestedFilename()).toBe('messages-hour.csv');
    const csv = await fs.readFile((await download.path())!, 'utf8');
    const [header, ...rows] = csv.trim().split('\r\n');
    expect(header).toBe('t,api in,api out,whatsapp in,whatsapp out');
    expect(rows).toHaveLength(24);
    const sums = [1, 2, 3, 4].map((col) => rows.reduce((s, r) => s + Number(r.split(',')[col]), 0));
    expect(sums).toEqual([
      await messagesIn('api', ['user']),
      await messagesIn('api', ['assistant', 'agent']),
      await messagesIn('whatsapp', ['user']),
      await messagesIn('whatsapp', ['assistant', 'agent']),
    ]);
  });

  it('refreshes live: a new message shows up without a reload', async () => {
    const s = await api.createSession();
    expect((await api.chat(s.token, 'one more')).status).toBe(200);
    await textOf(total('messages', 'api in'), '3');
  });

  it('charts a rating given with the stars in the web widget', async () => {
    const widget = await browser.context.newPage();
    await widget.goto(`${running.url}/`);
    await widget.locator('textarea').fill('rate');
    await widget.locator('textarea').press('Enter');
    const stars = widget.locator('.suggestions button');
    await stars.first().waitFor({ timeout: 20_000 });
    expect(await stars.allTextContents()).toEqual(['★', '★★', '★★★', '★★★★', '★★★★★']);
    await shot('dashboard-rating-widget.png', widget);
    await stars.nth(3).click();
    await widget.locator('.msg.assistant', { hasText: 'Thank you!' }).waitFor({ timeout: 20_000 });
    const { rows } = await running.hub.db.query<{ data: { value: number }; channel: string }>(
      `SELECT data, channel FROM session_events WHERE type = 'rating'`,
    );
    expect(rows).toEqual([{ data: { value: 4 }, channel: 'web' }]);
    await widget.close();
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await textOf(total('satisfaction', 'ratings'), '1');
    await textOf(total('satisfaction', 'average'), '4 ★');
    await textOf(total('satisfaction', '4 stars'), '1');
  });

  it('shows the results of the last search asked, when an earlier one answers late', async () => {
    const jsonReads = await countJsonReads(page);
    // The search for "marmalade" is answered by the hub at once, but handed to the page only
    // when the test says.
    const slow = await holdAnswers(page, /\/api\/admin\/transcripts\/search\?q=marmalade/);
    try {
      await page.goto(`${running.url}/console/transcripts`);
      await page.getByLabel('Words').fill('marmalade');
      await page.getByRole('button', { name: 'Search' }).click();
      await until(
        async () => slow.count(),
        (n) => n >= 1,
      );
      // Another word, before the first answer came.
      await page.getByLabel('Words').fill('phone');
      await page.getByRole('button', { name: 'Search' }).click();
      const results = page.getByRole('list', { name: 'Search results' });
      await results.locator('mark', { hasText: 'phone' }).first().waitFor({ timeout: 20_000 });

      await slow.release();
      await until(
        () => jsonReads('q=marmalade'),
        (n) => n === 1,
      );
      expect(await results.locator('mark', { hasText: 'phone' }).count()).toBeGreaterThan(0);
      expect(await results.locator('mark', { hasText: 'marmalade' }).count()).toBe(0);
    } finally {
      await slow.stop();
    }
  });

  it('finds a message by a word, and opens its conversation', async () => {
    await page.getByRole('link', { name: 'Transcripts' }).click();
    await page.getByLabel('Words').fill('marmalade');
    await page.getByRole('button', { name: 'Search' }).click();
    const results = page.getByRole('list', { name: 'Search results' });
    await results.locator('mark', { hasText: 'marmalade' }).first().waitFor();
    await results.getByRole('link').filter({ hasText: 'user' }).first().click();
    await page
      .getByRole('list', { name: 'Transcript' })
      .getByText('do you sell marmalade jars?', { exact: true })
      .waitFor();
  });

  it('inspects a session: the HEAR it waits at, its variables and events; exports its transcript', async () => {
    await page.goto(`${running.url}/console/transcripts/${whatsAppSession}`);
    await page
      .getByRole('list', { name: 'Transcript' })
      .getByText('hello from my phone', { exact: true })
      .waitFor();
    await page.getByRole('button', { name: 'Inspect' }).click();
    await textOf(page.locator('.dialog-position'), /Waiting at signup\.bas line 6: HEAR name AS NAME/);
    await page.getByRole('region', { name: 'Inspection' }).getByText('session.start').first().waitFor();
    await shot('dashboard-inspection.png');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Export text' }).click(),
    ]);
    const text = await fs.readFile((await download.path())!, 'utf8');
    expect(text).toContain('user: hello from my phone');
  });

  it('lists those reads in the audit log, with who, what, when and from where', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByLabel('Session id').fill(whatsAppSession);
    await page.getByRole('button', { name: 'Show' }).click();
    const table = page.getByRole('table');
    for (const what of ['transcript.read', 'session.inspect', 'transcript.export (text)'])
      await table
        .getByRole('row')
        .filter({ hasText: what })
        .filter({ hasText: 'Sue Pervisor' })
        .first()
        .waitFor();
    await textOf(table.getByRole('row').filter({ hasText: 'session.inspect' }), /console/);
    const { rows } = await running.hub.db.query<{ action: string; via: string; ip: string }>(
      'SELECT action, via, ip FROM transcript_reads WHERE session_id = $1 ORDER BY id',
      [whatsAppSession],
    );
    expect(rows.map((r) => r.action)).toEqual(['transcript.read', 'session.inspect', 'transcript.export']);
    expect(rows.every((r) => r.via === 'console' && r.ip)).toBe(true);
    await shot('dashboard-audit.png');
  });

  it("shows a supervisor of one bot that bot only: its filter, no other bot's messages, another bot's conversation refused", async () => {
    const own = await launchChromium();
    try {
      const sid = await own.context.newPage();
      await signInToConsole(sid, running.url, SID);
      await sid.getByRole('link', { name: 'Dashboard' }).click();
      const bots = sid.getByLabel('Bot', { exact: true });
      await until(
        () => bots.locator('option').allTextContents(),
        (names) => names.join() === 'All bots,support',
        20_000,
      );
      await sid.locator('figure[data-metric="messages"]').getByText('Nothing in this range.').waitFor();

      await sid.getByRole('link', { name: 'Transcripts' }).click();
      await sid.getByLabel('Words').fill('marmalade');
      await sid.getByRole('button', { name: 'Search' }).click();
      await sid.getByText('No message has those words.').waitFor();

      await sid.goto(`${running.url}/console/transcripts/${whatsAppSession}`);
      await sid
        .getByRole('alert')
        .filter({ hasText: /bot you do not serve/ })
        .waitFor();
      expect(await sid.getByRole('list', { name: 'Transcript' }).count()).toBe(0);
    } finally {
      await own.close();
    }
  });
});
