import fs from 'node:fs/promises';
import { type BrowserContext, chromium } from 'playwright-core';
import { tempDir } from './database.ts';

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

/** A headless chromium with a fresh profile of its own (tabs of it share localStorage, like a real browser). */
export async function launchChromium(): Promise<TestBrowser> {
  const profile = await tempDir('sbt-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1024, height: 768 },
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      await fs.rm(profile, { recursive: true, force: true });
    },
  };
}
