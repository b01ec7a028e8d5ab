import EmailReplyParser from 'email-reply-parser';

/** How a quote header starts and the verb it ends with, in the languages the reply parser knows. */
const QUOTE_HEADER_START = /^(?:On|Am|Le|El|Em|Il|Op|Den|På|W dniu)\s/;
const QUOTE_HEADER_VERB =
  /\b(?:wrote|schrieb|a écrit|escribió|escreveu|ha scritto|schreef|skrev|napisał)\b.*:\s*$/;
/** A client wraps a long quote header over at most this many lines. */
const QUOTE_HEADER_MAX_LINES = 4;

/**
 * Cuts a quote header that a client wrapped over several lines (Gmail wraps long ones: `Am Di.,
 * 4. März 2025 um 10:15 Uhr schrieb Name <` / `name@example.com>:`) when only the quote or
 * nothing follows it. The reply parser knows these headers on one line; this catches the rest.
 */
function cutWrappedQuoteHeader(text: string): string {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!QUOTE_HEADER_START.test(lines[i]!)) continue;
    for (let end = i; end < Math.min(lines.length, i + QUOTE_HEADER_MAX_LINES); end++) {
      const header = lines.slice(i, end + 1).join(' ');
      if (!QUOTE_HEADER_VERB.test(header)) continue;
      const rest = lines.slice(end + 1);
      if (rest.every((line) => line.trim() === '' || line.startsWith('>')))
        return lines.slice(0, i).join('\n');
    }
  }
  return text;
}

/** Lines a phone client appends under what the person wrote. */
const DEVICE_SIGNATURE =
  /^(?:Sent from my (?:iPhone|iPad|Android|phone|mobile device)|Get Outlook for (?:iOS|Android)|Von meinem (?:iPhone|iPad) gesendet|Envoyé de mon (?:iPhone|iPad))\b.*$/im;

/**
 * What the person wrote in a mail: the quoted previous message (`> ` lines, `On … wrote:`,
 * Outlook's `From:/Sent:` block and `-----Original Message-----`) and the signature (after
 * `-- `, `Sent from my iPhone`) removed, in the languages the reply parser knows.
 */
export function visibleReplyText(text: string): string {
  const normalized = text.replace(/\r\n?/g, '\n').replace(/\u00a0/g, ' ');
  let visible = new EmailReplyParser().read(normalized).getVisibleText();
  visible = cutWrappedQuoteHeader(visible);
  const device = DEVICE_SIGNATURE.exec(visible);
  if (device) visible = visible.slice(0, device.index);
  return visible
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
