import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebAdapter, loadWebConfig } from '../../adapters/web/index.ts';
import { DEFAULT_RATING_QUESTION } from '../../src/lifecycle/rating.ts';
import { launchChromium, type TestBrowser } from '../helpers/browser.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';

/** The bot asks at every end (bot.json); a web conversation idles out after 3 s. */
const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/rating-channels');

/**
 * `sessions.askRating` in the web widget, in Chromium: the idle sweep ends a quiet conversation,
 * the widget shows the five stars with the hub's question, a star click is the ended session's
 * rating, and the next message starts a new conversation whose replies the widget shows (its
 * sequence numbers start again at 1: the old conversation's shown messages are not theirs).
 */
describe('web widget: the rating asked when the conversation idled out', () => {
  let running: RunningHub;
  let browser: TestBrowser;
  let page: Page;
  const q = async <T>(sql: string, params: unknown[] = []) =>
    (await running.hub.db.query(sql, params)).rows as T[];

  beforeAll(async () => {
    running = await startTestHub(
      { configDir: CONFIG_DIR, idleSweepIntervalMs: 300, schedulerPollMs: 50 },
      { adapters: [createWebAdapter(loadWebConfig({}))] },
    );
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await running?.stop();
  });

  const reply = (text: string, timeout = 20_000) =>
    page.locator('.msg.assistant', { hasText: text }).last().waitFor({ timeout });

  it('shows the stars after the idle-out; a click rates the ended conversation', async () => {
    page = await browser.context.newPage();
    await page.goto(`${running.url}/`);
    await page.locator('textarea').fill('hello');
    await page.locator('textarea').press('Enter');
    await reply('You said hello');
    const [session] = await q<{ id: string }>(
      "SELECT s.id FROM sessions s JOIN messages m ON m.session_id = s.id WHERE s.channel = 'web' AND m.content = 'hello'",
    );
    // Nobody writes: the sweep ends the conversation and the hub asks.
    await reply(DEFAULT_RATING_QUESTION);
    const stars = page.locator('.suggestions button');
    await stars.first().waitFor();
    expect(await stars.allTextContents()).toEqual(['★', '★★', '★★★', '★★★★', '★★★★★']);
    const [ended] = await q<{ end_reason: string }>('SELECT end_reason FROM sessions WHERE id = $1', [
      session!.id,
    ]);
    expect(ended!.end_reason).toBe('idle');

    await stars.nth(4).click();
    await reply('Thank you for your rating!');
    expect(
      await q<{ data: unknown }>(
        "SELECT data FROM session_events WHERE session_id = $1 AND type = 'rating'",
        [session!.id],
      ),
    ).toEqual([{ data: { score: 5, source: 'askRating' } }]);

    // The widget stays open; the next message is a new conversation, shown below the old one.
    await page.locator('textarea').fill('back again');
    await page.locator('textarea').press('Enter');
    await reply('You said back again');
    const answered = await q<{ session_id: string }>(
      "SELECT session_id FROM messages WHERE role = 'assistant' AND content = 'You said back again'",
    );
    expect(answered.map((r) => r.session_id)).not.toContain(session!.id);
    expect(answered).toHaveLength(1);
    // The old conversation is still shown above it.
    expect(await page.locator('.msg.assistant', { hasText: 'Thank you for your rating!' }).count()).toBe(1);
  });
});
