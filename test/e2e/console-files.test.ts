import fs from 'node:fs/promises';
import path from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { launchChromium, signInToConsole, type TestBrowser } from '../helpers/browser.ts';
import { pdfBytes } from '../helpers/files.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const CONFIG_DIR = path.join(REPO_ROOT, 'test/fixtures/console');
const ADMIN_TOKEN = 'console-files-admin-token-0123456789abcdef';
const ANA = { name: 'Ana Reyes', email: 'ana@files.test', password: 'correct horse battery staple' };
const OTTO = { name: 'Otto Lind', email: 'otto@files.test', password: 'another horse battery staple' };
/** Set to a folder to write README's screenshot of a conversation with files while the test runs. */
const SCREENSHOTS = process.env.SCREENSHOTS_DIR;

/** A real PNG of `width`×`height` (a gradient): enough for Chromium to decode and size it. */
function png(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'latin1'), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB
  const rows: number[] = [];
  for (let y = 0; y < height; y++) {
    rows.push(0);
    for (let x = 0; x < width; x++) rows.push((x * 255) / width, (y * 255) / height, 160);
  }
  return Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.from(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Uploads a file as the person (`POST /api/session/files`, the API channel's upload). */
async function upload(url: string, token: string, data: Buffer, name: string) {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(data)]), name);
  const res = await fetch(`${url}/api/session/files`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: form,
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { file_id: string }).file_id;
}

/** The files a person sends, in the agent console (Chromium). */
describe('files in the agent console', () => {
  let running: RunningHub;
  let browser: TestBrowser;
  let anaToken: string;
  let ottoToken: string;

  beforeAll(async () => {
    running = await startTestHub({ configDir: CONFIG_DIR, adminToken: ADMIN_TOKEN });
    ({ token: anaToken } = await createAgentVia(running.url, ADMIN_TOKEN, {
      ...ANA,
      role: 'agent',
      bots: ['default'],
      capacity: 5,
    }));
    // An agent of another bot: serves the outlet, never the kettle shop.
    ({ token: ottoToken } = await createAgentVia(running.url, ADMIN_TOKEN, {
      ...OTTO,
      role: 'agent',
      bots: ['outlet'],
      capacity: 5,
    }));
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await running?.stop();
  });

  it('shows a photo as a thumbnail and a PDF as a link that downloads it; another bot’s agent gets no link', async () => {
    const people = apiClient(running.url);
    const person = await people.createSession('default');
    expect((await people.chat(person.token, 'human')).status).toBe(200);
    const photo = png(160, 120);
    const pdf = pdfBytes(48 * 1024, 'receipt');
    const photoId = await upload(running.url, person.token, photo, 'broken-kettle.png');
    const pdfId = await upload(running.url, person.token, pdf, 'receipt.pdf');
    // A photo alone (no text), then a PDF with a few words.
    expect((await people.chat(person.token, '', { files: [photoId] })).status).toBeLessThan(300);
    expect((await people.chat(person.token, 'Here is the receipt', { files: [pdfId] })).status).toBeLessThan(
      300,
    );

    const ana = agentClient(running.url, { token: anaToken });
    expect((await ana.call('PUT', '/api/agent/status', { body: { status: 'available' } })).status).toBe(200);
    const page = await browser.context.newPage();
    await signInToConsole(page, running.url, ANA);
    await page.getByRole('tab', { name: /Waiting/ }).waitFor({ timeout: 20_000 });
    await page.goto(`${running.url}/console/conversations/${person.session_id}`);

    // The photo: a thumbnail, loaded, that opens the full picture.
    const thumbnail = page.locator('.msg-user img.thumbnail[alt="broken-kettle.png"]');
    await thumbnail.waitFor({ timeout: 20_000 });
    await page.waitForFunction(
      () => {
        const img = document.querySelector<HTMLImageElement>('img.thumbnail');
        return img?.complete && img.naturalWidth > 0;
      },
      undefined,
      { timeout: 20_000 },
    );
    expect(await thumbnail.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(160);
    const opens = await page.locator('.msg-user .file-image a').getAttribute('href');
    expect(opens).toBe(await thumbnail.getAttribute('src'));
    // The PDF: a link with its name and size, under the text it came with.
    const row = page.locator('.msg-user', { hasText: 'Here is the receipt' });
    const link = row.locator('a.file-link', { hasText: 'receipt.pdf' });
    await link.waitFor({ timeout: 20_000 });
    expect(await link.locator('.file-size').textContent()).toBe('48 KB');
    // Clicking the link downloads the file itself.
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const saved = await download.path();
    expect(Buffer.compare(await fs.readFile(saved), pdf)).toBe(0);
    expect(download.suggestedFilename()).toBe('receipt.pdf');
    if (SCREENSHOTS) {
      await fs.mkdir(SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: path.join(SCREENSHOTS, 'console-files.png') });
    }
    await page.close();

    // The agent API gives the links; an agent of another bot gets neither the conversation nor a link.
    const read = await ana.call('GET', `/api/agent/conversations/${person.session_id}`);
    expect(read.status).toBe(200);
    const files = read.json.messages.flatMap(
      (m: { attachments?: { name: string; url?: string }[] }) => m.attachments ?? [],
    );
    expect(files.map((f: { name: string }) => f.name)).toEqual(['broken-kettle.png', 'receipt.pdf']);
    const otto = agentClient(running.url, { token: ottoToken });
    const refused = await otto.call('GET', `/api/agent/conversations/${person.session_id}`);
    expect([403, 404]).toContain(refused.status);
    expect(refused.text).not.toContain('/api/files/');
    // The file itself, without a signed link: nothing for an agent's token.
    const direct = await fetch(`${running.url}/api/files/${pdfId}`, {
      headers: { authorization: `Bearer ${ottoToken}` },
    });
    expect([401, 403, 404]).toContain(direct.status);
  });

  it('shows a file the hub did not keep as what happened, with no link', async () => {
    const phone = `+4917000${Date.now() % 100_000}`;
    // What the WhatsApp adapter hands in for a document the platform says is 50 MB (over the
    // bot's 10 MB): the ingress refuses it unread, the message goes on with its text.
    expect(
      (
        await running.hub.ingress.accept({
          id: `whatsapp:wamid.files-${phone}`,
          channel: 'whatsapp',
          bot: 'default',
          from: { id: phone, name: 'Tom Berg' },
          text: 'human',
          attachments: [
            { type: 'application/pdf', name: 'scan.pdf', size: 50 * 1024 * 1024, ref: 'media-1' },
          ],
          receivedAt: new Date().toISOString(),
        })
      ).status,
    ).toBe('accepted');
    const ana = agentClient(running.url, { token: anaToken });
    const waiting = (await until(
      async () => {
        const list = await ana.call('GET', '/api/agent/conversations?state=waiting');
        return (list.json.conversations as { session_id: string; person: { native_id: string } }[]).find(
          (c) => c.person.native_id === phone,
        );
      },
      (found) => found !== undefined,
    ))!;
    const page = await browser.context.newPage();
    await page.goto(`${running.url}/console/conversations/${waiting.session_id}`);
    const refused = page.locator('.msg-user .file-refused', { hasText: 'scan.pdf' });
    await refused.waitFor({ timeout: 20_000 });
    expect(await refused.locator('.file-refusal').textContent()).toBe('too large, not kept');
    expect(await refused.locator('.file-message').textContent()).toContain('larger than 10 MB');
    expect(await refused.locator('a').count()).toBe(0);
    await page.close();
  });

  it('shows the bot’s card with its picture and buttons, not its numbered text', async () => {
    const people = apiClient(running.url);
    const person = await people.createSession('default');
    expect((await people.chat(person.token, 'card')).status).toBe(200);
    expect((await people.chat(person.token, 'human')).status).toBe(200);
    const page = await browser.context.newPage();
    await page.goto(`${running.url}/console/conversations/${person.session_id}`);
    const card = page.locator('.msg-assistant .card', { hasText: 'Kettle K-200' });
    await card.waitFor({ timeout: 20_000 });
    expect(await card.locator('.card-text').textContent()).toBe('1.7 litres.');
    await page.waitForFunction(
      () => {
        const img = document.querySelector<HTMLImageElement>('img.card-image');
        return img?.complete && img.naturalWidth > 0;
      },
      undefined,
      { timeout: 20_000 },
    );
    // A value button shows (the person presses it, not the agent); a link button is a link.
    expect(await card.locator('.card-button').textContent()).toBe('Buy it');
    expect(await card.getByRole('link', { name: 'Manual' }).getAttribute('href')).toBe(
      'https://example.com/k200',
    );
    // The numbered text the card stands for on text channels is not shown beside it.
    expect(await page.locator('.msg-assistant', { has: card }).locator('p.text').count()).toBe(0);
    await page.close();
  });
});
