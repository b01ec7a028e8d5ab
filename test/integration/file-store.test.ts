import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHUNK_BYTES, FileRefusedError, FileStore } from '../../src/files/store.ts';
import { DEFAULT_ALLOWED_FILE_TYPES } from '../../src/files/types.ts';
import type { Db } from '../../src/store/db.ts';
import { type Backend, openTestDb } from '../helpers/database.ts';
import { EXE_BYTES, PNG_1X1, pdfBytes } from '../helpers/files.ts';

const MB = 1024 * 1024;
const allowed = DEFAULT_ALLOWED_FILE_TYPES;

async function* pieces(data: Buffer, size = 64 * 1024) {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function newSession(db: Db): Promise<string> {
  const id = randomUUID();
  await db.query(`INSERT INTO sessions (id, bot, channel, native_key) VALUES ($1, 'default', 'web', $2)`, [
    id,
    randomUUID(),
  ]);
  return id;
}

describe.each<Backend>(['postgres', 'pglite'])('file store on %s', (backend) => {
  let db: Db;
  let cleanup: () => Promise<void>;
  let files: FileStore;
  beforeAll(async () => {
    ({ db, cleanup } = await openTestDb(backend));
    files = await new FileStore(db).init();
  });
  afterAll(async () => cleanup?.());

  it('streams a file in and out in chunks, stores one copy of the same content, and frees it with the last reference', async () => {
    const session = await newSession(db);
    const data = pdfBytes(CHUNK_BYTES * 2 + 1234, 'one');
    const first = await files.put(pieces(data), {
      name: 'invoice.pdf',
      bot: 'default',
      sessionId: session,
      maxBytes: 10 * MB,
      allowedTypes: allowed,
    });
    expect(first).toMatchObject({
      name: 'invoice.pdf',
      type: 'application/pdf',
      size: data.length,
      stored: true,
    });
    const second = await files.put(pieces(data, 1000), {
      name: 'copy.pdf',
      bot: 'default',
      maxBytes: 10 * MB,
      allowedTypes: allowed,
    });
    expect(second.stored).toBe(false);
    expect(second.sha256).toBe(first.sha256);
    expect(await files.usage()).toMatchObject({ blobs: 1, chunks: 3, files: 2 });
    expect((await files.bytes(second)).equals(data)).toBe(true);
    // The first one's session goes (retention, erasure): the content stays for the other message.
    await db.query('DELETE FROM sessions WHERE id = $1', [session]);
    expect(await files.usage()).toMatchObject({ blobs: 1, chunks: 3, files: 1 });
    expect((await files.bytes(second)).equals(data)).toBe(true);
    // The last reference goes: so do the bytes.
    await files.claim([second.id], await newSession(db));
    await db.query('DELETE FROM sessions WHERE id = (SELECT session_id FROM files WHERE id = $1)', [
      second.id,
    ]);
    expect(await files.usage()).toEqual({ blobs: 0, chunks: 0, files: 0 });
  });

  it('refuses a file over the limit and keeps nothing of it', async () => {
    const data = pdfBytes(CHUNK_BYTES * 3);
    const err = await files
      .put(pieces(data), {
        name: 'big.pdf',
        bot: 'default',
        maxBytes: CHUNK_BYTES * 2,
        allowedTypes: allowed,
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileRefusedError);
    expect((err as FileRefusedError).code).toBe('file_too_large');
    expect((err as Error).message).toBe(
      '"big.pdf" is larger than 512 KB, the largest file this chat accepts',
    );
    expect(await files.usage()).toEqual({ blobs: 0, chunks: 0, files: 0 });
  });

  it('tells the type from the bytes: a program called .png is refused, a real PNG is an image', async () => {
    const err = await files
      .put(EXE_BYTES, { name: 'cat.png', bot: 'default', maxBytes: MB, allowedTypes: allowed })
      .catch((e: unknown) => e);
    expect((err as FileRefusedError).code).toBe('file_type_refused');
    expect((err as Error).message).toBe(
      '"cat.png" is a file of type application/x-msdownload, which this chat does not accept',
    );
    const png = await files.put(PNG_1X1, {
      name: 'report.pdf',
      bot: 'default',
      maxBytes: MB,
      allowedTypes: allowed,
    });
    expect(png.type).toBe('image/png');
    const text = await files.put(Buffer.from('näme,qty\nkettle,1\n'), {
      name: '../../etc/x.csv',
      bot: 'default',
      maxBytes: MB,
      allowedTypes: allowed,
    });
    expect(text).toMatchObject({ type: 'text/plain', name: 'x.csv' });
    const onlyImages = await files
      .put(Buffer.from('hello'), { name: 'a.txt', bot: 'default', maxBytes: MB, allowedTypes: ['image/*'] })
      .catch((e: unknown) => e);
    expect((onlyImages as FileRefusedError).code).toBe('file_type_refused');
  });

  it('removes uploads that no message claimed, and chunks of uploads that died', async () => {
    const upload = await files.put(Buffer.from('a note'), {
      bot: 'default',
      maxBytes: MB,
      allowedTypes: allowed,
    });
    await db.query(`INSERT INTO file_chunks (blob_id, seq, data) VALUES ($1, 0, $2)`, [
      randomUUID(),
      Buffer.from('dead'),
    ]);
    const unclaimed = await db.query('SELECT id FROM files WHERE session_id IS NULL');
    expect(unclaimed.rows.length).toBeGreaterThan(0);
    const future = new Date(Date.now() + 60_000);
    expect(await files.removeStale(future)).toEqual({ files: unclaimed.rows.length, chunks: 1 });
    expect(await files.get(upload.id)).toBeUndefined();
  });

  it('signs short-lived links that open one file only', async () => {
    const id = randomUUID();
    const link = new URL(files.signedPath(id, 60), 'http://hub');
    const exp = link.searchParams.get('exp') ?? undefined;
    const sig = link.searchParams.get('sig') ?? undefined;
    expect(files.verifyLink(id, exp, sig)).toBe(true);
    expect(files.verifyLink(randomUUID(), exp, sig)).toBe(false);
    expect(files.verifyLink(id, String(Number(exp) + 1), sig)).toBe(false);
    expect(files.verifyLink(id, exp, sig, Date.now() + 120_000)).toBe(false);
    // Another store on the same database (another process) checks the same links.
    expect((await new FileStore(db).init()).verifyLink(id, exp, sig)).toBe(true);
  });
});
