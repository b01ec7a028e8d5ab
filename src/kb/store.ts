import type { Db, Queryable } from '../store/db.ts';
import { json } from '../store/records.ts';
import type { Chunk } from './chunk.ts';

/** Any fixed number: with the bot's hash it keys the lock that writers of one bot's knowledge take. */
const KB_LOCK_CLASS = 7_340_212;

export interface DocumentKey {
  bot: string;
  kb: string;
  path: string;
}

/** `kb/path` → hash of every indexed document of a bot. */
export async function documentHashes(q: Queryable, bot: string): Promise<Map<string, string>> {
  const { rows } = await q.query<{ kb: string; path: string; hash: string }>(
    'SELECT kb, path, hash FROM kb_documents WHERE bot = $1',
    [bot],
  );
  return new Map(rows.map((r) => [`${r.kb}/${r.path}`, r.hash]));
}

/**
 * Runs `work` in a transaction holding the bot's knowledge lock: processes starting together
 * index one after the other, and each finds what the one before it wrote.
 */
export function withKnowledgeLock<T>(db: Db, bot: string, work: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [KB_LOCK_CLASS, bot]);
    return work(tx);
  });
}

/**
 * Replaces a document's chunks, unless the stored one already has this hash (another process
 * indexed it first). True when it wrote.
 */
export async function replaceDocument(
  tx: Queryable,
  doc: DocumentKey,
  hash: string,
  chunks: readonly Chunk[],
  language: string,
): Promise<boolean> {
  const { rows } = await tx.query<{ hash: string }>(
    'SELECT hash FROM kb_documents WHERE bot = $1 AND kb = $2 AND path = $3',
    [doc.bot, doc.kb, doc.path],
  );
  if (rows[0]?.hash === hash) return false;
  await tx.query('DELETE FROM kb_documents WHERE bot = $1 AND kb = $2 AND path = $3', [
    doc.bot,
    doc.kb,
    doc.path,
  ]);
  await tx.query('INSERT INTO kb_documents (bot, kb, path, hash, chunks) VALUES ($1, $2, $3, $4, $5)', [
    doc.bot,
    doc.kb,
    doc.path,
    hash,
    chunks.length,
  ]);
  if (chunks.length > 0)
    await tx.query(
      `INSERT INTO kb_chunks (bot, kb, path, ord, content, tokens, tsv)
       SELECT $1, $2, $3, c.ord, c.content, c.tokens, to_tsvector($4::regconfig, c.content)
       FROM jsonb_to_recordset($5::jsonb) AS c(ord int, content text, tokens int)`,
      [doc.bot, doc.kb, doc.path, language, json(chunks.map((c, ord) => ({ ord, ...c })))],
    );
  return true;
}

export async function deleteDocument(tx: Queryable, doc: DocumentKey): Promise<void> {
  await tx.query('DELETE FROM kb_documents WHERE bot = $1 AND kb = $2 AND path = $3', [
    doc.bot,
    doc.kb,
    doc.path,
  ]);
}

export interface ChunkMatch {
  kb: string;
  path: string;
  ord: number;
  content: string;
  rank: number;
}

/** Most words of a message a search uses. */
const MAX_QUERY_WORDS = 64;

/**
 * The words of a message as a full-text query that matches any of them (stemmed, stop words
 * dropped by `websearch_to_tsquery`); empty when the message has no words.
 */
export function anyWordQuery(text: string): string {
  const words = (text.match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => w.toLowerCase() !== 'or');
  return words.slice(0, MAX_QUERY_WORDS).join(' or ');
}

/** The chunks of these knowledge bases that best match the text, best first. */
export async function searchChunks(
  q: Queryable,
  options: { bot: string; kbs: readonly string[]; text: string; language: string; limit: number },
): Promise<ChunkMatch[]> {
  const query = anyWordQuery(options.text);
  if (query === '' || options.kbs.length === 0 || options.limit <= 0) return [];
  const { rows } = await q.query<ChunkMatch>(
    `SELECT c.kb, c.path, c.ord, c.content, ts_rank_cd(c.tsv, q) AS rank
     FROM kb_chunks c, websearch_to_tsquery($4::regconfig, $3) AS q
     WHERE c.bot = $1 AND c.kb = ANY($2::text[]) AND c.tsv @@ q
     ORDER BY rank DESC, c.kb, c.path, c.ord
     LIMIT $5`,
    [options.bot, [...options.kbs], query, options.language, options.limit],
  );
  return rows.map((r) => ({ ...r, ord: Number(r.ord), rank: Number(r.rank) }));
}
