import { splitText as splitIntoPieces } from '../../src/text.ts';

/** Pieces of a WhatsApp text message (see `src/text.ts`); always at least one, even for empty text. */
export function splitText(text: string, max: number): string[] {
  const pieces = splitIntoPieces(text, max);
  return pieces.length > 0 ? pieces : [text];
}

/** Cuts text to `max` UTF-16 units, ending with an ellipsis when it had to cut. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = max - 1;
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut -= 1;
  return `${text.slice(0, cut).trimEnd()}…`;
}
