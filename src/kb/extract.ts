import path from 'node:path';
import { cleanText } from '../text.ts';

/** What a knowledge base reads, by file extension. */
export const DOCUMENT_FORMATS = {
  '.md': 'markdown',
  '.markdown': 'markdown',
  '.txt': 'text',
  '.text': 'text',
  '.html': 'html',
  '.htm': 'html',
  '.pdf': 'pdf',
} as const;
export type DocumentFormat = (typeof DOCUMENT_FORMATS)[keyof typeof DOCUMENT_FORMATS];

export function documentFormat(file: string): DocumentFormat | undefined {
  return DOCUMENT_FORMATS[path.extname(file).toLowerCase() as keyof typeof DOCUMENT_FORMATS];
}

export class ExtractError extends Error {
  override name = 'ExtractError';
}

/**
 * The plain text of a document, without NUL or lone surrogates (each becomes U+FFFD): the
 * store refuses them, and a document holding one could never be indexed.
 */
export async function extractDocument(format: DocumentFormat, bytes: Uint8Array): Promise<string> {
  return cleanText(await extractText(format, bytes));
}

/**
 * The document's text as its format gives it. Markdown stays Markdown (its headings cut the
 * chunks); HTML keeps its text, headings and lists (html-to-text), without links' addresses or
 * images; PDF pages are read with pdf.js (unpdf, no native code) and kept apart by blank lines.
 */
async function extractText(format: DocumentFormat, bytes: Uint8Array): Promise<string> {
  switch (format) {
    case 'markdown':
    case 'text':
      return new TextDecoder('utf-8').decode(bytes);
    case 'html': {
      // Loaded on first use, like pdf.js below: a hub without knowledge bases never needs them.
      const { convert } = await import('html-to-text');
      return convert(new TextDecoder('utf-8').decode(bytes), {
        wordwrap: false,
        selectors: [
          { selector: 'a', options: { ignoreHref: true } },
          { selector: 'img', format: 'skip' },
          { selector: 'h1', options: { uppercase: false } },
          { selector: 'h2', options: { uppercase: false } },
          { selector: 'h3', options: { uppercase: false } },
          { selector: 'h4', options: { uppercase: false } },
          { selector: 'h5', options: { uppercase: false } },
          { selector: 'h6', options: { uppercase: false } },
          { selector: 'table', options: { uppercaseHeaderCells: false } },
        ],
      });
    }
    case 'pdf': {
      try {
        // pdf.js takes the buffer over: hand it a copy.
        const { extractText: extractPdfText, getDocumentProxy } = await import('unpdf');
        const pdf = await getDocumentProxy(new Uint8Array(bytes));
        const { text } = await extractPdfText(pdf, { mergePages: false });
        await pdf.destroy();
        return text.join('\n\n');
      } catch (err) {
        throw new ExtractError(`not a readable PDF: ${(err as Error).message}`);
      }
    }
  }
}
