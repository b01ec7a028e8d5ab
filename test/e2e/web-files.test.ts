import { mkdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, type TestBrowser } from '../helpers/browser.ts';
import { EXE_BYTES, pdfBytes } from '../helpers/files.ts';
import { REPO_ROOT } from '../helpers/hub.ts';
import { startWebHub, type WebHub } from '../helpers/web-hub.ts';

/** Set to a folder to write README's screenshot of a card while the test runs. */
const SCREENSHOTS = process.env.SCREENSHOTS_DIR;
const MB = 1024 * 1024;

/** Files and cards in the widget, in Chromium: on the hub's own page (cookie) and embedded on another site (token). */
describe('files and cards in the web widget (Chromium)', () => {
  let running: WebHub;
  let browser: TestBrowser;
  let dir: string;
  let site: http.Server;
  let siteUrl: string;

  beforeAll(async () => {
    running = await startWebHub({ configDir: path.join(REPO_ROOT, 'test/fixtures/files') });
    browser = await launchChromium();
    dir = path.join(os.tmpdir(), `sb-web-files-${process.pid}`);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'invoice-2026.pdf'), pdfBytes(9 * MB, 'widget'));
    await writeFile(path.join(dir, 'huge.pdf'), pdfBytes(11 * MB));
    await writeFile(path.join(dir, 'kitten.png'), EXE_BYTES);
    site = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><title>Shop</title><h1>Kettles</h1>
        <script src="${running.url}/widget.js" data-bot="gallery" data-open></script>`);
    });
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    siteUrl = `http://localhost:${(site.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    site?.closeAllConnections();
    await new Promise((resolve) => site?.close(resolve));
    await browser?.close();
    await running?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const exact = (text: string) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  const replyShown = (p: Page, text: string) =>
    p.locator('.msg.assistant', { hasText: exact(text) }).waitFor({ timeout: 15_000 });
  const online = (p: Page) => p.locator('.status[data-state="online"]').waitFor({ timeout: 15_000 });
  const send = async (p: Page, text: string) => {
    await p.locator('textarea').fill(text);
    await p.locator('textarea').press('Enter');
  };

  it('attaches a 9 MB PDF: a chip while it uploads, then the bot answers with its name and size', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${running.url}/gallery`);
    await online(page);
    await replyShown(page, 'Send me a file.');
    // The attach button is an icon button with a name; the input behind it takes the file.
    expect(await page.locator('button.attach').getAttribute('aria-label')).toBe('Attach a file');
    await page.locator('input[type=file]').setInputFiles(path.join(dir, 'invoice-2026.pdf'));
    const chip = page.locator('.chips .chip', { hasText: 'invoice-2026.pdf' });
    await chip.waitFor();
    await page.locator('.chips .chip.ready').waitFor({ timeout: 30_000 });
    expect(await chip.locator('.size').textContent()).toBe('9 MB');
    await page.locator('button.send').click();
    await replyShown(page, `Got invoice-2026.pdf (application/pdf, ${9 * MB} bytes)`);
    // The person's own message shows the file as a link to it.
    const sent = page.locator('.msg.user[data-seq] a.file', { hasText: 'invoice-2026.pdf' });
    await sent.waitFor();
    const href = await sent.getAttribute('href');
    const download = await page.evaluate(async (url) => {
      const res = await fetch(url!);
      return {
        status: res.status,
        size: (await res.arrayBuffer()).byteLength,
        disposition: res.headers.get('content-disposition'),
      };
    }, href);
    expect(download).toEqual({
      status: 200,
      size: 9 * MB,
      disposition: expect.stringMatching(/^attachment;/),
    });
    expect(await page.locator('.chips .chip').count()).toBe(0);
    await page.close();
  });

  it('refuses 11 MB and a program called .png with the hub’s message on the chip, and sends nothing', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${running.url}/gallery`);
    await online(page);
    await page
      .locator('input[type=file]')
      .setInputFiles([path.join(dir, 'huge.pdf'), path.join(dir, 'kitten.png')]);
    await page.locator('.chip.failed', { hasText: 'larger than 10 MB' }).waitFor({ timeout: 30_000 });
    await page
      .locator('.chip.failed', { hasText: 'kitten.png' })
      .filter({ hasText: 'application/x-msdownload, which this chat does not accept' })
      .waitFor();
    await page.locator('.chip.failed .remove').first().click();
    expect(await page.locator('.chip.failed').count()).toBe(1);
    await page.close();
  });

  it('shows a bot image inline and opens it in a lightbox; a PDF as a file chip', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${running.url}/gallery`);
    await online(page);
    await send(page, 'image');
    const img = page.locator('.msg.assistant button.image img');
    await img.waitFor();
    await page.waitForFunction(
      () => {
        const host = document.querySelector('[data-switchboard]')?.shadowRoot;
        const el = host?.querySelector<HTMLImageElement>('.msg.assistant button.image img');
        return !!el && el.complete && el.naturalWidth > 0;
      },
      undefined,
      { timeout: 15_000 },
    );
    expect(await page.locator('.msg.assistant', { hasText: 'Here is the kettle.' }).count()).toBe(1);
    await page.locator('.msg.assistant button.image').click();
    const lightbox = page.locator('.lightbox');
    await lightbox.waitFor({ state: 'visible' });
    expect(await lightbox.locator('img').getAttribute('alt')).toBe('kettle.png');
    await page.keyboard.press('Escape');
    await lightbox.waitFor({ state: 'hidden' });

    await send(page, 'pdf');
    await page.locator('.msg.assistant a.file', { hasText: 'invoice.pdf' }).waitFor();
    await page.close();
  });

  it('shows a card, and a press on its button comes back as the button’s value', async () => {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 480, height: 720 });
    await page.goto(`${running.url}/gallery`);
    await online(page);
    // A conversation of its own, for README's picture.
    await page.locator('button.new').click();
    await page.locator('.msg.assistant', { hasText: 'Send me a file.' }).waitFor();
    await send(page, 'card');
    const card = page.locator('.msg.assistant .card', { hasText: 'Kettle K-200' });
    await card.waitFor();
    expect(await card.locator('h3').textContent()).toBe('Kettle K-200');
    expect(await card.locator('p').textContent()).toBe('1.7 litres, boils in 3 minutes.');
    expect(await card.locator('a.button').getAttribute('href')).toBe('https://example.com/k200');
    expect(await card.locator('a.button').getAttribute('rel')).toBe('noopener');
    // The numbered text is for channels without cards: the widget shows the card alone.
    expect(await page.locator('.msg.assistant .text', { hasText: '1. Buy it' }).count()).toBe(0);
    await page.waitForFunction(() => {
      const host = document.querySelector('[data-switchboard]')?.shadowRoot;
      const el = host?.querySelector<HTMLImageElement>('.card img');
      return !!el && el.complete && el.naturalWidth > 0;
    });
    if (SCREENSHOTS) {
      await page.locator('.log').evaluate((el) => {
        el.style.scrollBehavior = 'auto';
        el.scrollTop = el.scrollHeight;
      });
      await page.screenshot({ path: path.join(SCREENSHOTS, 'widget-card.png') });
    }
    await card.locator('button.button', { hasText: 'Buy it' }).click();
    await page.locator('.msg.user[data-seq]', { hasText: exact('buy k200') }).waitFor();
    await replyShown(page, 'You said: buy k200');

    await send(page, 'carousel');
    const carousel = page.locator('.msg.assistant .carousel');
    await carousel.waitFor();
    expect(await carousel.locator('.card h3').allTextContents()).toEqual(['K-200', 'K-300']);
    await carousel.locator('button', { hasText: 'Choose K-300' }).click();
    await replyShown(page, 'You said: pick k300');
    await page.close();
  });

  it('uploads with the token from a page of another site (CORS), and shows the image there', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${siteUrl}/`);
    await online(page);
    await replyShown(page, 'Send me a file.');
    await page.locator('input[type=file]').setInputFiles({
      name: 'photo.png',
      mimeType: 'image/png',
      buffer: Buffer.from(
        'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
        'base64',
      ),
    });
    await page.locator('.chips .chip.ready').waitFor({ timeout: 15_000 });
    await page.locator('textarea').fill('look');
    await page.locator('button.send').click();
    await replyShown(page, 'Got photo.png (image/png, 70 bytes)');
    // The person's own photo is shown inline, from the hub's origin.
    const src = await page.locator('.msg.user[data-seq] button.image img').getAttribute('src');
    expect(src?.startsWith(`${running.url}/api/files/`)).toBe(true);
    await page.close();
  });
});
