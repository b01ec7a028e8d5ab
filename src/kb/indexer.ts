import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { BOT_NAME_PATTERN } from '../envelope.ts';
import { tokenCounter } from '../llm/tokens.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Db } from '../store/db.ts';
import { CHUNKER_VERSION, chunkDocument } from './chunk.ts';
import { documentFormat, extractDocument } from './extract.ts';
import { deleteDocument, documentHashes, replaceDocument, withKnowledgeLock } from './store.ts';

/** How often the knowledge folders are looked at for changes (a stat per file). */
export const KB_RESCAN_MS = 5_000;
/** Larger files are skipped (and logged): a knowledge base is text, not an archive. */
export const MAX_DOCUMENT_BYTES = 50 * 1024 * 1024;
export const KB_DIR = 'kb';
/**
 * A document that failed to index is tried again this long after (unless its file changes,
 * which makes it tried at the next scan), doubling with each failure up to KB_RETRY_CAP_MS:
 * reading and extracting a large PDF is not repeated at every scan of every worker.
 */
export const KB_RETRY_BASE_MS = 30_000;
export const KB_RETRY_CAP_MS = 15 * 60_000;

/** A bot whose `kb/` folder is indexed. */
export interface KnowledgeSource {
  bot: string;
  /** The bot's folder; its knowledge bases are `<dir>/kb/<name>/`. */
  dir: string;
  language: string;
  chunkTokens: number;
}

export interface SyncReport {
  indexed: string[];
  removed: string[];
  unchanged: number;
  /** Tried and failed in this sync (`kb/path`). */
  failed: string[];
  /** Failed before, file unchanged, waiting for their next try: not read in this sync. */
  deferred: string[];
}

/** A document that failed to index, as this process last tried it. */
export interface KnowledgeFailure {
  bot: string;
  kb: string;
  path: string;
  /** Failures in a row of this version of the file. */
  attempts: number;
  error: string;
  /** When it is tried again (ISO time), unless its file changes first. */
  retryAt: string;
}

interface FailureRecord {
  bot: string;
  kb: string;
  path: string;
  stamp: string;
  attempts: number;
  error: string;
  retryAt: number;
}

interface FileEntry {
  kb: string;
  /** Inside the knowledge base, with '/'. */
  path: string;
  file: string;
  stamp: string;
}

/** Every supported document under `<dir>/kb/<name>/`, at any depth. */
async function listDocuments(dir: string, logger: Logger, bot: string): Promise<FileEntry[]> {
  const root = path.join(dir, KB_DIR);
  const kbs = await fs.readdir(root, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  const out: FileEntry[] = [];
  for (const kb of kbs) {
    if (!kb.isDirectory()) continue;
    if (!BOT_NAME_PATTERN.test(kb.name)) {
      logger.warn({ event: 'kb.name_invalid', bot, kb: kb.name });
      continue;
    }
    const base = path.join(root, kb.name);
    const files = await fs.readdir(base, { recursive: true, withFileTypes: true });
    for (const f of files) {
      if (!f.isFile()) continue;
      const file = path.join(f.parentPath, f.name);
      const rel = path.relative(base, file).split(path.sep).join('/');
      if (rel.split('/').some((part) => part.startsWith('.'))) continue;
      if (!documentFormat(f.name)) {
        logger.debug({
          event: 'kb.file_skipped',
          bot,
          kb: kb.name,
          path: rel,
          reason: 'not .md, .txt, .html or .pdf',
        });
        continue;
      }
      const stat = await fs.stat(file).catch(() => undefined);
      if (!stat) continue;
      if (stat.size > MAX_DOCUMENT_BYTES) {
        logger.warn({ event: 'kb.file_skipped', bot, kb: kb.name, path: rel, reason: 'larger than 50 MB' });
        continue;
      }
      out.push({ kb: kb.name, path: rel, file, stamp: `${stat.mtimeMs}:${stat.size}:${stat.ino}` });
    }
  }
  return out.sort((a, b) => a.kb.localeCompare(b.kb) || a.path.localeCompare(b.path));
}

/**
 * Keeps the bots' knowledge bases indexed in PostgreSQL full-text search: at start, then every
 * KB_RESCAN_MS. A document is read again only when its file changed (mtime, size, inode), and
 * indexed again only when its content hash differs from the stored one; documents whose file is
 * gone are removed. Several processes may do this at once: writes to one bot's knowledge are
 * serialised by an advisory lock, and the stored hash is checked again under it. A document
 * that fails is tried again after a backoff (KB_RETRY_BASE_MS doubling to KB_RETRY_CAP_MS), or
 * as soon as its file changes; `failing()` lists those waiting.
 */
export class KnowledgeIndexer {
  /** `bot/kb/path` → the file stamp and hash last seen by this process. */
  private readonly seen = new Map<string, { stamp: string; hash: string }>();
  /** `bot/kb/path` → the document's failure: it waits for `retryAt` (or a change of its file). */
  private readonly failures = new Map<string, FailureRecord>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly o: {
      db: Db;
      logger: Logger;
      sources: readonly KnowledgeSource[];
      rescanMs?: number;
      /** `switchboard_kb_documents_failing{bot}` is kept here when given. */
      metrics?: Pick<Metrics, 'kbDocumentsFailing'>;
      retryBaseMs?: number;
      retryCapMs?: number;
      /** The clock backoff is measured with (tests move it). */
      now?: () => number;
    },
  ) {}

  /** The documents that failed to index and wait for their next try, by bot, kb and path. */
  failing(): KnowledgeFailure[] {
    return [...this.failures.values()]
      .map((f) => ({
        bot: f.bot,
        kb: f.kb,
        path: f.path,
        attempts: f.attempts,
        error: f.error,
        retryAt: new Date(f.retryAt).toISOString(),
      }))
      .sort((a, b) => a.bot.localeCompare(b.bot) || a.kb.localeCompare(b.kb) || a.path.localeCompare(b.path));
  }

  /**
   * Indexes what changed since the last look, bot by bot. `signal` (a stop during the start)
   * ends it between two documents: what is indexed stays, the rest waits for the next start.
   */
  sync(signal?: AbortSignal): Promise<SyncReport> {
    const next = this.running.then(async () => {
      const total: SyncReport = { indexed: [], removed: [], unchanged: 0, failed: [], deferred: [] };
      for (const source of this.o.sources) {
        const r = await this.syncBot(source, signal);
        total.indexed.push(...r.indexed);
        total.removed.push(...r.removed);
        total.unchanged += r.unchanged;
        total.failed.push(...r.failed);
        total.deferred.push(...r.deferred);
      }
      return total;
    });
    this.running = next.catch(() => undefined);
    return next;
  }

  start(): void {
    if (this.timer || this.o.sources.length === 0) return;
    this.timer = setInterval(() => {
      this.sync().catch((err: Error) => this.o.logger.warn({ event: 'kb.sync_failed', err: err.message }));
    }, this.o.rescanMs ?? KB_RESCAN_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Reads the file and indexes it unless the stored hash (`storedHash`) is already its own. */
  private async indexFile(
    source: KnowledgeSource,
    f: FileEntry,
    storedHash: string | undefined,
    counter: ReturnType<typeof tokenCounter>,
  ): Promise<'indexed' | 'unchanged'> {
    const { db, logger } = this.o;
    const { bot } = source;
    const bytes = await fs.readFile(f.file);
    const hash = createHash('sha256')
      .update(`chunker:${CHUNKER_VERSION};language:${source.language};tokens:${source.chunkTokens}\n`)
      .update(bytes)
      .digest('hex');
    this.seen.set(`${bot}/${f.kb}/${f.path}`, { stamp: f.stamp, hash });
    if (storedHash === hash) return 'unchanged';
    const format = documentFormat(f.path)!;
    const text = await extractDocument(format, bytes);
    const chunks = chunkDocument(text, source.chunkTokens, counter);
    const wrote = await withKnowledgeLock(db, bot, (tx) =>
      replaceDocument(tx, { bot, kb: f.kb, path: f.path }, hash, chunks, source.language),
    );
    if (!wrote) return 'unchanged';
    logger.info({ event: 'kb.document_indexed', bot, kb: f.kb, path: f.path, format, chunks: chunks.length });
    return 'indexed';
  }

  private async syncBot(source: KnowledgeSource, signal?: AbortSignal): Promise<SyncReport> {
    const { db, logger } = this.o;
    const { bot } = source;
    const report: SyncReport = { indexed: [], removed: [], unchanged: 0, failed: [], deferred: [] };
    const files = await listDocuments(source.dir, logger, bot);
    const stored = await documentHashes(db, bot);
    const counter = tokenCounter();
    const now = this.o.now ?? Date.now;
    for (const f of files) {
      signal?.throwIfAborted();
      const key = `${f.kb}/${f.path}`;
      const seenKey = `${bot}/${key}`;
      const failure = this.failures.get(seenKey);
      if (failure?.stamp === f.stamp && now() < failure.retryAt) {
        report.deferred.push(key);
        continue;
      }
      const seen = this.seen.get(seenKey);
      if (seen?.stamp === f.stamp && stored.get(key) === seen.hash) {
        report.unchanged++;
        continue;
      }
      try {
        const outcome = await this.indexFile(source, f, stored.get(key), counter);
        if (outcome === 'indexed') report.indexed.push(key);
        else report.unchanged++;
        if (failure) {
          this.failures.delete(seenKey);
          logger.info({
            event: 'kb.document_recovered',
            bot,
            kb: f.kb,
            path: f.path,
            after: failure.attempts,
          });
        }
      } catch (err) {
        this.seen.delete(seenKey);
        report.failed.push(key);
        // The same file failing again waits twice as long; a changed file starts over.
        const attempts = failure?.stamp === f.stamp ? failure.attempts + 1 : 1;
        const retryInMs = Math.min(
          this.o.retryCapMs ?? KB_RETRY_CAP_MS,
          (this.o.retryBaseMs ?? KB_RETRY_BASE_MS) * 2 ** (attempts - 1),
        );
        const error = (err as Error).message;
        this.failures.set(seenKey, {
          bot,
          kb: f.kb,
          path: f.path,
          stamp: f.stamp,
          attempts,
          error,
          retryAt: now() + retryInMs,
        });
        logger.warn({
          event: 'kb.document_failed',
          bot,
          kb: f.kb,
          path: f.path,
          err: error,
          attempts,
          retryInMs,
        });
      }
    }
    const present = new Set(files.map((f) => `${f.kb}/${f.path}`));
    for (const [seenKey, failure] of this.failures)
      if (failure.bot === bot && !present.has(`${failure.kb}/${failure.path}`)) this.failures.delete(seenKey);
    this.o.metrics?.kbDocumentsFailing.set(
      { bot },
      [...this.failures.values()].filter((f) => f.bot === bot).length,
    );
    const gone = [...stored.keys()].filter((k) => !present.has(k));
    if (gone.length > 0) {
      await withKnowledgeLock(db, bot, async (tx) => {
        for (const key of gone) {
          const slash = key.indexOf('/');
          await deleteDocument(tx, { bot, kb: key.slice(0, slash), path: key.slice(slash + 1) });
        }
      });
      for (const key of gone) {
        this.seen.delete(`${bot}/${key}`);
        report.removed.push(key);
        logger.info({ event: 'kb.document_removed', bot, path: key });
      }
    }
    return report;
  }
}
