import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../helpers/admin.ts';
import { launchChromium, type TestBrowser } from '../helpers/browser.ts';
import { startWebHub, type WebHub } from '../helpers/web-hub.ts';

const ADMIN_TOKEN = 'outbound-web-admin-token-0123456789abcdef';
/** Set to a folder to write README's screenshot while the test runs. */
const SCREENSHOTS = process.env.SCREENSHOTS_DIR;

/** A message the business sends first to a web session, with the widget open and with it closed. */
describe('outbound messages to the web widget in a real browser', () => {
  let running: WebHub;
  let browser: TestBrowser;
  let admin: ReturnType<typeof adminClient>;
  let sessionId: string;

  beforeAll(async () => {
    running = await startWebHub({ adminToken: ADMIN_TOKEN });
    browser = await launchChromium();
    admin = adminClient(running.url, ADMIN_TOKEN);
  });
  afterAll(async () => {
    await browser?.close();
    await running?.stop();
  });

  const exact = (text: string) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  const replyShown = (p: Page, text: string, timeout = 15_000) =>
    p.locator('.msg.assistant', { hasText: exact(text) }).waitFor({ timeout });
  const online = (p: Page) => p.locator('.status[data-state="online"]').waitFor({ timeout: 15_000 });
  const send = (text: string) =>
    admin('POST', '/api/admin/messages', { bot: 'default', channel: 'web', to: sessionId, text });

  it('shows the message live while the widget is connected', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${running.url}/`);
    await online(page);
    await replyShown(page, 'welcome to the web test bot');
    const token = (await browser.context.cookies(running.url)).find((c) => c.name === 'sb_default')!.value;
    const session = await fetch(`${running.url}/api/session`, {
      headers: { authorization: `Bearer ${token}` },
    });
    sessionId = ((await session.json()) as { session_id: string }).session_id;

    const res = await send('Your order A-1043 is ready for pickup.');
    expect(res.status).toBe(202);
    expect(res.json.session_id).toBe(sessionId);
    // No reload: the socket brings it.
    await replyShown(page, 'Your order A-1043 is ready for pickup.');
    if (SCREENSHOTS) await page.screenshot({ path: path.join(SCREENSHOTS, 'outbound-web.png') });
    await page.close();
  });

  it('shows a message sent while the widget was closed when it next connects', async () => {
    const res = await send('We kept your table until 8 pm.');
    expect(res.status).toBe(202);
    expect(res.json.session_id).toBe(sessionId);
    const page = await browser.context.newPage();
    await page.goto(`${running.url}/`);
    await online(page);
    await replyShown(page, 'We kept your table until 8 pm.');
    const shown = await page
      .locator('.msg[data-seq]')
      .evaluateAll((els) => els.map((e) => `${e.classList[1]}:${e.textContent}`));
    expect(shown).toEqual([
      'assistant:welcome to the web test bot',
      'assistant:Your order A-1043 is ready for pickup.',
      'assistant:We kept your table until 8 pm.',
    ]);
    await page.close();
  });
});
