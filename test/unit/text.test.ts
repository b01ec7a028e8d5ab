import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  cleanText,
  cleanTextDeep,
  containsInvalidText,
  hasInvalidText,
  invalidTextPaths,
  truncateUtf8,
  truncateUtf16,
} from '../../src/text.ts';

describe('invalid text: NUL and lone surrogates', () => {
  it('finds NUL, a lone high and a lone low surrogate, and leaves pairs and other controls alone', () => {
    expect(hasInvalidText('a\u0000b')).toBe(true);
    expect(hasInvalidText('a\uD83D')).toBe(true);
    expect(hasInvalidText('\uDE00a')).toBe(true);
    expect(hasInvalidText('\uDE00\uD83D')).toBe(true); // reversed: two lone halves
    expect(hasInvalidText('ok \uD83D\uDE00 \t\n\u0001 é')).toBe(false);
    // The regex is global: repeated calls must not depend on a previous one.
    expect([hasInvalidText('\u0000'), hasInvalidText('\u0000')]).toEqual([true, true]);
  });

  it('replaces each with U+FFFD', () => {
    expect(cleanText('nul\u0000 high\uD83D low\uDE00 pair\uD83D\uDE00')).toBe(
      'nul\uFFFD high\uFFFD low\uFFFD pair\uD83D\uDE00',
    );
    expect(cleanText('\uDE00\uD83D')).toBe('\uFFFD\uFFFD');
  });

  it('cleaned text is always well-formed and keeps its length; clean text is unchanged', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const cleaned = cleanText(s);
        expect(hasInvalidText(cleaned)).toBe(false);
        expect(cleaned.length).toBe(s.length);
        expect(Buffer.from(cleaned, 'utf8').toString('utf8')).toBe(cleaned);
        if (!hasInvalidText(s)) expect(cleaned).toBe(s);
      }),
    );
  });

  it('walks plain data: values and keys, naming each path', () => {
    const data = {
      text: 'a\u0000',
      from: { id: 'x', name: '\uD800' },
      list: ['ok', 'b\uDFFF'],
      n: 1,
      k: { 'k\u0000': 1 },
    };
    expect(invalidTextPaths(data)).toEqual(['text', 'from.name', 'list.1', 'k.k\u0000']);
    const { value, cleaned } = cleanTextDeep(data);
    expect(cleaned).toHaveLength(4);
    expect(value).toEqual({
      text: 'a\uFFFD',
      from: { id: 'x', name: '\uFFFD' },
      list: ['ok', 'b\uFFFD'],
      n: 1,
      k: { 'k\uFFFD': 1 },
    });
    expect(containsInvalidText(data)).toBe(true);
    expect(containsInvalidText(value)).toBe(false);
    const clean = { a: 'b' };
    expect(cleanTextDeep(clean).value).toBe(clean);
  });
});

describe('truncateUtf8', () => {
  it('keeps text within the limit and cuts longer text on a character boundary', () => {
    expect(truncateUtf8('héllo', 6)).toBe('héllo');
    expect(truncateUtf8('héllo', 2)).toBe('h'); // é is two bytes
    expect(truncateUtf8('a😀b', 4)).toBe('a'); // the emoji is four bytes
    expect(truncateUtf8('a😀b', 5)).toBe('a😀');
    expect(truncateUtf8('abc', 0)).toBe('');
  });

  it('keeps a U+FFFD that the text has at the cut', () => {
    expect(truncateUtf8('ab\uFFFD\uFFFDcd', 8)).toBe('ab\uFFFD\uFFFD');
  });

  it('is always a prefix of the text within the limit, and the longest such prefix', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.nat(64), (text, max) => {
        const cut = truncateUtf8(text, max);
        expect(text.startsWith(cut)).toBe(true);
        expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(max);
        const next = text.codePointAt(cut.length);
        if (next !== undefined)
          expect(Buffer.byteLength(cut) + Buffer.byteLength(String.fromCodePoint(next))).toBeGreaterThan(max);
      }),
    );
  });
});

describe('truncateUtf16', () => {
  it('cuts at the limit, but never inside a surrogate pair', () => {
    expect(truncateUtf16('abc', 5)).toBe('abc');
    expect(truncateUtf16('abc', 2)).toBe('ab');
    expect(truncateUtf16('a😀b', 2)).toBe('a'); // the cut would fall between the emoji's halves
    expect(truncateUtf16('a😀b', 3)).toBe('a😀');
    expect(truncateUtf16('😀', 0)).toBe('');
  });

  it('is always a well-formed prefix of well-formed text, at most one unit short of the limit', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.nat(64), (text, max) => {
        const cut = truncateUtf16(text, max);
        expect(text.startsWith(cut)).toBe(true);
        expect(cut.isWellFormed()).toBe(true);
        expect(cut.length).toBeLessThanOrEqual(max);
        expect(cut.length).toBeGreaterThanOrEqual(Math.min(text.length, max - 1));
      }),
    );
  });
});
