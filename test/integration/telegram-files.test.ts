import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/files/store.ts';
import * as doc from '../fixtures/telegram/updates.ts';
import { pdfBytes } from '../helpers/files.ts';
import { REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import { settled } from '../helpers/settled.ts';
import { botApiError, type TelegramBotApi } from '../helpers/telegram-bot-api.ts';
import { postTelegramUpdate, startTelegramHub, stopTelegramHub } from '../helpers/telegram-hub.ts';
import { until } from '../helpers/until.ts';

const TOKEN = '7100000002:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDfiles';
const SECRET = 'hub-secret_files_0123456789';
const MEDIA = path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media');
const KETTLE = readFileSync(path.join(MEDIA, 'kettle.png'));
const INVOICE = readFileSync(path.join(MEDIA, 'invoice.pdf'));
const LONG_VALUE =
  'order kettle K-200 in brushed steel, 1.7 litres, for delivery to the Funchal shop on Friday';
const MB = 1024 * 1024;

/** Files and inline keyboards over Telegram, against the local Bot API stand-in (getFile, multipart uploads). */
describe('Telegram: files and inline keyboards', () => {
  let api: TelegramBotApi;
  let running: RunningHub;
  let serial = 0;
  let updates = 0;

  beforeAll(async () => {
    ({ api, running } = await startTelegramHub(
      { token: TOKEN, secret: SECRET, bot: 'gallery' },
      // The attachment retry's waits, short for the test (ATTACHMENT_RETRY_DELAYS_MS).
      { configDir: path.join(REPO_ROOT, 'test/fixtures/files'), attachmentRetryDelaysMs: [10, 20, 30] },
      { logger: (await import('pino')).default({ level: 'warn' }) as never },
    ));
  });
  afterAll(() => stopTelegramHub({ api, running }));

  const person = () => 700_000 + ++serial * 1000;
  const deliver = (update: unknown) => postTelegramUpdate(running.url, update, SECRET);
  const say = (chat: number, text: string) =>
    deliver(doc.variant(doc.textMessage, { updateId: chat + ++updates, userId: chat, text }));
  /** A documented update carrying a file, its file_id hosted by the stand-in with `bytes`. */
  const send = (
    chat: number,
    template: doc.Json,
    kind: 'document' | 'voice' | 'photo',
    bytes: Buffer,
    name?: string,
  ) => {
    const update = doc.variant(template, { updateId: chat + ++updates, userId: chat });
    const fileId = `F${chat}x${updates}`;
    if (kind === 'photo') {
      update.message.photo.at(-1).file_id = fileId;
      api.hostFile(fileId, bytes, `photos/file_${updates}.jpg`);
    } else {
      update.message[kind].file_id = fileId;
      update.message[kind].file_size = bytes.length;
      if (name) update.message[kind].file_name = name;
      api.hostFile(fileId, bytes, `${kind}s/file_${updates}`);
    }
    return deliver(update);
  };
  const texts = (chat: number) => api.sentTo(chat).map((c) => c.body.text as string);
  const filesTo = (chat: number) =>
    api.calls.filter(
      (c) =>
        (c.method === 'sendPhoto' || c.method === 'sendDocument') && String(c.body.chat_id) === String(chat),
    );
  const query = async <T>(sql: string, params: unknown[] = []) =>
    (await running.hub.db.query(sql, params)).rows as T[];

  it('a photo, a document and a voice note come in with getFile and the file path, into the store', async () => {
    const chat = person();
    const photo = Buffer.concat([KETTLE, Buffer.from(String(chat))]);
    expect((await send(chat, doc.photoMessage, 'photo', photo)).status).toBe(200);
    await until(
      () => texts(chat),
      (t) => t.some((x) => x.startsWith('Got ')),
    );
    expect(texts(chat)).toContain(`Got file_${updates}.jpg (image/png, ${photo.length} bytes)`);
    // The largest size of the photo is the one fetched.
    expect(api.calls.filter((c) => c.method === 'getFile').map((c) => c.body.file_id)).toContain(
      `F${chat}x${updates}`,
    );

    const pdf = pdfBytes(300_000, String(chat));
    await send(chat, doc.documentMessage, 'document', pdf, 'Testfile.pdf');
    await until(
      () => texts(chat),
      (t) => t.includes(`Got Testfile.pdf (application/pdf, ${pdf.length} bytes)`),
    );
    // An Ogg page whose first packet is an Opus header: a voice note as Telegram records them.
    const ogg = Buffer.concat([
      Buffer.from('OggS\0\x02', 'latin1'),
      Buffer.alloc(22),
      Buffer.from('OpusHead\x01\x01', 'latin1'),
      Buffer.alloc(200, 1),
    ]);
    await send(chat, doc.voiceMessage, 'voice', ogg);
    await until(
      () => texts(chat),
      (t) => t.some((x) => x.includes('(audio/ogg')),
    );
    const [row] = await query<{ id: string; session_id: string | null }>(
      'SELECT id, session_id FROM files WHERE name = $1 AND size = $2',
      ['Testfile.pdf', pdf.length],
    );
    expect(row!.session_id).not.toBeNull();
    const files = new FileStore(running.hub.db);
    expect((await files.bytes((await files.get(row!.id))!)).equals(pdf)).toBe(true);
  });

  it('an 11 MB document is refused with a message the person reads, and nothing is kept', async () => {
    const chat = person();
    const before = await query<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks');
    await send(chat, doc.documentMessage, 'document', pdfBytes(11 * MB), 'scan.pdf');
    await until(
      () => texts(chat),
      (t) => t.some((x) => x.includes('larger than 10 MB')),
    );
    expect(texts(chat)).toContain('"scan.pdf" is larger than 10 MB, the largest file this chat accepts');
    expect(await query<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks')).toEqual(before);

    // A file Telegram announces as larger is refused unread: getFile (which stops at 20 MB) is never asked.
    const huge = doc.variant(doc.documentMessage, { updateId: chat + ++updates, userId: chat });
    Object.assign(huge.message.document, {
      file_id: `F${chat}huge`,
      file_name: 'film.pdf',
      file_size: 30 * MB,
    });
    await deliver(huge);
    await until(
      () => texts(chat),
      (t) => t.includes('"film.pdf" is larger than 10 MB, the largest file this chat accepts'),
    );
    expect(api.calls.filter((c) => c.method === 'getFile' && c.body.file_id === `F${chat}huge`)).toEqual([]);
  });

  it('SHOW IMAGE goes with sendPhoto and SEND FILE with sendDocument, multipart, the text as caption', async () => {
    const chat = person();
    await say(chat, 'image');
    await say(chat, 'pdf');
    await until(
      () => filesTo(chat),
      (c) => c.length === 2,
    );
    const [photo, document] = filesTo(chat);
    expect(photo!.method).toBe('sendPhoto');
    expect(photo!.body.caption).toBe('Here is the kettle.');
    expect(document!.method).toBe('sendDocument');
    expect(document!.body.caption).toBe('Your invoice.');
    const up = api.uploads.filter((u) => u.chatId === String(chat));
    expect(up.map((u) => [u.method, u.field, u.name])).toEqual([
      ['sendPhoto', 'photo', 'kettle.png'],
      ['sendDocument', 'document', 'invoice.pdf'],
    ]);
    expect(up[0]!.bytes.equals(KETTLE)).toBe(true);
    expect(up[1]!.bytes.equals(INVOICE)).toBe(true);
    // The caption is not sent again as a message of its own.
    expect(texts(chat)).not.toContain('Here is the kettle.');
  });

  it('a card is a photo with an inline keyboard; a press (callback_query) is answered and comes back as the value', async () => {
    const chat = person();
    await say(chat, 'card');
    await until(
      () => filesTo(chat),
      (c) => c.length === 1,
    );
    const [card] = filesTo(chat);
    expect(card!.method).toBe('sendPhoto');
    expect(card!.body.caption).toBe('Kettle K-200\n\n1.7 litres, boils in 3 minutes.');
    expect(card!.body.reply_markup).toEqual({
      inline_keyboard: [
        [{ text: 'Buy it', callback_data: 'buy k200' }],
        [{ text: 'Manual', url: 'https://example.com/k200' }],
      ],
    });
    expect(api.uploads.find((u) => u.chatId === String(chat))!.bytes.equals(KETTLE)).toBe(true);
    const pressed = doc.variant(doc.callbackQueryInChat, {
      updateId: chat + ++updates,
      userId: chat,
      text: 'buy k200',
    });
    expect((await deliver(pressed)).status).toBe(200);
    await until(
      () => texts(chat),
      (t) => t.includes('You said: buy k200'),
    );
    expect(
      api.calls.filter((c) => c.method === 'answerCallbackQuery').map((c) => c.body.callback_query_id),
    ).toContain(pressed.callback_query.id);
  });

  it('a carousel is one message per card; a value over 64 bytes goes as a stored key and comes back whole', async () => {
    const chat = person();
    await say(chat, 'carousel');
    await until(
      () => api.sentTo(chat),
      (c) => c.filter((x) => x.body.reply_markup?.inline_keyboard).length === 2,
    );
    const cards = api.sentTo(chat).filter((x) => x.body.reply_markup?.inline_keyboard);
    expect(cards.map((c) => [c.body.text, c.body.reply_markup.inline_keyboard])).toEqual([
      ['K-200\n\nThe classic.', [[{ text: 'Choose K-200', callback_data: 'pick k200' }]]],
      ['K-300\n\nThe quiet one.', [[{ text: 'Choose K-300', callback_data: 'pick k300' }]]],
    ]);

    await say(chat, 'long card');
    await until(
      () => api.sentTo(chat),
      (c) => c.some((x) => x.body.text === 'Order'),
    );
    const long = api.sentTo(chat).find((x) => x.body.text === 'Order')!;
    const data = long.body.reply_markup.inline_keyboard[0][0].callback_data as string;
    expect(Buffer.byteLength(data)).toBeLessThanOrEqual(64);
    expect(data).toMatch(/^sb:/);
    await deliver(
      doc.variant(doc.callbackQueryInChat, { updateId: chat + ++updates, userId: chat, text: data }),
    );
    await until(
      () => texts(chat),
      (t) => t.includes(`You said: ${LONG_VALUE}`),
    );
  });

  const getFiles = (fileId: string) =>
    api.calls.filter((c) => c.method === 'getFile' && c.body.file_id === fileId).length;
  const unavailable = (name: string) =>
    `"${name}" could not be fetched from the chat service; please send it again`;

  it('getFile failing for now (502, then 429) is tried again after the attachment delays; then the file arrives', async () => {
    const chat = person();
    const pdf = pdfBytes(20_000, `flaky-${chat}`);
    const fileId = `F${chat}x${updates + 1}`;
    api.script((c) => c.method === 'getFile' && c.body.file_id === fileId, botApiError(502, 'Bad Gateway'));
    api.script(
      (c) => c.method === 'getFile' && c.body.file_id === fileId,
      botApiError(429, 'Too Many Requests: retry after 1'),
    );
    await send(chat, doc.documentMessage, 'document', pdf, 'flaky.pdf');
    await until(
      () => texts(chat),
      (t) => t.includes(`Got flaky.pdf (application/pdf, ${pdf.length} bytes)`),
    );
    expect(getFiles(fileId)).toBe(3);
    expect(texts(chat)).not.toContain(unavailable('flaky.pdf'));
  });

  it('getFile failing every time (502): tried 1 + ATTACHMENT_RETRY_ATTEMPTS times, then the person is told', async () => {
    const chat = person();
    const fileId = `F${chat}x${updates + 1}`;
    const tries = 1 + running.hub.config.attachmentRetryAttempts;
    for (let i = 0; i < tries; i++)
      api.script((c) => c.method === 'getFile' && c.body.file_id === fileId, botApiError(502, 'Bad Gateway'));
    await send(chat, doc.documentMessage, 'document', pdfBytes(20_000, `down-${chat}`), 'down.pdf');
    await until(
      () => texts(chat),
      (t) => t.includes(unavailable('down.pdf')),
    );
    await settled(running.hub);
    expect(getFiles(fileId)).toBe(tries);
    expect(texts(chat).filter((t) => t === unavailable('down.pdf'))).toHaveLength(1);
  });

  it('a file id Telegram does not know (400) is told at once, with no retry', async () => {
    const chat = person();
    const update = doc.variant(doc.documentMessage, { updateId: chat + ++updates, userId: chat });
    const fileId = `F${chat}x${updates}-unknown`;
    update.message.document.file_id = fileId;
    update.message.document.file_name = 'gone.pdf';
    update.message.document.file_size = 1000;
    expect((await deliver(update)).status).toBe(200);
    await until(
      () => texts(chat),
      (t) => t.includes(unavailable('gone.pdf')),
    );
    await settled(running.hub);
    expect(getFiles(fileId)).toBe(1);
  });
});
