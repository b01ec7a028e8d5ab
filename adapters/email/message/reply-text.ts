import EmailReplyParser from 'email-reply-parser';

/**
 * A quote header that a client wrapped over several lines (Gmail wraps long ones: `Am Di., 4.
 * März 2025 um 10:15 Uhr schrieb Name <\nname@example.com>:`), followed by the quote or the end.
 * The reply parser knows these headers on one line; this catches the wrapped ones it leaves.
 */
const WRAPPED_QUOTE_HEADER =
  /^(?:On|Am|Le|El|Em|Il|Op|Den|På|W dniu)\s[^\n]{0,300}(?:\n[^\n]{0,300}){0,3}?(?:wrote|schrieb|a écrit|escribió|escreveu|ha scritto|schreef|skrev|napisał)\s*:[ \t]*(?:\n(?:>[^\n]*|[ \t]*))*$/m;

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
  visible = visible.replace(WRAPPED_QUOTE_HEADER, '');
  const device = DEVICE_SIGNATURE.exec(visible);
  if (device) visible = visible.slice(0, device.index);
  return visible
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
