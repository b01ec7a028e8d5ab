import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { toApiMessage } from '../../adapters/api/routes.ts';
import type { Schema } from '../../src/client/index.ts';
import { FileStore } from '../../src/files/store.ts';
import { EXE_BYTES, PNG_1X1, pdfBytes } from '../helpers/files.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';

const MB = 1024 * 1024;
const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));
const ADMIN_TOKEN = 'files-admin-token-of-32-characters!!';

/** A message as the API answers it (a reply of `POST /api/chat`, a row of the history). */
type ApiMessage = ReturnType<typeof toApiMessage>;
/** `POST /api/session/files`'s 201: the stored file. */
type Uploaded = { file_id: string; name: string; type: string; size: number };

/** Uploads a file; `T` is the answer the caller expects (the stored file, or the API's error). */
async function upload<T = Uploaded>(
  url: string,
  token: string | undefined,
  data: Buffer,
  name: string,
  type = 'application/octet-stream',
) {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(data)], { type }), name);
  const res = await fetch(`${url}/api/session/files`, {
    method: 'POST',
    headers: token ? { authorization: `Bearer ${token}` } : {},
    body: form,
  });
  return { status: res.status, json: (await res.json()) as T, headers: res.headers };
}

/**
 * Uploads a file as a stream of unknown length (chunked, no Content-Length), as a client that
 * does not say the size first: the hub finds a limit only while it reads.
 */
async function uploadStreamed<T = Uploaded>(url: string, token: string, data: Buffer, name: string) {
  const boundary = `b-${randomUUID()}`;
  const parts = [
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
    data,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ];
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = parts.shift();
      if (next) controller.enqueue(new Uint8Array(next));
      else controller.close();
    },
  });
  const res = await fetch(`${url}/api/session/files`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': `multipart/form-data; boundary=${boundary}`,
    },
    body,
    duplex: 'half',
  } as RequestInit);
  return { status: res.status, json: (await res.json()) as T, headers: res.headers };
}

describe('files through the REST API (PostgreSQL)', () => {
  let running: RunningHub;
  let api: ReturnType<typeof apiClient>;
  const db = () => running.hub.db;
  const usage = async () =>
    (
      await db().query<{ blobs: number; chunks: number; files: number }>(
        `SELECT (SELECT count(*)::int FROM file_blobs) AS blobs, (SELECT count(*)::int FROM file_chunks) AS chunks,
                (SELECT count(*)::int FROM files) AS files`,
      )
    ).rows[0]!;

  beforeAll(async () => {
    running = await startTestHub({
      configDir: path.join(REPO_ROOT, 'test/fixtures/files'),
      adminToken: ADMIN_TOKEN,
    });
    api = apiClient(running.url);
  });
  afterAll(async () => running?.stop());

  /** The replies to a message, once its turn is done. */
  async function say(token: string, text: string, files?: string[]) {
    const res = await api.chat(token, text, files ? { files } : {});
    expect(res.status).toBe(200);
    return res.json.replies as ApiMessage[];
  }

  it('takes a 9 MB PDF, gives the bot its name, type and size, and serves it back to its session only', async () => {
    const { token } = await api.createSession('gallery');
    const data = pdfBytes(9 * MB, 'nine');
    const up = await upload(running.url, token, data, 'invoice-2026.pdf', 'image/png');
    expect(up.status).toBe(201);
    // The type is sniffed from the bytes, not taken from the sender.
    expect(up.json).toEqual({
      file_id: expect.any(String),
      name: 'invoice-2026.pdf',
      type: 'application/pdf',
      size: 9 * MB,
    });
    const replies = await say(token, '', [up.json.file_id]);
    expect(replies.map((r) => r.text)).toEqual([`Got invoice-2026.pdf (application/pdf, ${9 * MB} bytes)`]);

    const own = await fetch(`${running.url}/api/files/${up.json.file_id}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(own.status).toBe(200);
    expect(own.headers.get('content-type')).toBe('application/pdf');
    expect(own.headers.get('content-disposition')).toBe(
      `attachment; filename="invoice-2026.pdf"; filename*=UTF-8''invoice-2026.pdf`,
    );
    expect(own.headers.get('x-content-type-options')).toBe('nosniff');
    expect(Buffer.from(await own.arrayBuffer()).equals(data)).toBe(true);

    const other = await api.createSession('gallery');
    expect(
      (
        await fetch(`${running.url}/api/files/${up.json.file_id}`, {
          headers: { authorization: `Bearer ${other.token}` },
        })
      ).status,
    ).toBe(404);
    expect((await fetch(`${running.url}/api/files/${up.json.file_id}`)).status).toBe(401);
    // Nor can another session send it as its own.
    const stolen = await api.chat(other.token, 'mine', { files: [up.json.file_id] });
    expect(stolen.status).toBe(400);
    expect(stolen.json.error.code).toBe('unknown_file');
    // The history lists it, with a signed link.
    const history = await api.history(token);
    const row = history.json.messages.find((m: ApiMessage) => m.role === 'user');
    expect(row.attachments).toEqual([
      {
        type: 'application/pdf',
        name: 'invoice-2026.pdf',
        size: 9 * MB,
        url: expect.stringMatching(/^\/api\/files\/[0-9a-f-]{36}\?exp=\d+&sig=/),
        file_id: up.json.file_id,
      },
    ]);
    expect((await fetch(`${running.url}${row.attachments[0].url}`)).status).toBe(200);
  });

  it('refuses 11 MB with a clear message and keeps nothing', async () => {
    const { token } = await api.createSession('gallery');
    const before = await usage();
    const res = await upload<Schema<'Error'>>(running.url, token, pdfBytes(11 * MB), 'big.pdf');
    expect(res.status).toBe(413);
    expect(res.json.error).toEqual({
      code: 'file_too_large',
      message: '"the file" is larger than 10 MB, the largest file this chat accepts',
    });
    expect(await usage()).toEqual(before);
  });

  it('refuses a program renamed .png, by its bytes', async () => {
    const { token } = await api.createSession('gallery');
    const before = await usage();
    const res = await upload<Schema<'Error'>>(running.url, token, EXE_BYTES, 'kitten.png', 'image/png');
    expect(res.status).toBe(415);
    expect(res.json.error.code).toBe('file_type_refused');
    expect(res.json.error.message).toBe(
      '"kitten.png" is a file of type application/x-msdownload, which this chat does not accept',
    );
    expect(await usage()).toEqual(before);
    expect((await upload(running.url, undefined, PNG_1X1, 'a.png')).status).toBe(401);
  });

  it('stores the same photo once however often it is sent', async () => {
    const { token } = await api.createSession('gallery');
    const photo = Buffer.concat([PNG_1X1, Buffer.from(randomUUID())]);
    const a = await upload(running.url, token, photo, 'kettle.png');
    const before = await usage();
    const b = await upload(running.url, token, photo, 'kettle-again.png');
    expect(b.json.file_id).not.toBe(a.json.file_id);
    const after = await usage();
    expect(after.blobs).toBe(before.blobs);
    expect(after.chunks).toBe(before.chunks);
    expect(after.files).toBe(before.files + 1);
  });

  it('sends a bot image as an inline link and a PDF as a download (TypeScript bot)', async () => {
    const { token } = await api.createSession('gallery');
    const [image] = await say(token, 'image');
    expect(image!.text).toBe('Here is the kettle.');
    expect(image!.attachments).toEqual([
      {
        type: 'image/png',
        name: 'kettle.png',
        size: KETTLE.length,
        url: expect.any(String),
        file_id: expect.any(String),
      },
    ]);
    const res = await fetch(`${running.url}${image!.attachments![0]!.url}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toBe(
      `inline; filename="kettle.png"; filename*=UTF-8''kettle.png`,
    );
    expect(Buffer.from(await res.arrayBuffer()).equals(KETTLE)).toBe(true);
    const forged = image!.attachments![0]!.url!.replace(/sig=.{4}/, 'sig=AAAA');
    expect((await fetch(`${running.url}${forged}`)).status).toBe(403);

    const [pdf] = await say(token, 'pdf');
    expect(pdf!.attachments![0]).toMatchObject({ type: 'application/pdf', name: 'invoice.pdf' });
  });

  it('authors cards and carousels (TypeScript bot)', async () => {
    const { token } = await api.createSession('gallery');
    const [card] = await say(token, 'card');
    expect(card!.cards).toEqual([
      {
        title: 'Kettle K-200',
        text: '1.7 litres, boils in 3 minutes.',
        image: { url: expect.stringMatching(/^\/api\/files\//), name: 'kettle.png' },
        buttons: [
          { title: 'Buy it', value: 'buy k200' },
          { title: 'Manual', url: 'https://example.com/k200' },
        ],
      },
    ]);
    // Channels that show only text get it as numbered text.
    expect(card!.text).toBe(
      'Kettle K-200\n1.7 litres, boils in 3 minutes.\n1. Buy it\nManual: https://example.com/k200',
    );
    const [carousel] = await say(token, 'carousel');
    expect(carousel!.cards!.map((c) => c.title)).toEqual(['K-200', 'K-300']);
    // A press comes back as a message with the button's value.
    expect((await say(token, 'buy k200')).map((r) => r.text)).toEqual(['You said: buy k200']);
  });

  it('gives scripts the files (GET SESSION "files") and lets them SHOW IMAGE, SEND FILE and TALK CARD', async () => {
    const { token } = await api.createSession('script');
    const up = await upload(running.url, token, PNG_1X1, 'broken-kettle.png');
    expect((await say(token, 'look', [up.json.file_id])).map((r) => r.text)).toEqual([
      `Got broken-kettle.png (image/png, ${PNG_1X1.length} bytes)`,
    ]);
    const [shown] = await say(token, 'dashboard');
    expect(shown!.attachments).toEqual([
      expect.objectContaining({ type: 'image/png', name: 'dashboard.png' }),
    ]);
    const [sent] = await say(token, 'invoice');
    expect(sent!.text).toBe('Your invoice');
    expect(sent!.attachments).toEqual([
      expect.objectContaining({ type: 'application/pdf', name: 'invoice.pdf' }),
    ]);
    const [card] = await say(token, 'card');
    expect(card!.cards).toEqual([
      {
        title: 'Kettle K-200',
        text: '1.7 litres.',
        image: { url: expect.any(String), name: 'dashboard.png' },
        buttons: [
          { title: 'Buy it', value: 'buy k200' },
          { title: 'Manual', url: 'https://example.com/k200' },
        ],
      },
    ]);
    expect((await say(token, 'missing')).map((r) => r.text)).toEqual(['Sorry, that went wrong.']);
  });

  it('erases a person’s files with them, and keeps bytes another message still uses', async () => {
    const ana = await api.createSession('gallery');
    const ben = await api.createSession('gallery');
    const shared = Buffer.concat([PNG_1X1, Buffer.from(`shared-${randomUUID()}`)]);
    const own = pdfBytes(300 * 1024, randomUUID());
    const a1 = await upload(running.url, ana.token, shared, 'a.png');
    const a2 = await upload(running.url, ana.token, own, 'a.pdf');
    const b1 = await upload(running.url, ben.token, shared, 'b.png');
    await say(ana.token, '', [a1.json.file_id, a2.json.file_id]);
    const user = randomUUID();
    await db().query('INSERT INTO users (id) VALUES ($1)', [user]);
    await db().query('UPDATE sessions SET user_id = $1 WHERE id = $2', [user, ana.session_id]);
    const erased = await fetch(`${running.url}/api/users/${user}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(erased.status).toBe(200);
    const left = await db().query<{ id: string }>('SELECT id FROM files WHERE id = ANY($1::uuid[])', [
      [a1.json.file_id, a2.json.file_id, b1.json.file_id],
    ]);
    expect(left.rows.map((r) => r.id)).toEqual([b1.json.file_id]);
    // Ana's PDF is gone to the last byte; the photo Ben also sent is still whole.
    const blobs = await db().query<{ sha256: string }>(
      'SELECT b.sha256 FROM file_blobs b JOIN files f ON f.sha256 = b.sha256 WHERE f.id = $1',
      [b1.json.file_id],
    );
    expect(blobs.rows).toHaveLength(1);
    const res = await fetch(`${running.url}/api/files/${b1.json.file_id}`, {
      headers: { authorization: `Bearer ${ben.token}` },
    });
    expect(Buffer.from(await res.arrayBuffer()).equals(shared)).toBe(true);
    const orphans = await db().query(
      'SELECT 1 FROM file_chunks c WHERE NOT EXISTS (SELECT 1 FROM file_blobs b WHERE b.blob_id = c.blob_id)',
    );
    expect(orphans.rows).toHaveLength(0);
  });

  it('gives a card’s picture to its session: the stale sweep keeps it, erasing the session removes it', async () => {
    // Two people get the same card; its picture is the bot's static media (kettle.png).
    const ana = await api.createSession('gallery');
    const ben = await api.createSession('gallery');
    const [anaCard] = await say(ana.token, 'card');
    const [benCard] = await say(ben.token, 'card');
    const pictureOf = async (sessionId: string) => {
      const { rows } = await db().query<{ id: string }>(
        `SELECT c.value -> 'image' ->> 'fileId' AS id FROM messages m
           CROSS JOIN LATERAL jsonb_array_elements(m.payload -> 'cards') AS c
          WHERE m.session_id = $1 AND m.payload ? 'cards'`,
        [sessionId],
      );
      expect(rows).toHaveLength(1);
      return rows[0]!.id;
    };
    const anaPicture = await pictureOf(ana.session_id);
    const benPicture = await pictureOf(ben.session_id);
    expect(anaPicture).not.toBe(benPicture);

    // The stale-file sweep, run as if a day had passed: files that no session claimed go.
    await new FileStore(db()).removeStale(new Date(Date.now() + 2 * 86_400_000));
    const owners = await db().query<{ id: string; session_id: string | null }>(
      'SELECT id, session_id FROM files WHERE id = ANY($1::uuid[]) ORDER BY id',
      [[anaPicture, benPicture]],
    );
    expect(owners.rows).toEqual(
      [
        { id: anaPicture, session_id: ana.session_id },
        { id: benPicture, session_id: ben.session_id },
      ].sort((a, b) => a.id.localeCompare(b.id)),
    );
    for (const card of [anaCard, benCard]) {
      const res = await fetch(`${running.url}${card!.cards![0]!.image!.url}`);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(KETTLE)).toBe(true);
    }

    // Erasing Ana removes her card's picture; Ben's, the same bytes, stays whole.
    const user = randomUUID();
    await db().query('INSERT INTO users (id) VALUES ($1)', [user]);
    await db().query('UPDATE sessions SET user_id = $1 WHERE id = $2', [user, ana.session_id]);
    const erased = await fetch(`${running.url}/api/users/${user}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(erased.status).toBe(200);
    const left = await db().query<{ id: string }>('SELECT id FROM files WHERE id = ANY($1::uuid[])', [
      [anaPicture, benPicture],
    ]);
    expect(left.rows.map((r) => r.id)).toEqual([benPicture]);
    const res = await fetch(`${running.url}${benCard!.cards![0]!.image!.url}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(KETTLE)).toBe(true);
  });
});

describe('upload limits of a session (UPLOADS_PER_MINUTE, UNSENT_UPLOADS_MAX_BYTES)', () => {
  const PER_MINUTE = 4;
  let running: RunningHub;
  let api: ReturnType<typeof apiClient>;
  const filesOf = async (sessionId: string) =>
    (
      await running.hub.db.query<{ id: string }>(
        'SELECT id FROM files WHERE session_id = $1 ORDER BY created_at',
        [sessionId],
      )
    ).rows.map((r) => r.id);
  const chunks = async () =>
    (await running.hub.db.query<{ n: number }>('SELECT count(*)::int AS n FROM file_chunks')).rows[0]!.n;

  beforeAll(async () => {
    running = await startTestHub({
      configDir: path.join(REPO_ROOT, 'test/fixtures/files'),
      uploadsPerMinute: PER_MINUTE,
      unsentUploadsMaxBytes: MB,
    });
    api = apiClient(running.url);
  });
  afterAll(async () => running?.stop());

  it('refuses an upload over UPLOADS_PER_MINUTE with 429 and Retry-After, stores nothing, and counts per session', async () => {
    const ana = await api.createSession('gallery');
    for (let i = 0; i < PER_MINUTE; i++)
      expect((await upload(running.url, ana.token, pdfBytes(1024, randomUUID()), `${i}.pdf`)).status).toBe(
        201,
      );
    const kept = await filesOf(ana.session_id);
    const chunksBefore = await chunks();
    const refused = await upload<Schema<'Error'>>(
      running.url,
      ana.token,
      pdfBytes(1024, randomUUID()),
      'more.pdf',
    );
    expect(refused.status).toBe(429);
    expect(refused.json.error).toEqual({
      code: 'rate_limited',
      message: `${PER_MINUTE} files were uploaded to this chat in the last minute; try again in a moment`,
    });
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60).toBe(true);
    expect(await filesOf(ana.session_id)).toEqual(kept);
    expect(await chunks()).toBe(chunksBefore);
    // Another session's uploads are its own.
    const ben = await api.createSession('gallery');
    expect((await upload(running.url, ben.token, pdfBytes(1024, randomUUID()), 'ben.pdf')).status).toBe(201);
  });

  it('refuses an upload past UNSENT_UPLOADS_MAX_BYTES with 413, and a file sent in a message no longer counts', async () => {
    const { token, session_id } = await api.createSession('gallery');
    const first = await upload(running.url, token, pdfBytes(600 * 1024, randomUUID()), 'first.pdf');
    expect(first.status).toBe(201);
    const chunksBefore = await chunks();
    const error = {
      code: 'unsent_files_too_large',
      message: "this chat's files not sent yet take 600 KB of the 1 MB allowed; send them before adding more",
    };
    // Its size said first (Content-Length): refused unread.
    const said = await upload<Schema<'Error'>>(
      running.url,
      token,
      pdfBytes(600 * 1024, randomUUID()),
      'second.pdf',
    );
    expect(said.status).toBe(413);
    expect(said.json.error).toEqual(error);
    // Its size not said: refused when the bytes pass what is left.
    const streamed = await uploadStreamed<Schema<'Error'>>(
      running.url,
      token,
      pdfBytes(600 * 1024, randomUUID()),
      'third.pdf',
    );
    expect(streamed.status).toBe(413);
    expect(streamed.json.error).toEqual(error);
    expect(await filesOf(session_id)).toEqual([first.json.file_id]);
    // The refusal can be answered while the store still writes the chunk in hand; it then removes
    // what it wrote (FileStore.put's catch): nothing of the refused file stays.
    await until(chunks, (n) => n === chunksBefore, 10_000);

    // Sent: the message carries it, and the room is back.
    const replies = await api.chat(token, '', { files: [first.json.file_id] });
    expect(replies.status).toBe(200);
    const again = await uploadStreamed(running.url, token, pdfBytes(600 * 1024, randomUUID()), 'again.pdf');
    expect(again.status).toBe(201);
    expect(await filesOf(session_id)).toEqual([first.json.file_id, again.json.file_id]);
  });

  it('answers once the one file is stored, and closes a body that goes on after it', async () => {
    const { token } = await api.createSession('gallery');
    const boundary = `b-${randomUUID()}`;
    const socket = net.connect(Number(new URL(running.url).port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let answer = '';
    socket.on('data', (d) => {
      answer += d.toString();
    });
    socket.on('error', () => undefined);
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const chunk = (data: Buffer | string) => {
      const bytes = Buffer.from(data);
      if (!socket.destroyed)
        socket.write(
          Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]),
        );
    };
    socket.write(
      `POST /api/session/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nTransfer-Encoding: chunked\r\n\r\n`,
    );
    chunk(
      Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n`),
        PNG_1X1,
        Buffer.from(
          `\r\n--${boundary}\r\nContent-Disposition: form-data; name="more"; filename="b.bin"\r\n\r\n`,
        ),
      ]),
    );
    // The second part never ends: the hub answers for the file and stops reading (a client that
    // keeps sending would otherwise be read for as long as it likes).
    let sentBytes = 0;
    const junk = Buffer.alloc(64 * 1024, 0x61);
    while (!socket.destroyed && sentBytes < 64 * MB) {
      chunk(junk);
      sentBytes += junk.length;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await closed;
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 201 Created');
    expect(sentBytes).toBeLessThan(64 * MB);
  });
});
