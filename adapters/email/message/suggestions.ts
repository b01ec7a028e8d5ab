import { chooseNumbered, numberedLines } from '../../../src/cards/numbered.ts';
import type { Suggestion } from '../../../src/store/records.ts';

/** The choices as a numbered list, and a line saying how to pick one. */
export function renderSuggestions(suggestions: readonly Suggestion[]): string {
  if (suggestions.length === 0) return '';
  const lines = numberedLines(suggestions.map((s) => ({ title: s.text })));
  return `${lines}\n\n(Reply with the number of your choice.)`;
}

/** The suggestion a numbered answer picks, or undefined when the text is not one of the numbers. */
export function chosenSuggestion(
  text: string,
  offered: readonly Suggestion[],
): { index: number; suggestion: Suggestion } | undefined {
  const picked = chooseNumbered(text, offered);
  return picked && { index: picked.index, suggestion: picked.choice };
}
