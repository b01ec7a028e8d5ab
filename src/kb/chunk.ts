import type { TokenCounter } from '../llm/tokens.ts';

/**
 * Bumped when chunking changes: every document is indexed again (it is part of the content hash).
 * 2: a cut inside a character no longer leaves its bytes to garble the next cut (tokens.ts `prefix`).
 */
export const CHUNKER_VERSION = 2;

export interface Chunk {
  content: string;
  tokens: number;
}

const HEADING = /^#{1,6}\s+\S/;

/** Splits text that is too long on sentence ends, then on spaces, then anywhere. */
function splitLong(text: string, maxTokens: number, counter: TokenCounter): string[] {
  if (counter.text(text) <= maxTokens) return [text];
  for (const separator of [/(?<=[.!?。])\s+/, /\s+/]) {
    const pieces = text.split(separator).filter((p) => p !== '');
    if (pieces.length < 2) continue;
    const out: string[] = [];
    let current = '';
    for (const piece of pieces) {
      const next = current ? `${current} ${piece}` : piece;
      if (current && counter.text(next) > maxTokens) {
        out.push(current);
        current = piece;
      } else current = next;
    }
    if (current) out.push(current);
    return out.flatMap((p) => splitLong(p, maxTokens, counter));
  }
  const head = counter.truncate(text, maxTokens);
  return [head, ...splitLong(text.slice(head.length), maxTokens, counter)];
}

/**
 * Cuts a document into chunks of at most `maxTokens`: paragraphs (blank-line separated) are
 * packed together in order; a Markdown heading starts a new chunk, and a chunk that starts
 * mid-section carries its section's heading, so every chunk says what it is about.
 */
export function chunkDocument(text: string, maxTokens: number, counter: TokenCounter): Chunk[] {
  const normalized = text
    .replace(/\r\n?/g, '\n')
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  if (normalized === '') return [];
  const paragraphs = normalized.split(/\n\s*\n/).map((p) => p.trim());
  const chunks: string[] = [];
  let heading = '';
  let current = '';
  const flush = () => {
    if (current.trim() !== '' && current.trim() !== heading) chunks.push(current.trim());
    current = '';
  };
  for (const paragraph of paragraphs) {
    const firstLine = paragraph.split('\n', 1)[0]!;
    if (HEADING.test(firstLine)) {
      flush();
      heading = firstLine;
    }
    const withHeading = (piece: string) =>
      heading && !piece.startsWith(heading) ? `${heading}\n\n${piece}` : piece;
    const room = maxTokens - (heading && !paragraph.startsWith(heading) ? counter.text(heading) + 2 : 0);
    for (const piece of splitLong(paragraph, Math.max(16, room), counter)) {
      if (!current) {
        current = withHeading(piece);
        continue;
      }
      const next = `${current}\n\n${piece}`;
      if (counter.text(next) > maxTokens) {
        flush();
        current = withHeading(piece);
      } else current = next;
    }
  }
  flush();
  return chunks.map((content) => ({ content, tokens: counter.text(content) }));
}
