/**
 * Splits text into pieces of at most `max` UTF-16 units whose concatenation is the text (none
 * for empty text). Breaks after a paragraph, a line, a sentence or a space where one falls in
 * the last quarter of a piece, and never inside a surrogate pair. Channels with a message
 * length limit (WhatsApp, Teams) send one message a piece.
 */
export function splitText(text: string, max: number): string[] {
  if (max < 2) throw new RangeError('max must be at least 2');
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > max) {
    let cut = breakPoint(rest, max);
    const code = rest.charCodeAt(cut - 1);
    if (code >= 0xd800 && code <= 0xdbff) cut -= 1; // a high surrogate stays with its pair
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  if (rest.length > 0) pieces.push(rest);
  return pieces;
}

function breakPoint(text: string, max: number): number {
  const window = text.slice(0, max);
  const floor = Math.floor(max * 0.75);
  for (const separator of ['\n\n', '\n', '. ', ' ']) {
    const at = window.lastIndexOf(separator);
    if (at >= floor) return at + separator.length;
  }
  return max;
}
