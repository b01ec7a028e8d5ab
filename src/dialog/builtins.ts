import { DialogRuntimeError } from './errors.ts';
import { describe, isList, isNumericText, toInteger, toNumber, toText, type Value } from './values.ts';

/** What a built-in function may make: the limit of one text (the bot's `dialog.maxVariableBytes`). */
export interface BuiltinLimits {
  maxTextLength: number;
}

interface Builtin {
  min: number;
  max: number;
  fn: (args: Value[], limits: BuiltinLimits) => Value;
}

/** The error of a text past the limit, as the interpreter words it for any value it checks. */
const textTooLong = (max: number) => new DialogRuntimeError(`a text grew beyond the limit of ${max} bytes`);

/**
 * `pieces` joined with `separator`, refused before it is made when it would be longer than the
 * limit: REPLACE and JOIN multiply a text (the separator goes between every two pieces), so the
 * person's 8,000 characters on both sides would make 64 million before any check after the call.
 */
function joinWithin(pieces: string[], separator: string, limits: BuiltinLimits): string {
  let length = separator.length * Math.max(0, pieces.length - 1);
  for (const p of pieces) length += p.length;
  if (length > limits.maxTextLength) throw textTooLong(limits.maxTextLength);
  return pieces.join(separator);
}

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

const text = (v: Value) => toText(v);

/**
 * Text functions count characters (code points), as `LEN` and `text[i]` do: a UTF-16 cut could
 * split an emoji's surrogate pair, and a lone half is no character (PostgreSQL refuses to store
 * it). Text without surrogates (most) takes the plain string operations.
 */
const SURROGATE = /[\uD800-\uDFFF]/;

/** `String.slice` counted in characters. */
function sliceChars(s: string, start: number, end?: number): string {
  if (!SURROGATE.test(s)) return s.slice(start, end);
  return Array.from(s).slice(start, end).join('');
}

/** The characters of a text, one string each. */
const chars = (s: string): string[] => Array.from(s);

function isoSeconds(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  // Half away from zero, with the binary noise of e.g. 1.005 * 100 taken out first.
  return (Math.sign(n) * Math.round(Number((Math.abs(n) * f).toPrecision(15)))) / f;
}

/** `FORMAT(1234.5, "#,##0.00")` → "1,234.50"; `"0%"`, `"0.0 EUR"`, `"$#,##0"` work too. */
function formatNumberPattern(n: number, pattern: string): string {
  const start = pattern.search(/[0#]/);
  if (start < 0) return pattern;
  let end = start;
  while (end < pattern.length && /[0#,.]/.test(pattern[end]!)) end++;
  const prefix = pattern.slice(0, start);
  const suffix = pattern.slice(end);
  const body = pattern.slice(start, end);
  let value = n;
  if (suffix.includes('%')) value *= 100;
  const [intPart = '', fracPart = ''] = body.split('.');
  const minFrac = (fracPart.match(/0/g) ?? []).length;
  const maxFrac = minFrac + (fracPart.match(/#/g) ?? []).length;
  const minInt = (intPart.match(/0/g) ?? []).length;
  const grouped = intPart.includes(',');
  const r = round(Math.abs(value), maxFrac);
  let [whole = '0', frac = ''] = r.toFixed(maxFrac).split('.');
  while (frac.length > minFrac && frac.endsWith('0')) frac = frac.slice(0, -1);
  whole = whole.replace(/^0+(?=\d)/, '');
  if (whole === '0' && minInt === 0) whole = '';
  whole = whole.padStart(minInt, '0');
  if (grouped) whole = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const sign = value < 0 && r !== 0 ? '-' : '';
  return `${sign}${prefix}${whole}${frac ? `.${frac}` : ''}${suffix}`;
}

function toDate(v: Value): Date | undefined {
  if (typeof v !== 'string') return undefined;
  if (!/^\d{4}-\d{2}-\d{2}/.test(v)) return undefined;
  const d = new Date(v.length === 10 ? `${v}T00:00:00Z` : v);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** `FORMAT(NOW(), "dd/mm/yyyy hh:nn")`: yyyy yy mmmm mmm mm dd hh nn ss, in UTC; mm after hh is minutes. */
function formatDatePattern(d: Date, pattern: string): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  let out = '';
  let lastWasHour = false;
  const re = /yyyy|yy|mmmm|mmm|mm|dd|hh|nn|ss/iy;
  let i = 0;
  while (i < pattern.length) {
    re.lastIndex = i;
    const m = re.exec(pattern);
    if (!m) {
      out += pattern[i];
      if (/[A-Za-z]/.test(pattern[i]!)) lastWasHour = false;
      i++;
      continue;
    }
    const token = m[0].toLowerCase();
    switch (token) {
      case 'yyyy':
        out += String(d.getUTCFullYear());
        break;
      case 'yy':
        out += pad(d.getUTCFullYear() % 100);
        break;
      case 'mmmm':
        out += MONTHS[d.getUTCMonth()];
        break;
      case 'mmm':
        out += MONTHS[d.getUTCMonth()]!.slice(0, 3);
        break;
      case 'mm':
        out += lastWasHour ? pad(d.getUTCMinutes()) : pad(d.getUTCMonth() + 1);
        break;
      case 'dd':
        out += pad(d.getUTCDate());
        break;
      case 'hh':
        out += pad(d.getUTCHours());
        break;
      case 'nn':
        out += pad(d.getUTCMinutes());
        break;
      case 'ss':
        out += pad(d.getUTCSeconds());
        break;
    }
    lastWasHour = token === 'hh';
    i += m[0].length;
  }
  return out;
}

function format(args: Value[]): Value {
  const [value = null, pattern = null] = args;
  if (pattern === null) return text(value);
  const p = text(pattern);
  if (typeof value === 'number' || (typeof value === 'string' && isNumericText(value)))
    return formatNumberPattern(toNumber(value), p);
  const d = toDate(value);
  if (d) return formatDatePattern(d, p);
  throw new DialogRuntimeError(`FORMAT needs a number or a date, got ${describe(value)}`);
}

function instr(args: Value[]): Value {
  const [start, haystack, needle] =
    args.length === 3
      ? [toInteger(args[0]!), text(args[1]!), text(args[2]!)]
      : [1, text(args[0]!), text(args[1]!)];
  if (start < 1) throw new DialogRuntimeError('INSTR starts at position 1 or later');
  if (!SURROGATE.test(haystack)) return haystack.indexOf(needle, start - 1) + 1;
  // Positions in characters, as MID takes them.
  const from = sliceChars(haystack, 0, start - 1).length;
  const at = haystack.indexOf(needle, from);
  return at < 0 ? 0 : chars(haystack.slice(0, at)).length + 1;
}

function mid(args: Value[]): Value {
  const s = text(args[0]!);
  const start = toInteger(args[1]!);
  if (start < 1) throw new DialogRuntimeError('MID starts at position 1 or later');
  const length = args.length > 2 ? toInteger(args[2]!) : undefined;
  if (length !== undefined && length < 0) throw new DialogRuntimeError('MID cannot take a negative length');
  return length === undefined ? sliceChars(s, start - 1) : sliceChars(s, start - 1, start - 1 + length);
}

/** `String.split`, where an empty separator splits into characters (not UTF-16 units). */
function splitText(s: string, separator: string): string[] {
  return separator === '' ? chars(s) : s.split(separator);
}

function len(v: Value): number {
  if (v === null) return 0;
  if (isList(v)) return v.length;
  if (typeof v === 'object') return Object.keys(v).length;
  return chars(text(v)).length;
}

function val(v: Value): number {
  if (typeof v === 'number') return v;
  const m = /^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?/.exec(text(v));
  return m ? Number(m[0]) : 0;
}

function count(n: number, what: string): number {
  if (n < 0) throw new DialogRuntimeError(`${what} cannot take a negative count`);
  return n;
}

/** Every built-in function, by upper-case name, with how many arguments it takes. */
export const BUILTINS: ReadonlyMap<string, Builtin> = new Map<string, Builtin>([
  ['NOW', { min: 0, max: 0, fn: () => isoSeconds(new Date()) }],
  ['TODAY', { min: 0, max: 0, fn: () => new Date().toISOString().slice(0, 10) }],
  ['LEN', { min: 1, max: 1, fn: ([v]) => len(v!) }],
  ['UCASE', { min: 1, max: 1, fn: ([v]) => text(v!).toUpperCase() }],
  ['LCASE', { min: 1, max: 1, fn: ([v]) => text(v!).toLowerCase() }],
  ['TRIM', { min: 1, max: 1, fn: ([v]) => text(v!).trim() }],
  ['LTRIM', { min: 1, max: 1, fn: ([v]) => text(v!).trimStart() }],
  ['RTRIM', { min: 1, max: 1, fn: ([v]) => text(v!).trimEnd() }],
  ['LEFT', { min: 2, max: 2, fn: ([s, n]) => sliceChars(text(s!), 0, count(toInteger(n!), 'LEFT')) }],
  [
    'RIGHT',
    {
      min: 2,
      max: 2,
      fn: ([s, n]) => {
        const k = count(toInteger(n!), 'RIGHT');
        return k === 0 ? '' : sliceChars(text(s!), -k);
      },
    },
  ],
  ['MID', { min: 2, max: 3, fn: mid }],
  ['INSTR', { min: 2, max: 3, fn: instr }],
  [
    'REPLACE',
    {
      min: 3,
      max: 3,
      fn: ([s, a, b], limits) => joinWithin(splitText(text(s!), text(a!)), text(b!), limits),
    },
  ],
  ['VAL', { min: 1, max: 1, fn: ([v]) => val(v!) }],
  ['STR', { min: 1, max: 1, fn: ([v]) => text(v!) }],
  ['ROUND', { min: 1, max: 2, fn: ([n, d]) => round(toNumber(n!), d === undefined ? 0 : toInteger(d)) }],
  ['FORMAT', { min: 1, max: 2, fn: format }],
  ['ABS', { min: 1, max: 1, fn: ([n]) => Math.abs(toNumber(n!)) }],
  ['INT', { min: 1, max: 1, fn: ([n]) => Math.floor(toNumber(n!)) }],
  [
    'ISNUMERIC',
    { min: 1, max: 1, fn: ([v]) => typeof v === 'number' || (typeof v === 'string' && isNumericText(v)) },
  ],
  [
    'ISEMPTY',
    { min: 1, max: 1, fn: ([v]) => v === null || v === '' || (isList(v!) && (v as Value[]).length === 0) },
  ],
  ['SPLIT', { min: 2, max: 2, fn: ([s, sep]) => (text(s!) === '' ? [] : splitText(text(s!), text(sep!))) }],
  [
    'JOIN',
    {
      min: 1,
      max: 2,
      fn: ([list, sep], limits) => {
        if (!isList(list!)) throw new DialogRuntimeError(`JOIN needs a list, got ${describe(list!)}`);
        return joinWithin(list.map(text), sep === undefined ? ', ' : text(sep), limits);
      },
    },
  ],
  ['ARRAY', { min: 0, max: 1000, fn: (args) => args }],
  [
    'UBOUND',
    {
      min: 1,
      max: 1,
      fn: ([list]) => {
        if (!isList(list!)) throw new DialogRuntimeError(`UBOUND needs a list, got ${describe(list!)}`);
        return list.length - 1;
      },
    },
  ],
]);
