import fs from 'node:fs/promises';
import { type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { tempDir } from './database.ts';
import { until } from './until.ts';

/** Debian's chromium (test/setup/debian-packages.txt); playwright-core never downloads a browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * A headless chromium with a fresh profile of its own (tabs of it share localStorage, like a real
 * browser); `timezoneId` (IANA) is the zone its pages see, else the machine's.
 */
export async function launchChromium(options: { timezoneId?: string } = {}): Promise<TestBrowser> {
  const profile = await tempDir('sbt-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1024, height: 768 },
    ...(options.timezoneId ? { timezoneId: options.timezoneId } : {}),
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      await fs.rm(profile, { recursive: true, force: true });
    },
  };
}

/** Opens the console at `baseUrl` and signs in as `who` through its form (not waiting for the answer). */
export async function signInToConsole(
  page: Page,
  baseUrl: string,
  who: { email: string; password: string },
): Promise<void> {
  await page.goto(`${baseUrl}/console`);
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Signs in to the console at `baseUrl` as `who` (a supervisor or admin) and opens its dashboard. */
export async function openDashboard(
  page: Page,
  baseUrl: string,
  who: { email: string; password: string },
): Promise<void> {
  await signInToConsole(page, baseUrl, who);
  await page.getByRole('link', { name: 'Dashboard' }).click();
  await page.waitForURL('**/console/dashboard');
}

/** A cell of the dashboard's queues panel: `field` (`depth`, `trend`, `stranded`, …) of `queue`'s row. */
export const queueCell = (page: Page, queue: string, field: string): Locator =>
  page.locator(`section.queues tr[data-queue="${queue}"] td[data-field="${field}"]`);

/** Waits until `loc`'s text passes `ok` (the dashboard reloads every 5 s while Live is on). */
export const untilText = (loc: Locator, ok: (text: string) => boolean, timeoutMs = 20_000) =>
  until(
    () => loc.textContent({ timeout: 1_000 }).catch(() => null),
    (t) => t !== null && ok(t),
    timeoutMs,
  );

/**
 * Counts the JSON bodies the page's scripts have read, by address, from the next load of the page
 * on: a test waits until the page has read an answer before it looks at what the page made of it
 * (what a script does with a body it has read runs before the page takes its next task, and so
 * before the count is asked for). Answers the count of reads whose address contains `part`.
 */
export async function countJsonReads(page: Page): Promise<(part: string) => Promise<number>> {
  await page.addInitScript(() => {
    // Asked twice for one page: counted once.
    if ((window as unknown as { __jsonReads?: string[] }).__jsonReads) return;
    const reads: string[] = [];
    (window as unknown as { __jsonReads: string[] }).__jsonReads = reads;
    const json = Response.prototype.json;
    Response.prototype.json = function (this: Response) {
      const read = json.call(this);
      read.then(
        () => reads.push(this.url),
        () => reads.push(this.url),
      );
      return read;
    };
  });
  return (part) =>
    page.evaluate(
      (p) =>
        (window as unknown as { __jsonReads?: string[] }).__jsonReads?.filter((u) => u.includes(p)).length ??
        0,
      part,
    );
}

/**
 * Answers to the page's requests for `url` are read from the hub at once but handed to the page
 * only at `release()`, as slow answers would come. `count()` is how many are held; `stop()` lets
 * later requests through.
 */
export async function holdAnswers(page: Page, url: RegExp) {
  const held: (() => Promise<void>)[] = [];
  await page.route(url, async (route) => {
    const response = await route.fetch();
    held.push(() => route.fulfill({ response }));
  });
  return {
    count: () => held.length,
    release: async () => {
      for (const fulfil of held.splice(0)) await fulfil();
    },
    stop: () => page.unroute(url),
  };
}
