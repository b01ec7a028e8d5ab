import { describe, expect, it } from 'vitest';
import { isRatingAsk, parseRating, RATING_SUGGESTIONS } from '../../src/lifecycle/rating.ts';

describe('rating answers', () => {
  it('reads a digit, a row of stars or "n stars" as a score', () => {
    for (const [text, score] of [
      ['4', 4],
      [' 4. ', 4],
      ['#2', 2],
      ['5/5', 5],
      ['3 stars', 3],
      ['1 Star', 1],
      ['★★★', 3],
      ['⭐⭐⭐⭐⭐', 5],
      ['⭐️⭐️', 2],
    ] as const)
      expect(parseRating(text), text).toBe(score);
  });

  it('anything else is not a rating', () => {
    for (const text of ['0', '6', '45', '★★★★★★', 'great', '4 is my order number', '', '12.5'])
      expect(parseRating(text), text).toBeUndefined();
  });

  it('plain asterisks are not stars (markdown, a redacted word, a footnote), alone or mixed with stars', () => {
    for (const text of ['*', '**', '***', '*****', '★★*', '*⭐'])
      expect(parseRating(text), text).toBeUndefined();
  });

  it('knows the five stars of an ask, and only those', () => {
    expect(isRatingAsk(RATING_SUGGESTIONS)).toBe(true);
    expect(isRatingAsk(RATING_SUGGESTIONS.slice(0, 4))).toBe(false);
    expect(isRatingAsk([...RATING_SUGGESTIONS].reverse())).toBe(false);
    expect(isRatingAsk(RATING_SUGGESTIONS.map((s) => ({ text: s.text })))).toBe(false);
    expect(isRatingAsk(undefined)).toBe(false);
  });
});
