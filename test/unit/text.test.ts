import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  cleanText,
  cleanTextDeep,
  containsInvalidText,
  hasInvalidText,
  invalidTextPaths,
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
