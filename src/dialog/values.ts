import { setOwn } from '../own.ts';
import { truncateUtf16 } from '../text.ts';
import { DialogRuntimeError } from './errors.ts';

/**
 * What a script variable can hold. Plain JSON on purpose: locals are saved with the session
 * while a script waits at HEAR, and session variables and bot memory are JSON columns.
 * `null` is BASIC's Empty: it prints as "" and equals "" and 0.
 */
export type Value = null | boolean | number | string | Value[] | { [key: string]: Value };

const NUMERIC = /^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$/;

export function isList(v: Value): v is Value[] {
  return Array.isArray(v);
}

export function isRecord(v: Value): v is { [key: string]: Value } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isNumericText(v: string): boolean {
  return NUMERIC.test(v);
}

/** Numbers print without float noise: 0.1 + 0.2 is "0.3". */
export function formatNumber(n: number): string {
  if (Number.isInteger(n)) return String(n);
  return String(Number(n.toPrecision(12)));
}

export function toText(v: Value): string {
  if (v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) return v.map(toText).join(', ');
  return JSON.stringify(v);
}

export function truthy(v: Value): boolean {
  if (v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return v !== '';
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/** A number from a number, a numeric text, a boolean or Empty; anything else is a runtime error. */
export function toNumber(v: Value, what = 'a number'): number {
  if (typeof v === 'number') return v;
  if (v === null || v === '') return 0;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string' && isNumericText(v)) return Number(v);
  throw new DialogRuntimeError(`expected ${what}, got ${describe(v)}`);
}

export function toInteger(v: Value, what = 'a whole number'): number {
  const n = toNumber(v, what);
  if (!Number.isInteger(n)) throw new DialogRuntimeError(`expected ${what}, got ${formatNumber(n)}`);
  return n;
}

/** A short, safe rendering of a value for error messages. */
export function describe(v: Value): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${truncateUtf16(v, 40)}…` : v);
  if (v === null) return 'an empty value';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return 'a record';
  return toText(v);
}

function asComparableNumber(v: Value): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && isNumericText(v)) return Number(v);
  if (v === null) return 0;
  return undefined;
}

/** BASIC equality: Empty equals "" and 0, numbers equal their numeric text, texts compare exactly. */
export function equals(a: Value, b: Value): boolean {
  if (a === null || b === null) {
    const other = a === null ? b : a;
    return other === null || other === '' || other === 0 || other === false;
  }
  if (typeof a === 'number' || typeof b === 'number') {
    const x = asComparableNumber(a);
    const y = asComparableNumber(b);
    return x !== undefined && y !== undefined && x === y;
  }
  if (typeof a !== typeof b) return false;
  if (typeof a === 'object') return JSON.stringify(a) === JSON.stringify(b);
  return a === b;
}

/** Ordering for < > <= >=: numbers (and numeric texts against numbers) by value, texts by code point. */
export function compare(a: Value, b: Value): number {
  if (typeof a === 'number' || typeof b === 'number') {
    const x = asComparableNumber(a);
    const y = asComparableNumber(b);
    if (x !== undefined && y !== undefined) return x - y;
  } else if ((a === null || typeof a === 'string') && (b === null || typeof b === 'string')) {
    const s = a ?? '';
    const t = b ?? '';
    return s < t ? -1 : s > t ? 1 : 0;
  } else if (typeof a === 'boolean' && typeof b === 'boolean') {
    return Number(a) - Number(b);
  }
  throw new DialogRuntimeError(`cannot compare ${describe(a)} with ${describe(b)}`);
}

/**
 * `+`: two numbers add; with a text it concatenates (a text that looks like a number too:
 * `HEAR x AS NUMBER` or VAL() make numbers); two lists join.
 */
export function plus(a: Value, b: Value): Value {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (typeof a === 'number' && b === null) return a;
  if (a === null && typeof b === 'number') return b;
  if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b];
  if (typeof a === 'string' || typeof b === 'string' || a === null || b === null)
    return toText(a) + toText(b);
  throw new DialogRuntimeError(`cannot add ${describe(a)} and ${describe(b)}`);
}

/** Converts what JSON gives back (bot memory, variables set by TypeScript code) into a Value. */
export function fromJson(v: unknown): Value {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (Array.isArray(v)) return v.map(fromJson);
  if (typeof v === 'object') {
    const out: { [key: string]: Value } = {};
    // A `__proto__` key from JSON stays an item of the record, never its prototype.
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) setOwn(out, k, fromJson(x));
    return out;
  }
  return String(v);
}
