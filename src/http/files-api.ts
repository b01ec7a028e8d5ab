import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type busboy from 'busboy';
import type { Context } from 'hono';
import { Hono } from 'hono';
import type { BotRegistry } from '../config/bots.ts';
import type { HubConfig } from '../config/env.ts';
import { FileRefusedError, type FileStore, formatBytes, type StoredFile, tooLarge } from '../files/store.ts';
import { INLINE_IMAGE_TYPES } from '../files/types.ts';
import { MINUTE_MS, type RateLimiter, retryAfterSeconds, sessionUploadsKey } from '../limits/rate-limiter.ts';
import type { Logger } from '../logger.ts';
import { sessionForToken } from '../sessions.ts';
import type { Db } from '../store/db.ts';
import type { SessionRecord } from '../store/records.ts';
import { ApiError } from './errors.ts';

export const UPLOAD_PATH = '/api/session/files';
/** Multipart framing around the file: headers, boundaries, a few small fields. */
const MULTIPART_SLACK_BYTES = 64 * 1024;

export interface FileRoutesDeps {
  db: Db;
  files: FileStore;
  bots: BotRegistry;
  logger: Logger;
  rateLimiter: RateLimiter;
  /** UPLOADS_PER_MINUTE and UNSENT_UPLOADS_MAX_BYTES: what one session may upload. */
  config: Pick<HubConfig, 'uploadsPerMinute' | 'unsentUploadsMaxBytes'>;
  /**
   * Where else a request may carry its session token than `Authorization: Bearer` (the hub's
   * own chat page: its HttpOnly cookie). Declared by the channel adapters.
   */
  requestTokens: ((c: Context) => string | undefined)[];
}

const unauthorized = () =>
  new ApiError(401, 'unauthorized', 'send the session token as "Authorization: Bearer <token>"', {
    'WWW-Authenticate': 'Bearer realm="switchboard"',
  });

/** Any site may embed the widget: these routes answer its cross-origin requests (no cookies). */
function cors(c: Context): void {
  c.header('Access-Control-Allow-Origin', '*');
  c.header('Access-Control-Allow-Headers', 'Authorization, Content-Type');
  c.header('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
  c.header('Access-Control-Max-Age', '600');
}

async function requestSession(c: Context, deps: FileRoutesDeps): Promise<SessionRecord | undefined> {
  const header = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
  const tokens = header ? [header[1]!] : deps.requestTokens.flatMap((read) => read(c) ?? []);
  for (const token of tokens) {
    const session = await sessionForToken(deps.db, token);
    if (session) return session;
  }
  return undefined;
}

/** `filename*` for any name, and a plain ASCII `filename` for old clients. */
export function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** Headers that make a stored file safe to open: never sniffed, never run; inline only for plain images. */
export function fileHeaders(file: Pick<StoredFile, 'name' | 'type' | 'size'>): Record<string, string> {
  const inline = INLINE_IMAGE_TYPES.has(file.type);
  return {
    'Content-Type': file.type === 'text/plain' ? 'text/plain; charset=utf-8' : file.type,
    'Content-Length': String(file.size),
    'Content-Disposition': contentDisposition(inline ? 'inline' : 'attachment', file.name),
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "default-src 'none'; sandbox",
    'Cross-Origin-Resource-Policy': 'cross-origin',
    'Cache-Control': 'private, max-age=300',
  };
}

/** A session's uploads that no message carries yet take `unsent` bytes of `limit`. */
const unsentTooLarge = (unsent: number, limit: number) =>
  new ApiError(
    413,
    'unsent_files_too_large',
    `this chat's files not sent yet take ${formatBytes(unsent)} of the ${formatBytes(limit)} allowed; send them before adding more`,
    // The rest of a refused body is never read: the connection cannot carry another request.
    { Connection: 'close' },
  );

/**
 * `POST /api/session/files` (multipart, one part named `file`) → 201 `{file_id, name, type, size}`,
 * streamed into the file store within the session's bot's limits, UPLOADS_PER_MINUTE (429) and
 * UNSENT_UPLOADS_MAX_BYTES (413); `GET /api/files/{id}` for the session's own files (its token),
 * or anyone with a signed link (`?exp=…&sig=…`).
 *
 * An upload belongs to its session from the start and lives as long as the session, sent or
 * not: the limits are what keep one session (anyone can open one) from filling the database.
 * The unsent bytes are checked before the upload, which may then take up to what is left; uploads
 * of one session running at once can each take that (at most UPLOADS_PER_MINUTE of them).
 */
export function fileRoutes(deps: FileRoutesDeps): Hono {
  const app = new Hono();
  const { files, bots, logger, rateLimiter, config } = deps;

  const preflight = (c: Context) => {
    cors(c);
    return c.body(null, 204);
  };
  app.options(UPLOAD_PATH, preflight);
  app.options('/api/files/:id', preflight);

  app.post(UPLOAD_PATH, async (c) => {
    cors(c);
    const session = await requestSession(c, deps);
    if (!session) throw unauthorized();
    const rules = bots.rules(session.bot, session.channel);
    const declared = Number(c.req.header('content-length') ?? Number.NaN);
    const type = c.req.header('content-type') ?? '';
    if (!/^multipart\/form-data/i.test(type))
      throw new ApiError(
        415,
        'unsupported_media_type',
        'send the file as multipart/form-data, in a part named "file"',
      );
    // The rest of a refused body is never read: the connection cannot carry another request.
    const close = { Connection: 'close' };
    if (declared > rules.maxFileBytes + MULTIPART_SLACK_BYTES) {
      logger.info({ event: 'file.refused', sessionId: session.id, reason: 'file_too_large', size: declared });
      throw new ApiError(413, 'file_too_large', tooLarge('the file', rules.maxFileBytes).message, close);
    }
    const rate = await rateLimiter.hit(sessionUploadsKey(session.id), config.uploadsPerMinute, MINUTE_MS);
    if (!rate.allowed) {
      logger.info({ event: 'file.refused', sessionId: session.id, reason: 'rate_limited' });
      throw new ApiError(
        429,
        'rate_limited',
        `${config.uploadsPerMinute} files were uploaded to this chat in the last minute; try again in a moment`,
        { ...close, 'Retry-After': retryAfterSeconds(rate.retryAfterMs) },
      );
    }
    const unsent = await files.unsentBytes(session.id);
    const room = config.unsentUploadsMaxBytes - unsent;
    if (room <= 0 || declared > room + MULTIPART_SLACK_BYTES) {
      logger.info({ event: 'file.refused', sessionId: session.id, reason: 'unsent_files_too_large', unsent });
      throw unsentTooLarge(unsent, config.unsentUploadsMaxBytes);
    }
    // The smaller of the two limits is the one the upload meets first.
    const maxBytes = Math.min(rules.maxFileBytes, room);
    const body = c.req.raw.body;
    if (!body) throw new ApiError(400, 'no_file', 'the request has no body');
    let parser: busboy.Busboy;
    // Loaded at the first upload: a hub nobody sends files to never needs it.
    const { default: createParser } = await import('busboy');
    try {
      parser = createParser({
        headers: { 'content-type': type },
        limits: { files: 1, fields: 10, fileSize: maxBytes + 1, parts: 12 },
      });
    } catch (err) {
      throw new ApiError(
        400,
        'invalid_request',
        `the multipart body cannot be read: ${(err as Error).message}`,
      );
    }
    const source = Readable.fromWeb(body as unknown as WebReadableStream<Uint8Array>);
    source.on('error', () => undefined);
    const stored = new Promise<StoredFile | undefined>((resolve, reject) => {
      // This route is not under MAX_BODY_BYTES: the whole body, whatever part its bytes are in
      // (a field, a part of another name before the file), is bounded by the file's limit and
      // the multipart framing. Else a body that went on before the file was read to its end.
      let read = 0;
      source.on('data', (bytes: Uint8Array) => {
        read += bytes.byteLength;
        if (read > maxBytes + MULTIPART_SLACK_BYTES)
          reject(new FileRefusedError('file_too_large', tooLarge('the file', maxBytes).message));
      });
      let started = false;
      parser.on('file', (field, stream, info) => {
        if (field !== 'file' || started) {
          // Read and dropped. A body cut short errs here too (the parser's own error answers it):
          // unheard, that error would end the process.
          stream.on('error', () => undefined);
          stream.resume();
          return;
        }
        started = true;
        files
          .put(stream, {
            name: info.filename,
            bot: session.bot,
            sessionId: session.id,
            maxBytes,
            allowedTypes: rules.allowedFileTypes,
          })
          .then(resolve, (err: unknown) => {
            stream.resume();
            reject(err);
          });
      });
      parser.on('error', (err: Error) => reject(new ApiError(400, 'invalid_request', err.message)));
      parser.on('close', () => {
        if (!started) resolve(undefined);
      });
    });
    source.pipe(parser);
    let file: StoredFile | undefined;
    try {
      file = await stored;
    } catch (err) {
      source.unpipe(parser);
      source.destroy();
      if (err instanceof FileRefusedError) {
        const overUnsent = err.code === 'file_too_large' && maxBytes < rules.maxFileBytes;
        const reason = overUnsent ? 'unsent_files_too_large' : err.code;
        logger.info({ event: 'file.refused', sessionId: session.id, reason });
        if (overUnsent) throw unsentTooLarge(unsent, config.unsentUploadsMaxBytes);
        throw new ApiError(err.code === 'file_too_large' ? 413 : 415, err.code, err.message, close);
      }
      throw err;
    }
    if (!file) throw new ApiError(400, 'no_file', 'send the file in a multipart part named "file"');
    logger.info({
      event: 'file.uploaded',
      sessionId: session.id,
      fileId: file.id,
      type: file.type,
      size: file.size,
      stored: file.stored,
    });
    return c.json({ file_id: file.id, name: file.name, type: file.type, size: file.size }, 201);
  });

  app.get('/api/files/:id', async (c) => {
    cors(c);
    const id = c.req.param('id');
    const file = await files.get(id);
    const signed = files.verifyLink(id, c.req.query('exp'), c.req.query('sig'));
    if (!signed) {
      const session = await requestSession(c, deps);
      if (!session) {
        if (c.req.query('sig'))
          throw new ApiError(403, 'link_expired', 'this link has expired or is not valid');
        throw unauthorized();
      }
      if (!file || file.sessionId !== session.id)
        throw new ApiError(404, 'not_found', 'this session has no such file');
    }
    if (!file) throw new ApiError(404, 'not_found', 'the file is gone');
    const stream = files.stream(file);
    return new Response(Readable.toWeb(stream) as unknown as ReadableStream, {
      status: 200,
      headers: fileHeaders(file),
    });
  });

  return app;
}
