import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Db } from '../store/db.ts';
import { cleanFileName, SNIFF_BYTES, sniffType, typeAllowed } from './types.ts';

/** Bytes per stored chunk: memory holds one of these (plus what arrives meanwhile), never a file. */
export const CHUNK_BYTES = 256 * 1024;
/**
 * Chunks read per query when a file streams out: a few per round trip to a PostgreSQL server; one
 * at a time from PGlite, which is in the process (no round trip to save) and hands each result
 * back as hex text in a buffer sized to it, so a bigger batch only means bigger garbage.
 */
const readBatch = (db: Db) => (db.kind === 'pglite' ? 1 : 4);
/** How long a signed file link opens its file (the widget's images; channels that fetch by URL). */
export const LINK_TTL_SECONDS = 3600;

/** A file as one message carries it. */
export interface StoredFile {
  id: string;
  sha256: string;
  name: string;
  /** Sniffed from the bytes, never the sender's word. */
  type: string;
  size: number;
  sessionId: string | null;
  bot: string;
  origin: 'person' | 'bot';
  createdAt: string;
  /** This put wrote the bytes (false: the same content was already stored, and is shared). */
  stored?: boolean;
}

export interface PutOptions {
  name?: string;
  bot: string;
  /** The session it belongs to; absent until its message is recorded (`claim`). */
  sessionId?: string;
  origin?: 'person' | 'bot';
  /** Larger is refused (`FileTooLargeError`), nothing kept. */
  maxBytes: number;
  /** Patterns (`image/*`); a sniffed type outside them is refused (`FileTypeRefusedError`). */
  allowedTypes: readonly string[];
}

/** A refusal the person can be told about; `code` is the API error code. */
export class FileRefusedError extends Error {
  override name = 'FileRefusedError';
  constructor(
    readonly code: 'file_too_large' | 'file_type_refused',
    message: string,
  ) {
    super(message);
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 102.4) / 10} KB`;
  return `${Math.round(n / 104_857.6) / 10} MB`;
}

/** `size`, where the channel knows it exactly (email), is named too. */
export const tooLarge = (name: string, maxBytes: number, size?: number) =>
  new FileRefusedError(
    'file_too_large',
    `"${name}"${size === undefined ? '' : ` (${formatBytes(size)})`} is larger than ${formatBytes(maxBytes)}, the largest file this chat accepts`,
  );

interface FileRow {
  id: string;
  sha256: string;
  name: string;
  type: string;
  size: number | string;
  session_id: string | null;
  bot: string;
  origin: 'person' | 'bot';
  created_at: Date | string;
}

const toFile = (r: FileRow): StoredFile => ({
  id: r.id,
  sha256: r.sha256,
  name: r.name,
  type: r.type,
  size: Number(r.size),
  sessionId: r.session_id,
  bot: r.bot,
  origin: r.origin,
  createdAt: new Date(r.created_at).toISOString(),
});

const asBuffer = (data: Uint8Array): Buffer =>
  Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isFileId = (id: string): boolean => UUID.test(id);

/**
 * The file store, on the hub's PostgreSQL (or PGlite): content-addressed by SHA-256, each content
 * stored once in 256 KiB chunks, `files` rows as references (a trigger frees the bytes with the
 * last one), streamed in and out.
 */
export class FileStore {
  private key: Buffer | undefined;

  constructor(
    private readonly db: Db,
    /** PUBLIC_URL: signed links are absolute on it; unset, they are paths on the hub. */
    private readonly publicUrl = '',
  ) {}

  /**
   * Streams `source` into the store: sniffs the type from the first bytes, counts the size as it
   * goes, hashes, and stores the content once. Refused (nothing kept) when too large or of a
   * type not allowed.
   */
  async put(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Uint8Array,
    options: PutOptions,
  ): Promise<StoredFile> {
    const name = cleanFileName(options.name);
    const blobId = randomUUID();
    const hash = createHash('sha256');
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let size = 0;
    let seq = 0;
    let type: string | undefined;
    const flush = async (all: boolean) => {
      while (pendingBytes >= CHUNK_BYTES || (all && pendingBytes > 0)) {
        const joined = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
        const chunk = joined.subarray(0, CHUNK_BYTES);
        const rest = joined.subarray(chunk.length);
        pending = rest.length > 0 ? [rest] : [];
        pendingBytes = rest.length;
        if (type === undefined) {
          type = await sniffType(chunk.subarray(0, SNIFF_BYTES));
          if (!typeAllowed(type, options.allowedTypes))
            throw new FileRefusedError(
              'file_type_refused',
              `"${name}" is a file of type ${type}, which this chat does not accept`,
            );
        }
        await this.db.query('INSERT INTO file_chunks (blob_id, seq, data) VALUES ($1, $2, $3)', [
          blobId,
          seq++,
          chunk,
        ]);
      }
    };
    try {
      const pieces = source instanceof Uint8Array ? [source] : source;
      for await (const piece of pieces) {
        size += piece.length;
        if (size > options.maxBytes) throw tooLarge(name, options.maxBytes);
        hash.update(piece);
        pending.push(asBuffer(piece));
        pendingBytes += piece.length;
        await flush(false);
      }
      await flush(true);
      if (type === undefined) {
        type = await sniffType(new Uint8Array());
        if (!typeAllowed(type, options.allowedTypes))
          throw new FileRefusedError('file_type_refused', `"${name}" is empty`);
      }
      return await this.finish(blobId, hash.digest('hex'), size, type, name, options);
    } catch (err) {
      if (seq > 0)
        await this.db.query('DELETE FROM file_chunks WHERE blob_id = $1', [blobId]).catch(() => {});
      throw err;
    }
  }

  private async finish(
    blobId: string,
    sha256: string,
    size: number,
    type: string,
    name: string,
    options: PutOptions,
  ): Promise<StoredFile> {
    return this.db.transaction(async (tx) => {
      // DO UPDATE (not NOTHING) locks a content that is already there: the last reference going
      // away meanwhile cannot take it before this reference is in.
      const blob = await tx.query<{ blob_id: string }>(
        `INSERT INTO file_blobs (sha256, blob_id, size) VALUES ($1, $2, $3)
         ON CONFLICT (sha256) DO UPDATE SET size = file_blobs.size RETURNING blob_id`,
        [sha256, blobId, size],
      );
      const stored = blob.rows[0]?.blob_id === blobId;
      if (!stored) await tx.query('DELETE FROM file_chunks WHERE blob_id = $1', [blobId]);
      const { rows } = await tx.query<FileRow>(
        `INSERT INTO files (id, sha256, session_id, bot, name, type, size, origin)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
        [
          randomUUID(),
          sha256,
          options.sessionId ?? null,
          options.bot,
          name,
          type,
          size,
          options.origin ?? 'person',
        ],
      );
      return { ...toFile(rows[0]!), stored };
    });
  }

  async get(id: string): Promise<StoredFile | undefined> {
    if (!isFileId(id)) return undefined;
    const { rows } = await this.db.query<FileRow>('SELECT * FROM files WHERE id = $1', [id]);
    return rows[0] && toFile(rows[0]);
  }

  async getMany(ids: readonly string[]): Promise<StoredFile[]> {
    const valid = ids.filter(isFileId);
    if (valid.length === 0) return [];
    const { rows } = await this.db.query<FileRow>('SELECT * FROM files WHERE id = ANY($1::uuid[])', [valid]);
    const byId = new Map(rows.map((r) => [r.id, toFile(r)]));
    return valid.flatMap((id) => byId.get(id) ?? []);
  }

  async ofSession(sessionId: string): Promise<StoredFile[]> {
    const { rows } = await this.db.query<FileRow>(
      'SELECT * FROM files WHERE session_id = $1 ORDER BY created_at',
      [sessionId],
    );
    return rows.map(toFile);
  }

  /**
   * Bytes of a session's files from its person that none of its messages carries yet: uploads
   * (`POST /api/session/files`) not sent. A message's row lists its files in
   * `payload.attachments[].fileId` once its turn is recorded.
   */
  async unsentBytes(sessionId: string): Promise<number> {
    const { rows } = await this.db.query<{ bytes: number | string }>(
      `SELECT coalesce(sum(f.size), 0) AS bytes FROM files f
        WHERE f.session_id = $1 AND f.origin = 'person'
          AND f.id::text NOT IN (
            SELECT a.value ->> 'fileId' FROM messages m
              CROSS JOIN LATERAL jsonb_array_elements(
                CASE WHEN jsonb_typeof(m.payload -> 'attachments') = 'array'
                     THEN m.payload -> 'attachments' ELSE '[]'::jsonb END) AS a
             WHERE m.session_id = $1 AND a.value ->> 'fileId' IS NOT NULL)`,
      [sessionId],
    );
    return Number(rows[0]?.bytes ?? 0);
  }

  /** Gives unclaimed files to the session their message was recorded in. */
  async claim(ids: readonly string[], sessionId: string): Promise<void> {
    const valid = ids.filter(isFileId);
    if (valid.length === 0) return;
    await this.db.query(
      'UPDATE files SET session_id = $2 WHERE id = ANY($1::uuid[]) AND session_id IS NULL',
      [valid, sessionId],
    );
  }

  /**
   * Removes files that no session claimed (a message's attachments stored before its turn, whose
   * turn never came: its person was erased meanwhile); their bytes go with their last reference.
   */
  async removeUnclaimed(ids: readonly string[]): Promise<number> {
    const valid = ids.filter(isFileId);
    if (valid.length === 0) return 0;
    const { rowCount } = await this.db.query(
      'DELETE FROM files WHERE id = ANY($1::uuid[]) AND session_id IS NULL',
      [valid],
    );
    return rowCount;
  }

  /** Hands a session's uploads to its successor (the token's next session after an idle-out). */
  async move(ids: readonly string[], from: string, to: string): Promise<void> {
    await this.db.query('UPDATE files SET session_id = $3 WHERE id = ANY($1::uuid[]) AND session_id = $2', [
      ids.filter(isFileId),
      from,
      to,
    ]);
  }

  /** The bytes, streamed a few chunks at a time. */
  stream(file: Pick<StoredFile, 'sha256'>): Readable {
    const db = this.db;
    const batch = readBatch(db);
    async function* chunks() {
      const blob = await db.query<{ blob_id: string }>('SELECT blob_id FROM file_blobs WHERE sha256 = $1', [
        file.sha256,
      ]);
      const blobId = blob.rows[0]?.blob_id;
      if (!blobId) throw new Error('the file is gone');
      for (let next = 0; ; ) {
        const { rows } = await db.query<{ seq: number; data: Uint8Array }>(
          'SELECT seq, data FROM file_chunks WHERE blob_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3',
          [blobId, next, batch],
        );
        for (const r of rows) yield asBuffer(r.data);
        if (rows.length < batch) return;
        next = rows.at(-1)!.seq + 1;
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  /** The whole content in memory: only for what a platform takes in one piece (an upload, an LLM image). */
  async bytes(file: Pick<StoredFile, 'sha256'>): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const part of this.stream(file)) parts.push(part as Buffer);
    return Buffer.concat(parts);
  }

  /** Removes uploads no message claimed, and chunks of uploads that died, older than `before`. */
  async removeStale(before: Date): Promise<{ files: number; chunks: number }> {
    const files = await this.db.query('DELETE FROM files WHERE session_id IS NULL AND created_at < $1', [
      before,
    ]);
    const chunks = await this.db.query(
      `DELETE FROM file_chunks c WHERE c.created_at < $1
         AND NOT EXISTS (SELECT 1 FROM file_blobs b WHERE b.blob_id = c.blob_id)`,
      [before],
    );
    return { files: files.rowCount, chunks: chunks.rowCount };
  }

  /** How many contents and chunks are stored (tests, metrics). */
  async usage(): Promise<{ blobs: number; chunks: number; files: number }> {
    const { rows } = await this.db.query<{ blobs: number; chunks: number; files: number }>(
      `SELECT (SELECT count(*)::int FROM file_blobs) AS blobs, (SELECT count(*)::int FROM file_chunks) AS chunks,
              (SELECT count(*)::int FROM files) AS files`,
    );
    return rows[0]!;
  }

  // --- Signed links: `?exp=<unix seconds>&sig=<HMAC>` ---

  /** Reads (or makes, once for every process) the key that signs file links. Call before signing. */
  async init(): Promise<this> {
    if (this.key) return this;
    await this.db.query(
      'INSERT INTO hub_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING',
      ['file_links', randomBytes(32).toString('base64url')],
    );
    const { rows } = await this.db.query<{ value: string }>('SELECT value FROM hub_secrets WHERE name = $1', [
      'file_links',
    ]);
    this.key = Buffer.from(rows[0]!.value, 'base64url');
    return this;
  }

  private signature(id: string, exp: number): string {
    if (!this.key) throw new Error('FileStore.init() must run before links are signed');
    return createHmac('sha256', this.key).update(`${id}.${exp}`).digest('base64url');
  }

  /**
   * A link (`<PUBLIC_URL>/api/files/<id>?exp=…&sig=…`) that opens the file without a token for
   * `ttlSeconds`; a path on the hub when PUBLIC_URL is not set, or for pages the hub serves
   * itself (`onHub`: the agent console, whose CSP allows its own origin only).
   */
  signedPath(
    id: string,
    ttlSeconds = LINK_TTL_SECONDS,
    now = Date.now(),
    options: { onHub?: boolean } = {},
  ): string {
    const exp = Math.floor(now / 1000) + ttlSeconds;
    const base = options.onHub ? '' : this.publicUrl;
    return `${base}/api/files/${id}?exp=${exp}&sig=${this.signature(id, exp)}`;
  }

  verifyLink(id: string, exp: string | undefined, sig: string | undefined, now = Date.now()): boolean {
    if (!exp || !sig || !/^\d{1,12}$/.test(exp)) return false;
    if (Number(exp) * 1000 < now) return false;
    const expected = Buffer.from(this.signature(id, Number(exp)));
    const given = Buffer.from(sig);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
