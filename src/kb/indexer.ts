import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { BOT_NAME_PATTERN } from '../envelope.ts';
import { tokenCounter } from '../llm/tokens.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../store/db.ts';
import { CHUNKER_VERSION, chunkDocument } from './chunk.ts';
import { documentFormat, extractDocument } from './extract.ts';
import { deleteDocument, documentHashes, replaceDocument, withKnowledgeLock } from './store.ts';

/** How often the knowledge folders are looked at for changes (a stat per file). */
export const KB_RESCAN_MS = 5_000;
/** Larger files are skipped (and logged): a knowledge base is text, not an archive. */
export const MAX_DOCUMENT_BYTES = 50 * 1024 * 1024;
export const KB_DIR = 'kb';

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
  failed: string[];
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
 * serialised by an advisory lock, and the stored hash is checked again under it.
 */
export class KnowledgeIndexer {
  /** `bot/kb/path` → the file stamp and hash last seen by this process. */
  private readonly seen = new Map<string, { stamp: string; hash: string }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly o: { db: Db; logger: Logger; sources: readonly KnowledgeSource[]; rescanMs?: number },
  ) {}

  /** Indexes what changed since the last look, bot by bot. */
  sync(): Promise<SyncReport> {
    const next = this.running.then(async () => {
      const total: SyncReport = { indexed: [], removed: [], unchanged: 0, failed: [] };
      for (const source of this.o.sources) {
        const r = await this.syncBot(source);
        total.indexed.push(...r.indexed);
        total.removed.push(...r.removed);
        total.unchanged += r.unchanged;
        total.failed.push(...r.failed);
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

  private async syncBot(source: KnowledgeSource): Promise<SyncReport> {
    const { db, logger } = this.o;
    const { bot } = source;
    const report: SyncReport = { indexed: [], removed: [], unchanged: 0, failed: [] };
    const files = await listDocuments(source.dir, logger, bot);
    const stored = await documentHashes(db, bot);
    const counter = tokenCounter();
    for (const f of files) {
      const key = `${f.kb}/${f.path}`;
      const seenKey = `${bot}/${key}`;
      const seen = this.seen.get(seenKey);
      if (seen?.stamp === f.stamp && stored.get(key) === seen.hash) {
        report.unchanged++;
        continue;
      }
      try {
        const bytes = await fs.readFile(f.file);
        const hash = createHash('sha256')
          .update(`chunker:${CHUNKER_VERSION};language:${source.language};tokens:${source.chunkTokens}\n`)
          .update(bytes)
          .digest('hex');
        this.seen.set(seenKey, { stamp: f.stamp, hash });
        if (stored.get(key) === hash) {
          report.unchanged++;
          continue;
        }
        const format = documentFormat(f.path)!;
        const text = await extractDocument(format, bytes);
        const chunks = chunkDocument(text, source.chunkTokens, counter);
        const wrote = await withKnowledgeLock(db, bot, (tx) =>
          replaceDocument(tx, { bot, kb: f.kb, path: f.path }, hash, chunks, source.language),
        );
        if (wrote) {
          report.indexed.push(key);
          logger.info({
            event: 'kb.document_indexed',
            bot,
            kb: f.kb,
            path: f.path,
            format,
            chunks: chunks.length,
          });
        } else report.unchanged++;
      } catch (err) {
        this.seen.delete(seenKey);
        report.failed.push(key);
        logger.warn({
          event: 'kb.document_failed',
          bot,
          kb: f.kb,
          path: f.path,
          err: (err as Error).message,
        });
      }
    }
    const present = new Set(files.map((f) => `${f.kb}/${f.path}`));
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
