import type { Suggestion } from '../store/records.ts';

/** What the hub says when a rating answered its ask, unless the bot says otherwise. */
export const DEFAULT_RATING_THANKS = 'Thank you for your rating!';
/** What the hub asks at a conversation's end, unless the bot says otherwise. */
export const DEFAULT_RATING_QUESTION =
  'How would you rate this conversation? 1 star is poor, 5 stars excellent.';

/** The scores a person can give, lowest first. */
export const RATING_SCORES = [1, 2, 3, 4, 5] as const;

/**
 * The stars a rating ask offers (`ASK RATING` and the hub's own ask at a conversation's end):
 * one suggestion per score, its label that many stars, its value the digit. Channels recognise
 * these (`isRatingAsk`) and show them their own way; what comes back is the digit.
 */
export const RATING_SUGGESTIONS: readonly Suggestion[] = RATING_SCORES.map((n) => ({
  text: '★'.repeat(n),
  value: String(n),
}));

/** Whether a reply's suggestions are a rating ask: exactly the five stars, in order. */
export function isRatingAsk(suggestions: readonly Suggestion[] | undefined): boolean {
  if (!suggestions || suggestions.length !== RATING_SUGGESTIONS.length) return false;
  return suggestions.every(
    (s, i) => s.value === RATING_SUGGESTIONS[i]!.value && s.text === RATING_SUGGESTIONS[i]!.text,
  );
}

/**
 * A digit (`4`, `4.`, `#4`, `4/5`), a row of stars (`★★★★`, `⭐⭐⭐⭐`, what a keyboard button
 * that shows the stars sends back) or `4 stars`: what people and buttons answer a rating ask
 * with. Anything else is not a rating (it is a new message).
 */
const DIGIT = /^#?([1-5])\s*(?:[.)!]|\/\s*5|stars?)?$/i;
// Star characters only: plain asterisks are markdown emphasis, a redacted word or a footnote
// far more often than a rating, and no channel turns a star button into them.
const STARS = /^(?:★|⭐){1,5}$/u;

/** The score a message gives, or undefined when it is not a rating. */
export function parseRating(text: string): number | undefined {
  const t = text.trim().replace(/\uFE0F/g, '');
  const digit = DIGIT.exec(t);
  if (digit) return Number(digit[1]);
  if (STARS.test(t)) return [...t].length;
  return undefined;
}
