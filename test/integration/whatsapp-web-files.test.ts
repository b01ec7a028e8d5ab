import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { choicesKey } from '../../adapters/whatsapp/choices.ts';
import { EXE_BYTES, pdfBytes } from '../helpers/files.ts';
import { REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import { LocalWebClient, personMedia } from '../helpers/whatsapp-web-client.ts';
import { startWhatsAppWebHub } from '../helpers/whatsapp-web-hub.ts';

const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));
const INVOICE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/invoice.pdf'));
const MB = 1024 * 1024;
const ADMIN_TOKEN = 'wweb-files-admin-token-0123456789abcdef';

/**
 * Files and cards over a linked WhatsApp Web session: the adapter's production code against a
 * local client that speaks whatsapp-web.js's interface (media messages with `downloadMedia()`,
 * `sendMessage` with the library's own `MessageMedia` class and its options).
 */
describe('WhatsApp Web: files and cards', () => {
  let running: RunningHub;
  const client = new LocalWebClient(true);
  let serial = 0;

  beforeAll(async () => {
    running = await startWhatsAppWebHub(client, 'gallery', {
      configDir: path.join(REPO_ROOT, 'test/fixtures/files'),
      adminToken: ADMIN_TOKEN,
    });
  });
  afterAll(async () => {
    await running?.stop();
  });

  const chat = () => `55119${String(10_000_000 + ++serial * 7919).slice(0, 8)}@c.us`;
  const to = (chatId: string) => client.sent.filter((s) => s.chatId === chatId);
  const texts = (chatId: string) => to(chatId).flatMap((s) => (s.media ? [] : [s.text]));
  const query = async <T>(sql: string, params: unknown[] = []) =>
    (await running.hub.db.query(sql, params)).rows as T[];
  const says = (chatId: string, text: string) =>
    until(
      () => texts(chatId),
      (t) => t.includes(text),
    );

  it('a photo comes in through downloadMedia(), is sniffed and stored, and reaches the bot', async () => {
    const from = chat();
    const photo = Buffer.concat([KETTLE, Buffer.from(from)]);
    // WhatsApp says JPEG; the bytes are a PNG, and the bytes are believed.
    const id = client.receiveMedia(from, personMedia(photo, 'image/jpeg'), 'image');
    await says(from, `Got photo (image/png, ${photo.length} bytes)`);
    expect(client.downloads).toContain(id);
    const rows = await query<{ session_id: string | null; origin: string }>(
      'SELECT session_id, origin FROM files WHERE size = $1',
      [photo.length],
    );
    expect(rows).toEqual([{ session_id: expect.any(String), origin: 'person' }]);
  });

  it('a file announced over the limit is refused without downloading it; a program renamed .png by sniffing', async () => {
    const from = chat();
    const before = await query<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks');
    const big = client.receiveMedia(
      from,
      personMedia(pdfBytes(11 * MB), 'application/pdf', 'scan.pdf'),
      'document',
    );
    await says(from, '"scan.pdf" is larger than 10 MB, the largest file this chat accepts');
    expect(client.downloads).not.toContain(big);
    const exe = client.receiveMedia(from, personMedia(EXE_BYTES, 'image/png', 'kettle.png'), 'document');
    await until(
      () => texts(from),
      (t) => t.some((x) => x.startsWith('"kettle.png" is a file of type application/')),
    );
    expect(client.downloads).toContain(exe);
    expect(await query<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks')).toEqual(before);
  });

  it('SHOW IMAGE and SEND FILE go out as MessageMedia: a picture with its caption, a PDF as a document', async () => {
    const from = chat();
    client.receive({ from, body: 'image' });
    const image = await until(
      () => to(from).find((s) => s.media),
      (s) => s !== undefined,
    );
    expect(image!.media).toEqual({
      mimetype: 'image/png',
      filename: 'kettle.png',
      bytes: KETTLE,
      options: { caption: 'Here is the kettle.' },
    });
    client.receive({ from, body: 'pdf' });
    const pdf = await until(
      () => to(from).find((s) => s.media?.mimetype === 'application/pdf'),
      (s) => s !== undefined,
    );
    expect(pdf!.media).toEqual({
      mimetype: 'application/pdf',
      filename: 'invoice.pdf',
      bytes: INVOICE,
      options: { caption: 'Your invoice.', sendMediaAsDocument: true },
    });
    // Each file is one message, and its text went as the caption, not on its own (the one text is the greeting).
    expect(texts(from)).toEqual(['Send me a file.']);
  });

  it('cards are numbered text; the number typed in answer comes back as the button value', async () => {
    const from = chat();
    client.receive({ from, body: 'carousel' });
    await says(from, 'K-200\nThe classic.\n1. Choose K-200\n\nK-300\nThe quiet one.\n2. Choose K-300');
    client.receive({ from, body: '2' });
    await says(from, 'You said: pick k300');
    // The latest reply offered no choices: a number is a number again.
    client.receive({ from, body: '2' });
    await says(from, 'You said: 2');
    // A card with a picture: the picture, with the card as numbered text for its caption.
    client.receive({ from, body: 'card' });
    const card = await until(
      () => to(from).find((s) => s.media),
      (s) => s !== undefined,
    );
    expect(card!.media).toEqual({
      mimetype: 'image/png',
      filename: 'kettle.png',
      bytes: KETTLE,
      options: {
        caption: 'Kettle K-200\n1.7 litres, boils in 3 minutes.\n1. Buy it\nManual: https://example.com/k200',
      },
    });
    client.receive({ from, body: '1.' });
    await says(from, 'You said: buy k200');
  });

  it('DELETE /api/users/{id} erases the numbered choices kept for their sessions; another person keeps theirs', async () => {
    const erased = chat();
    const other = chat();
    for (const from of [erased, other]) {
      client.receive({ from, body: 'carousel' });
      await says(from, 'K-200\nThe classic.\n1. Choose K-200\n\nK-300\nThe quiet one.\n2. Choose K-300');
    }
    const sessionOf = async (from: string) =>
      (
        await query<{ native_key: string; user_id: string }>(
          "SELECT native_key, user_id FROM sessions WHERE channel = 'whatsapp' AND native_key = $1",
          [`+${from.replace('@c.us', '')}`],
        )
      )[0]!;
    const choicesOf = async (from: string) =>
      query('SELECT 1 FROM channel_values WHERE channel = $1 AND key = $2', [
        'whatsapp',
        choicesKey('gallery', (await sessionOf(from)).native_key),
      ]);
    expect(await choicesOf(erased)).toHaveLength(1);
    expect(await choicesOf(other)).toHaveLength(1);
    const { user_id: userId, native_key: nativeKey } = await sessionOf(erased);
    // Choices two days old, of a session of theirs that retention already removed: found by age.
    const stale = choicesKey('support', nativeKey);
    await query(
      `INSERT INTO channel_values (channel, key, value, updated_at) VALUES ('whatsapp', $1, '{}', now() - interval '2 days')`,
      [stale],
    );
    const res = await fetch(`${running.url}/api/users/${userId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(res.status).toBe(200);
    expect(
      await query('SELECT 1 FROM channel_values WHERE channel = $1 AND key = $2', [
        'whatsapp',
        choicesKey('gallery', nativeKey),
      ]),
    ).toEqual([]);
    expect(await query('SELECT 1 FROM channel_values WHERE key = $1', [stale])).toEqual([]);
    expect(await choicesOf(other)).toHaveLength(1);
    // The erased person's "2" is a number again (a new contact); the other's still picks.
    client.receive({ from: erased, body: '2' });
    await says(erased, 'You said: 2');
    client.receive({ from: other, body: '2' });
    await says(other, 'You said: pick k300');
  });
});
