import type { Suggestion } from '../../../src/store/records.ts';

/** A line the person can answer with to pick choice n: `2`, `2.`, `2)`, `#2`. */
const NUMBERED_ANSWER = /^\s*#?(\d{1,2})\s*[.)]?\s*$/;

/** The choices as a numbered list, and a line saying how to pick one. */
export function renderSuggestions(suggestions: readonly Suggestion[]): string {
  if (suggestions.length === 0) return '';
  const lines = suggestions.map((s, i) => `${i + 1}. ${s.text}`);
  return `${lines.join('\n')}\n\n(Reply with the number of your choice.)`;
}

/** The suggestion a numbered answer picks, or undefined when the text is not one of the numbers. */
export function chosenSuggestion(
  text: string,
  offered: readonly Suggestion[],
): { index: number; suggestion: Suggestion } | undefined {
  const match = NUMBERED_ANSWER.exec(text);
  if (!match) return undefined;
  const index = Number(match[1]) - 1;
  const suggestion = offered[index];
  return suggestion ? { index, suggestion } : undefined;
}
