import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { holdAnswers, launchChromium, signInToConsole, type TestBrowser } from '../helpers/browser.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/console');
const ADMIN_TOKEN = 'console-use-admin-token-0123456789abcdef';
const ANA = { name: 'Ana Reyes', email: 'ana@use.test', password: 'correct horse battery staple' };
/** The console's reply box of a conversation the agent holds. */
const REPLY = /^Reply to/;

/** What the history of a conversation looks like to the agent API. */
type Detail = { messages: { role: string; text: string }[] };

/**
 * The agent console as an agent uses it day to day, in Debian's chromium: what the person sees
 * when the agent is quick on the keys, when the hub does not answer, when text runs right to left.
 */
describe('agent console in everyday use', () => {
  let running: RunningHub;
  let browser: TestBrowser;
  let anaToken: string;
  const people = () => apiClient(running.url);
  const ana = () => agentClient(running.url, { token: anaToken });

  /** A person of the default bot who has asked for a human: their session id and token. */
  const waitingPerson = async (first = 'human') => {
    const person = await people().createSession('default');
    expect((await people().chat(person.token, first)).status).toBe(200);
    return person;
  };

  /** Opens `sessionId` in a new page of `browser` (signed in already) and claims it. */
  const claimIn = async (page: Page, sessionId: string) => {
    await page.goto(`${running.url}/console/conversations/${sessionId}`);
    await page.getByRole('button', { name: 'Claim' }).click();
    await page.getByRole('button', { name: 'Release to bot' }).waitFor({ timeout: 20_000 });
  };

  /** The transfer picker's option for the colleague named `name`. */
  const transferTarget = (page: Page, name: string) =>
    page.getByRole('combobox', { name: 'Transfer to' }).locator('option', { hasText: name });

  beforeAll(async () => {
    running = await startTestHub({ configDir: CONFIG_DIR, adminToken: ADMIN_TOKEN });
    ({ token: anaToken } = await createAgentVia(running.url, ADMIN_TOKEN, {
      ...ANA,
      role: 'agent',
      bots: ['default'],
      capacity: 20,
    }));
    expect((await ana().call('PUT', '/api/agent/status', { body: { status: 'available' } })).status).toBe(
      200,
    );
    browser = await launchChromium();
    const page = await browser.context.newPage();
    await signInToConsole(page, running.url, ANA);
    await page.getByRole('tab', { name: /Waiting/ }).waitFor({ timeout: 20_000 });
    await page.close();
  });

  afterAll(async () => {
    await browser?.close();
    await running?.stop();
  });

  it('sends a reply once when Enter is pressed again before the hub answered, and keeps what is typed meanwhile', async () => {
    const person = await waitingPerson();
    const page = await browser.context.newPage();
    // Counts the replies the page asks the hub to send (fetch is called as Enter is handled).
    await page.addInitScript(() => {
      const w = window as unknown as { __replies: number };
      w.__replies = 0;
      const original = window.fetch;
      window.fetch = (input, init) => {
        if (init?.method === 'POST' && String(input).endsWith('/messages')) w.__replies++;
        return original(input, init);
      };
    });
    await claimIn(page, person.session_id);
    const held = await holdAnswers(page, /\/api\/agent\/conversations\/[^/]+\/messages$/);

    const reply = page.getByRole('textbox', { name: REPLY });
    await reply.fill('Your kettle ships today.');
    await reply.press('Enter');
    // The answer is slow; the agent presses Enter again, then starts on the next message.
    await reply.press('Enter');
    await reply.pressSequentially('Anything else?');
    expect(await page.evaluate(() => (window as unknown as { __replies: number }).__replies)).toBe(1);

    await until(held.count, (n) => n === 1, 20_000);
    await held.release();
    await held.stop();
    await page.locator('.msg-agent', { hasText: 'Your kettle ships today.' }).waitFor({ timeout: 20_000 });
    const sent = (await ana().call('GET', `/api/agent/conversations/${person.session_id}`)).json as Detail;
    expect(sent.messages.filter((m) => m.role === 'agent').map((m) => m.text)).toEqual([
      'Your kettle ships today.',
    ]);
    // What was typed while the reply was on its way is still there, to be sent next.
    expect(await reply.inputValue()).toBe('Anything else?');
    await page.close();
  });

  it('says so, and keeps the reply, when the conversation was released just before the reply reached the hub', async () => {
    const person = await waitingPerson();
    const page = await browser.context.newPage();
    await claimIn(page, person.session_id);
    // The conversation goes back to the bot (from another tab) as the reply is on its way.
    await page.route(/\/messages$/, async (route) => {
      const released = await ana().call('POST', `/api/agent/conversations/${person.session_id}/release`);
      expect(released.status).toBe(200);
      await route.continue();
    });
    const reply = page.getByRole('textbox', { name: REPLY });
    await reply.fill('One moment, I will check the order.');
    await reply.press('Enter');
    // The console reads the conversation again on the release's event, before or after the refusal
    // comes back: the refusal stays on screen either way.
    const refused = page.getByRole('alert').filter({ hasText: 'no agent holds this conversation' });
    await page.getByRole('button', { name: 'Claim' }).waitFor({ timeout: 20_000 });
    await refused.waitFor({ timeout: 20_000 });
    expect(await page.locator('textarea').inputValue()).toBe('One moment, I will check the order.');
    await page.close();
  });

  it('does not show the sign-in form as if signed out when the hub did not take the sign-out', async () => {
    // A browser of its own: its sign-in is the one ended here.
    const own = await launchChromium();
    try {
      const page = await own.context.newPage();
      await signInToConsole(page, running.url, ANA);
      await page.getByRole('tab', { name: /Waiting/ }).waitFor({ timeout: 20_000 });
      await page.route('**/api/agent/logout', (route) => route.abort('connectionrefused'));
      await page.getByRole('button', { name: 'Sign out' }).click();
      // Told that the sign-in still holds (on a shared computer, the next person would have it).
      await page
        .getByRole('alert')
        .filter({ hasText: 'You are still signed in' })
        .waitFor({ timeout: 20_000 });
      expect(await page.getByRole('button', { name: 'Sign out' }).isVisible()).toBe(true);

      // Once the hub answers, signing out ends the sign-in for good: a reload does not bring it back.
      await page.unroute('**/api/agent/logout');
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: 20_000 });
      await page.reload();
      await page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: 20_000 });
      expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(0);
    } finally {
      await own.close();
    }
  });

  it('shows right-to-left text right to left: the transcript, the inbox preview and the reply box', async () => {
    const arabic = 'مرحبا، هل يمكنك مساعدتي في طلبي؟';
    const person = await waitingPerson();
    expect((await people().chat(person.token, arabic, {}, '?wait=false')).status).toBe(202);
    const page = await browser.context.newPage();
    await page.goto(`${running.url}/console`);
    const preview = page
      .getByRole('list', { name: /conversations/ })
      .getByRole('link')
      .filter({ hasText: arabic })
      .locator('.preview');
    await preview.waitFor({ timeout: 20_000 });
    const direction = (loc: ReturnType<Page['locator']>) =>
      loc.evaluate((el) => getComputedStyle(el).direction);
    expect(await direction(preview)).toBe('rtl');

    await claimIn(page, person.session_id);
    const text = page.locator('.msg-user .text', { hasText: arabic });
    await text.waitFor({ timeout: 20_000 });
    expect(await direction(text)).toBe('rtl');
    // The agent's own words are left to right or right to left as written, line by line.
    const reply = page.getByRole('textbox', { name: REPLY });
    await reply.fill('نعم، سأتحقق من ذلك الآن.');
    expect(await direction(reply)).toBe('rtl');
    await page.close();
  });

  it('shows how long a conversation has waited as time passes, without any event', async () => {
    const person = await waitingPerson();
    // A browser of its own: its clock is the test's to move.
    const own = await launchChromium();
    try {
      const page = await own.context.newPage();
      await page.clock.install();
      await signInToConsole(page, running.url, ANA);
      const since = page
        .getByRole('list', { name: /conversations/ })
        .locator(`a[href$="${person.session_id}"] .since`);
      await since.waitFor({ timeout: 20_000 });
      expect(await since.innerText()).toMatch(/^\d+s$/);
      await page.clock.fastForward('10:00');
      await until(
        () => since.innerText(),
        (t) => t === '10m',
        20_000,
      );
    } finally {
      await own.close();
    }
  });

  it('says when the inbox cannot be read, and shows it once the hub answers again', async () => {
    const person = await waitingPerson();
    const page = await browser.context.newPage();
    let refusing = true;
    let refused = 0;
    // The inbox's reads (its Waiting tab), not the status switch's count of the agent's own.
    await page.route(/\/api\/agent\/conversations\?state=waiting&/, (route) => {
      if (!refusing) return route.continue();
      refused++;
      return route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'unavailable', message: 'the database is not answering' } }),
      });
    });
    // No event stream while the reads are refused: each of its events (its `ready` first) reads
    // the inbox again, so only the page's first read and Try again's remain, and they can be counted.
    await page.route(/\/api\/agent\/events/, (route) => route.abort());
    await page.goto(`${running.url}/console`);
    const refusal = page.getByRole('alert').filter({ hasText: 'the database is not answering' });
    await refusal.waitFor({ timeout: 20_000 });
    expect(refused).toBe(1);
    const tryAgain = page.getByRole('button', { name: 'Try again' });
    await tryAgain.click();
    await until(
      () => refused,
      (n) => n >= 2,
      20_000,
    );
    expect(refused).toBe(2);
    await refusal.waitFor({ timeout: 20_000 });
    // The hub answers again, and the stream comes back (its `ready` reads the inbox too): the
    // list shows whichever read gets there first, Try again's or the stream's.
    refusing = false;
    await page.unroute(/\/api\/agent\/events/);
    const row = page.getByRole('list', { name: /conversations/ }).locator(`a[href$="${person.session_id}"]`);
    await until(
      async () => {
        if ((await row.count()) > 0) return true;
        // Gone already when a read of the stream's got through first.
        await tryAgain.click({ timeout: 1_000 }).catch(() => undefined);
        return false;
      },
      Boolean,
      20_000,
      250,
    );
    expect(await page.getByRole('alert').count()).toBe(0);
    await page.close();
  });

  it('keeps a draft to the conversation it was written in, when the browser goes straight to another one and back, and over a reload', async () => {
    const first = await waitingPerson();
    const second = await waitingPerson();
    const page = await browser.context.newPage();
    await claimIn(page, first.session_id);
    // To the second through the inbox, within the page.
    await page.getByRole('button', { name: '← Inbox' }).click();
    await page.locator(`a[href$="${second.session_id}"]`).click();
    await page.getByRole('button', { name: 'Claim' }).click();
    await page.getByRole('button', { name: 'Release to bot' }).waitFor({ timeout: 20_000 });
    await page.getByRole('textbox', { name: REPLY }).fill('Your refund for order 1042 is on its way.');
    // Back two pages at once (the back button's menu): from the second conversation to the first.
    await page.evaluate(() => history.go(-2));
    await page.waitForURL(`**/console/conversations/${first.session_id}`);
    await page.getByRole('button', { name: 'Release to bot' }).waitFor({ timeout: 20_000 });
    expect(await page.getByRole('textbox', { name: REPLY }).inputValue()).toBe('');
    // Forward again: the draft is where it was written, and still there after a reload.
    await page.evaluate(() => history.go(2));
    await page.waitForURL(`**/console/conversations/${second.session_id}`);
    const draft = page.getByRole('textbox', { name: REPLY });
    await until(
      () => draft.inputValue(),
      (v) => v === 'Your refund for order 1042 is on its way.',
      20_000,
    );
    await page.reload();
    await page.getByRole('button', { name: 'Release to bot' }).waitFor({ timeout: 20_000 });
    expect(await draft.inputValue()).toBe('Your refund for order 1042 is on its way.');
    await page.close();
  });

  it('shows the start of a long conversation on request, and keeps it while new messages come', async () => {
    const person = await waitingPerson('human: my kettle from order 1042 leaks');
    expect((await people().chat(person.token, 'human')).status).toBe(200);
    const claimed = await ana().call('POST', `/api/agent/conversations/${person.session_id}/claim`);
    expect(claimed.status).toBe(200);
    // More than the one page the console reads at first (100 rows).
    for (let i = 1; i <= 120; i++) {
      const noted = await ana().call('POST', `/api/agent/conversations/${person.session_id}/notes`, {
        body: { text: `checked step ${i}` },
      });
      expect(noted.status).toBe(201);
    }
    const page = await browser.context.newPage();
    await page.goto(`${running.url}/console/conversations/${person.session_id}`);
    await page.locator('.msg-note', { hasText: /checked step 120$/ }).waitFor({ timeout: 20_000 });
    const opening = page.locator('.msg-user', { hasText: 'my kettle from order 1042 leaks' });
    expect(await opening.count()).toBe(0);
    // A new message comes into view, though the page read stays 100 rows long.
    await ana().call('POST', `/api/agent/conversations/${person.session_id}/notes`, {
      body: { text: 'checked step 121' },
    });
    const newest = page.locator('.msg-note', { hasText: /checked step 121$/ });
    await newest.waitFor({ timeout: 20_000 });
    await until(
      () =>
        newest.evaluate((el) => {
          const row = el.getBoundingClientRect();
          const list = el.closest('ol')!.getBoundingClientRect();
          return row.bottom <= Math.min(list.bottom, window.innerHeight) + 1;
        }),
      (inView) => inView,
      20_000,
    );

    await page.getByRole('button', { name: 'Show earlier messages' }).click();
    await opening.waitFor({ timeout: 20_000 });
    // Everything from the first message to the last, once each and in order.
    const notes = async () =>
      (await page.locator('.msg-note .text').allInnerTexts()).map((t) =>
        Number(t.replace('checked step ', '')),
      );
    expect(await notes()).toEqual(Array.from({ length: 121 }, (_, i) => i + 1));
    await until(
      () => page.getByRole('button', { name: 'Show earlier messages' }).count(),
      (n) => n === 0,
      20_000,
    );

    // New messages push the first page's oldest rows out of the console's next read: still shown.
    for (let i = 122; i <= 130; i++)
      await ana().call('POST', `/api/agent/conversations/${person.session_id}/notes`, {
        body: { text: `checked step ${i}` },
      });
    await page.locator('.msg-note', { hasText: /checked step 130$/ }).waitFor({ timeout: 20_000 });
    expect(await notes()).toEqual(Array.from({ length: 130 }, (_, i) => i + 1));
    expect(await opening.count()).toBe(1);
    await page.close();
  });

  it('names the agent who wrote each reply, for the colleague who takes the conversation over', async () => {
    const person = await waitingPerson();
    const dee = { name: 'Dee Nightshift', email: 'dee@use.test', password: 'dee has a long passphrase' };
    const { agent_id: deeId } = await createAgentVia(running.url, ADMIN_TOKEN, {
      ...dee,
      role: 'agent',
      bots: ['default'],
    });
    const page = await browser.context.newPage();
    await claimIn(page, person.session_id);
    const reply = page.getByRole('textbox', { name: REPLY });
    await reply.fill('I have asked the warehouse; my colleague will follow up.');
    await reply.press('Enter');
    await page.locator('.msg-agent', { hasText: 'asked the warehouse' }).waitFor({ timeout: 20_000 });
    await transferTarget(page, dee.name).waitFor({ state: 'attached', timeout: 20_000 });
    await page.getByRole('combobox', { name: 'Transfer to' }).selectOption(deeId);
    await page.getByRole('button', { name: 'Transfer' }).click();
    await page.waitForURL(`${running.url}/console`, { timeout: 20_000 });
    await page.close();

    const other = await launchChromium();
    try {
      const deePage = await other.context.newPage();
      await signInToConsole(deePage, running.url, dee);
      await deePage.getByRole('tab', { name: /Waiting/ }).waitFor({ timeout: 20_000 });
      await deePage.goto(`${running.url}/console/conversations/${person.session_id}`);
      const row = deePage.locator('.msg-agent', { hasText: 'asked the warehouse' });
      await row.waitFor({ timeout: 20_000 });
      expect(await row.locator('.who').innerText()).toBe(ANA.name);
    } finally {
      await other.close();
    }
  });

  it('hands a claimed conversation to a colleague picked by name, whose console gets it; a refusal is said beside the picker', async () => {
    const flo = { name: 'Flo Dayshift', email: 'flo@use.test', password: 'flo has a long passphrase' };
    const { agent_id: floId, token: floToken } = await createAgentVia(running.url, ADMIN_TOKEN, {
      ...flo,
      role: 'agent',
      bots: ['default'],
    });
    const floApi = agentClient(running.url, { token: floToken });
    expect((await floApi.call('PUT', '/api/agent/status', { body: { status: 'available' } })).status).toBe(
      200,
    );
    // Gus never signs in (offline); Hal serves another bot: not offered at all.
    await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Gus Offline',
      email: 'gus@use.test',
      role: 'agent',
      bots: ['default'],
    });
    await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Hal Elsewhere',
      email: 'hal@use.test',
      role: 'agent',
      bots: ['elsewhere'],
    });

    const other = await launchChromium();
    try {
      // Flo's console is open on her own conversations.
      const floPage = await other.context.newPage();
      await signInToConsole(floPage, running.url, flo);
      await floPage.getByRole('tab', { name: /Mine/ }).click();
      await floPage.getByText('No conversations here.').waitFor({ timeout: 20_000 });

      const person = await waitingPerson();
      const page = await browser.context.newPage();
      await claimIn(page, person.session_id);
      const picker = page.getByRole('combobox', { name: 'Transfer to' });
      // Names with status and load; those the bot would not hand a conversation to are set apart.
      await transferTarget(page, flo.name).waitFor({ state: 'attached', timeout: 20_000 });
      expect(await transferTarget(page, flo.name).innerText()).toBe('Flo Dayshift (available, 0/5)');
      expect(await picker.locator('optgroup[label="Available"] option').allInnerTexts()).toContain(
        'Flo Dayshift (available, 0/5)',
      );
      expect(
        await picker.locator('optgroup[label="Away, offline or full"] option').allInnerTexts(),
      ).toContain('Gus Offline (offline, 0/5)');
      expect(await transferTarget(page, 'Hal Elsewhere').count()).toBe(0);
      expect(await transferTarget(page, ANA.name).count()).toBe(0);

      // By keyboard: the name typed into the picker chooses Flo, Tab reaches Transfer, Enter sends.
      await picker.focus();
      await page.keyboard.type('Flo');
      expect(await picker.inputValue()).toBe(floId);
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Transfer');
      await page.keyboard.press('Enter');
      await page.waitForURL(`${running.url}/console`, { timeout: 20_000 });

      // Flo's console shows it among hers without a reload, and she holds it.
      const row = floPage.locator(`a[href="/console/conversations/${person.session_id}"]`);
      await row.waitFor({ timeout: 20_000 });
      await row.click();
      await floPage.getByRole('button', { name: 'Release to bot' }).waitFor({ timeout: 20_000 });

      // Refused: Flo stops serving the bot just before the transfer reaches the hub (422).
      const second = await waitingPerson();
      await claimIn(page, second.session_id);
      await transferTarget(page, flo.name).waitFor({ state: 'attached', timeout: 20_000 });
      await page.route(/\/transfer$/, async (route) => {
        const moved = await fetch(`${running.url}/api/admin/agents/${floId}`, {
          method: 'PATCH',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ bots: ['elsewhere'] }),
        });
        expect(moved.status).toBe(200);
        await route.continue();
      });
      await picker.selectOption(floId);
      await page.getByRole('button', { name: 'Transfer' }).click();
      await page
        .locator('form.transfer')
        .getByRole('alert')
        .filter({ hasText: 'does not serve the bot' })
        .waitFor({ timeout: 20_000 });
      // Still Ana's, still on screen; Flo is no longer offered.
      expect(await page.getByRole('button', { name: 'Release to bot' }).isVisible()).toBe(true);
      await until(
        () => transferTarget(page, flo.name).count(),
        (n) => n === 0,
        20_000,
      );
      await page.close();
    } finally {
      await other.close();
    }
  });

  it('says when a status change did not reach the hub, and shows the status the hub has', async () => {
    const own = await launchChromium();
    try {
      const page = await own.context.newPage();
      await signInToConsole(page, running.url, ANA);
      const status = page.getByRole('combobox', { name: 'Your status' });
      await status.waitFor({ timeout: 20_000 });
      expect(await status.inputValue()).toBe('available');
      await page.route('**/api/agent/status', (route) => route.abort('connectionrefused'));
      await status.selectOption('away');
      await page
        .getByRole('alert')
        .filter({ hasText: 'Your status is still Available' })
        .waitFor({ timeout: 20_000 });
      expect(await status.inputValue()).toBe('available');
      expect((await ana().call('GET', '/api/agent/me')).json.status).toBe('available');
    } finally {
      await own.close();
    }
  });

  it('two agents claim the same conversation at once: one holds it, the other is told and cannot write to the person', async () => {
    const person = await waitingPerson();
    const cy = { name: 'Cy Colleague', email: 'cy@use.test', password: 'cy has a long passphrase' };
    await createAgentVia(running.url, ADMIN_TOKEN, { ...cy, role: 'agent', bots: ['default'] });
    const other = await launchChromium();
    try {
      const anaPage = await browser.context.newPage();
      const cyPage = await other.context.newPage();
      await signInToConsole(cyPage, running.url, cy);
      await cyPage.getByRole('tab', { name: /Waiting/ }).waitFor({ timeout: 20_000 });
      for (const page of [anaPage, cyPage]) {
        await page.goto(`${running.url}/console/conversations/${person.session_id}`);
        await page.getByRole('button', { name: 'Claim' }).waitFor({ timeout: 20_000 });
      }
      // Both claims reach the hub only once both were sent: a claim let through first would tell the
      // other page (its event) before that page's click, and take its Claim button away.
      let arrived = 0;
      let bothSent!: () => void;
      const sent = new Promise<void>((resolve) => {
        bothSent = resolve;
      });
      for (const page of [anaPage, cyPage])
        await page.route(/\/claim$/, async (route) => {
          if (++arrived === 2) bothSent();
          await sent;
          await route.continue();
        });
      await Promise.all([anaPage, cyPage].map((page) => page.getByRole('button', { name: 'Claim' }).click()));

      const holder = async (page: Page) => {
        const held = page.getByRole('button', { name: 'Release to bot' });
        const told = page.getByRole('alert').filter({ hasText: 'another agent holds this conversation' });
        await held.or(told).first().waitFor({ timeout: 20_000 });
        return held.isVisible();
      };
      const holds = [await holder(anaPage), await holder(cyPage)];
      expect(holds.filter(Boolean)).toHaveLength(1);
      const detail = (await ana().call('GET', `/api/agent/conversations/${person.session_id}`)).json as {
        assigned_to: string | null;
      };
      expect(detail.assigned_to).not.toBeNull();
      // The one who lost sees no reply box to write in.
      const loser = holds[0] ? cyPage : anaPage;
      await loser
        .getByRole('alert')
        .filter({ hasText: 'another agent holds this conversation' })
        .waitFor({ timeout: 20_000 });
      expect(await loser.getByRole('textbox', { name: REPLY }).count()).toBe(0);
      await anaPage.close();
    } finally {
      await other.close();
    }
  });

  it('a keyboard-only agent who claims lands in the reply box, and who releases, on Claim', async () => {
    const person = await waitingPerson();
    const page = await browser.context.newPage();
    await page.goto(`${running.url}/console/conversations/${person.session_id}`);
    const claim = page.getByRole('button', { name: 'Claim' });
    await claim.focus();
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Release to bot' }).waitFor({ timeout: 20_000 });
    await until(
      () =>
        page.evaluate(
          () => document.activeElement?.getAttribute('aria-label') ?? document.activeElement?.tagName,
        ),
      (focused) => typeof focused === 'string' && REPLY.test(focused),
      20_000,
    );
    await page.keyboard.type('Typed without the mouse');
    expect(await page.getByRole('textbox', { name: REPLY }).inputValue()).toBe('Typed without the mouse');
    // Releasing with the keyboard leaves the focus on what replaces the button: Claim.
    await page.getByRole('button', { name: 'Release to bot' }).focus();
    await page.keyboard.press('Enter');
    await until(
      () =>
        page.evaluate(() => document.activeElement?.textContent?.trim() ?? document.activeElement?.tagName),
      (focused) => focused === 'Claim',
      20_000,
    );
    await page.close();
  });

  // Last of this hub's tests: it leaves more conversations waiting than one page of the API holds.
  it('counts and shows every waiting conversation past the first 100, and n opens the one that has waited longest', async () => {
    /** Every waiting conversation, as the agent API pages them (newest first). */
    const allWaiting = async () => {
      const rows: { session_id: string; waiting_since: string }[] = [];
      let before: string | null = null;
      do {
        const page = (
          await ana().call(
            'GET',
            `/api/agent/conversations?state=waiting&limit=200${before ? `&before=${before}` : ''}`,
          )
        ).json as { conversations: typeof rows; next_before: string | null };
        rows.push(...page.conversations);
        before = page.next_before;
      } while (before);
      return rows;
    };
    for (let i = (await allWaiting()).length; i < 105; i++) await waitingPerson();
    const waiting = await allWaiting();
    const longest = waiting.reduce((a, b) =>
      Date.parse(b.waiting_since) < Date.parse(a.waiting_since) ? b : a,
    );

    const page = await browser.context.newPage();
    await page.goto(`${running.url}/console`);
    await page
      .getByRole('tab', { name: /Waiting/ })
      .locator('.badge', { hasText: new RegExp(`^${waiting.length}$`) })
      .waitFor({ timeout: 20_000 });
    await until(
      () => page.title(),
      (t) => t.startsWith(`(${waiting.length}) `),
      20_000,
    );
    const longestRow = page
      .getByRole('list', { name: /conversations/ })
      .locator(`a[href$="${longest.session_id}"]`);
    await longestRow.waitFor({ timeout: 20_000 });
    await page.keyboard.press('n');
    await page.waitForURL(`**/console/conversations/${longest.session_id}`, { timeout: 20_000 });
    await page.close();
  });
});

/**
 * The console while its hub restarts (stopped, then started again on the same address and
 * database): the agent is told, keeps their draft, and sees what came meanwhile without a reload.
 */
describe('agent console while the hub restarts', () => {
  let database: TestDatabase;
  let running: RunningHub | undefined;
  let port = 0;
  let browser: TestBrowser;

  const start = async () => {
    running = await startTestHub({
      configDir: CONFIG_DIR,
      adminToken: ADMIN_TOKEN,
      databaseUrl: database.url,
      port,
    });
    port = Number(new URL(running.url).port);
    return running.url;
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    await start();
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await running?.stop();
    await database?.drop();
  });

  it('says the connection is lost while the hub is down, keeps the draft, and shows what came meanwhile once it is back', async () => {
    const url = running!.url;
    const { token } = await createAgentVia(url, ADMIN_TOKEN, { ...ANA, role: 'agent', bots: ['default'] });
    expect(
      (await agentClient(url, { token }).call('PUT', '/api/agent/status', { body: { status: 'available' } }))
        .status,
    ).toBe(200);
    const person = await apiClient(url).createSession('default');
    expect((await apiClient(url).chat(person.token, 'human')).status).toBe(200);

    const page = await browser.context.newPage();
    await signInToConsole(page, url, ANA);
    await page.getByRole('tab', { name: /Waiting/ }).waitFor({ timeout: 20_000 });
    await page.goto(`${url}/console/conversations/${person.session_id}`);
    await page.getByRole('button', { name: 'Claim' }).click();
    await page.getByRole('button', { name: 'Release to bot' }).waitFor({ timeout: 20_000 });
    const reply = page.getByRole('textbox', { name: REPLY });
    await reply.fill('Let me look at your order');

    const lost = page.getByRole('status').filter({ hasText: 'The connection to the hub is lost' });
    await running!.hub.stop();
    running = undefined;
    await lost.waitFor({ timeout: 20_000 });

    await start();
    // The person writes as soon as the hub is back, perhaps before the console has reconnected.
    expect(
      (await apiClient(running!.url).chat(person.token, 'Are you still there?', {}, '?wait=false')).status,
    ).toBe(202);
    await page.locator('.msg-user', { hasText: 'Are you still there?' }).waitFor({ timeout: 30_000 });
    await lost.waitFor({ state: 'detached', timeout: 20_000 });
    expect(await reply.inputValue()).toBe('Let me look at your order');
    await page.close();
  });
});
