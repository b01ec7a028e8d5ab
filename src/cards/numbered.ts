/**
 * Numbered choices, for every channel that shows a card's buttons or a reply's suggestions as
 * text (email, WhatsApp Web, WhatsApp outside its 24-hour window): the choices are written as
 * `1. Buy it`, and a message that is only a number ("2", "2.", "2)", "#2") answers with the value
 * of that choice, as pressing the button would. Which choices a number refers to (the latest
 * reply's) is the channel's to remember; reading and writing the numbers is here, once.
 */

/** A line the person can answer with to pick choice n: `2`, `2.`, `2)`, `#2`. */
const NUMBERED_ANSWER = /^\s*#?(\d{1,2})\s*[.)]?\s*$/;

/** The number a message that is only a number names (1-based), else undefined. */
export function numberedAnswer(text: string | undefined): number | undefined {
  const match = NUMBERED_ANSWER.exec(text ?? '');
  return match ? Number(match[1]) : undefined;
}

/** The choice a numbered answer picks from `choices` (in the order they were numbered), if any. */
export function chooseNumbered<T>(
  text: string | undefined,
  choices: readonly T[],
): { index: number; choice: T } | undefined {
  const n = numberedAnswer(text);
  if (n === undefined || n < 1) return undefined;
  const choice = choices[n - 1];
  return choice === undefined ? undefined : { index: n - 1, choice };
}

/** One numbered line: `2. Pro`. */
export const numberedLine = (n: number, title: string): string => `${n}. ${title}`;

/** The choices numbered one per line, from `start`: `1. Yes`, `2. No`. */
export function numberedLines(choices: readonly { title: string }[], start = 1): string {
  return choices.map((c, i) => numberedLine(start + i, c.title)).join('\n');
}
