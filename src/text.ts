/**
 * Splits text into pieces of at most `max` UTF-16 units whose concatenation is the text (none
 * for empty text). Breaks after a paragraph, a line, a sentence or a space where one falls in
 * the last quarter of a piece, and never inside a surrogate pair. Channels with a message
 * length limit (WhatsApp, Teams) send one message a piece.
 */
export function splitText(text: string, max: number): string[] {
  if (max < 2) throw new RangeError('max must be at least 2');
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > max) {
    let cut = breakPoint(rest, max);
    const code = rest.charCodeAt(cut - 1);
    if (code >= 0xd800 && code <= 0xdbff) cut -= 1; // a high surrogate stays with its pair
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  if (rest.length > 0) pieces.push(rest);
  return pieces;
}

function breakPoint(text: string, max: number): number {
  const window = text.slice(0, max);
  const floor = Math.floor(max * 0.75);
  for (const separator of ['\n\n', '\n', '. ', ' ']) {
    const at = window.lastIndexOf(separator);
    if (at >= floor) return at + separator.length;
  }
  return max;
}

/**
 * At most `maxBytes` of the text's UTF-8, cut on a character boundary. Linear: the bytes are
 * encoded once and the cut moves back over at most three continuation bytes.
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  // A character is at least one byte, so the cut is within the first `maxBytes` UTF-16 units.
  const bytes = Buffer.from(text.slice(0, maxBytes), 'utf8');
  let cut = maxBytes;
  while (cut > 0 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut--; // 10xxxxxx: inside a character
  return bytes.subarray(0, cut).toString('utf8');
}

/**
 * Text no person typed and no store keeps: NUL (PostgreSQL's text and jsonb refuse it) and a
 * UTF-16 surrogate without its pair (not a character; jsonb refuses its escape, UTF-8 has no
 * encoding for it).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what it looks for.
const INVALID_TEXT = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Whether a string holds a NUL or a lone surrogate. Two native scans, not the regex: every string
 * a turn writes passes here, and the regex (its lookarounds) was ~25 times slower on clean text.
 */
export function hasInvalidText(text: string): boolean {
  return !text.isWellFormed() || text.includes('\u0000');
}

/**
 * At most `maxUnits` UTF-16 units of the text, never ending inside a surrogate pair (a pair the
 * cut would split is left out whole): a lone half is no character, and PostgreSQL refuses it.
 */
export function truncateUtf16(text: string, maxUnits: number): string {
  if (text.length <= maxUnits) return text;
  const cut = Math.max(0, maxUnits);
  const last = text.charCodeAt(cut - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? cut - 1 : cut);
}

/** The string with every NUL and lone surrogate replaced by U+FFFD (the replacement character). */
export function cleanText(text: string): string {
  return hasInvalidText(text) ? text.replace(INVALID_TEXT, '\uFFFD') : text;
}

/**
 * The dotted paths of every string (values and object keys) holding invalid text in plain data
 * (objects, arrays, strings): where a boundary that refuses such text says what it refused.
 */
export function invalidTextPaths(value: unknown, path = ''): string[] {
  if (typeof value === 'string') return hasInvalidText(value) ? [path] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => invalidTextPaths(v, join(path, String(i))));
  if (isPlainObject(value))
    return Object.entries(value).flatMap(([k, v]) => [
      ...(hasInvalidText(k) ? [join(path, k)] : []),
      ...invalidTextPaths(v, join(path, k)),
    ]);
  return [];
}

/**
 * Plain data with every string (values and object keys) cleaned as `cleanText` does, and the
 * paths that were cleaned. Unchanged data comes back as the same object.
 */
export function cleanTextDeep<T>(value: T): { value: T; cleaned: string[] } {
  // Every message passes here: the common case (nothing to clean) allocates nothing.
  if (!containsInvalidText(value)) return { value, cleaned: [] };
  return { value: cleanValue(value) as T, cleaned: invalidTextPaths(value) };
}

/** Whether any string in plain data (values and object keys) holds invalid text. */
export function containsInvalidText(value: unknown): boolean {
  if (typeof value === 'string') return hasInvalidText(value);
  if (Array.isArray(value)) {
    for (const item of value) if (containsInvalidText(item)) return true;
    return false;
  }
  if (isPlainObject(value)) {
    for (const key in value) if (hasInvalidText(key) || containsInvalidText(value[key])) return true;
  }
  return false;
}

function cleanValue(value: unknown): unknown {
  if (typeof value === 'string') return cleanText(value);
  if (Array.isArray(value)) return value.map(cleanValue);
  if (isPlainObject(value))
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [cleanText(k), cleanValue(v)]));
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key);
