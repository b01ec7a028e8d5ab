/**
 * What a bot accepts when its `sessions.allowedFileTypes` is not set: pictures, sound, video,
 * PDF, plain text and office documents. Programs and archives are not in it.
 */
export const DEFAULT_ALLOWED_FILE_TYPES = [
  'image/*',
  'audio/*',
  'video/*',
  'application/pdf',
  'text/plain',
  'application/vnd.openxmlformats-officedocument.*',
  'application/vnd.oasis.opendocument.*',
  'application/x-cfb',
  'application/rtf',
] as const;

/** Bytes looked at to tell a file's type (the first chunk holds them). */
export const SNIFF_BYTES = 64 * 1024;

/** Whether `type` matches one of `patterns` (`image/png`, `image/*`, `application/vnd.foo.*`, `*`). */
export function typeAllowed(type: string, patterns: readonly string[]): boolean {
  return patterns.some(
    (p) => p === '*' || p === type || (p.endsWith('*') && type.startsWith(p.slice(0, -1))),
  );
}

function looksLikeText(bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return false;
  // A multi-byte character cut at the end of the sample is not a reason to call it binary.
  const sample = bytes.length >= SNIFF_BYTES ? bytes.subarray(0, bytes.length - 4) : bytes;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(sample);
    return true;
  } catch {
    return false;
  }
}

/**
 * The type of a file from its first bytes, never from what the sender says: magic numbers
 * (`file-type`), else UTF-8 text without NUL is `text/plain`, else `application/octet-stream`.
 * SVG and HTML are text here: shown as text, never rendered.
 */
export async function sniffType(head: Uint8Array): Promise<string> {
  // Loaded at the first file (~12 MB): a hub nobody sends files to never needs it.
  const { fileTypeFromBuffer } = await import('file-type');
  const found = await fileTypeFromBuffer(head).catch(() => undefined);
  if (found) return found.mime;
  if (head.length > 0 && looksLikeText(head)) return 'text/plain';
  return 'application/octet-stream';
}

/** Images a browser shows inline safely (no script inside): the rest are downloads. */
export const INLINE_IMAGE_TYPES = new Set([
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/avif',
]);

/** A file name fit for a header and a list: no path, no control characters, at most 200 characters. */
export function cleanFileName(name: string | undefined, fallback = 'file'): string {
  const base = (name ?? '').split(/[\\/]/).pop() ?? '';
  const clean = [...base]
    .filter((ch) => ch.charCodeAt(0) >= 0x20 && ch.charCodeAt(0) !== 0x7f && ch !== '"')
    .join('')
    .trim()
    .slice(0, 200);
  return clean === '' || clean === '.' || clean === '..' ? fallback : clean;
}
