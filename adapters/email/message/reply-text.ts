import vm from 'node:vm';
import EmailReplyParser from 'email-reply-parser';

/** How a quote header starts and the verb it ends with, in the languages the reply parser knows. */
const QUOTE_HEADER_START = /^(?:On|Am|Le|El|Em|Il|Op|Den|På|W dniu)\s/;
const QUOTE_HEADER_VERB = /\b(?:wrote|schrieb|a écrit|escribió|escreveu|ha scritto|schreef|skrev|napisał)\b/;
/** A client wraps a long quote header over at most this many lines. */
const QUOTE_HEADER_MAX_LINES = 4;
/**
 * The longest quote header looked at, in characters (its wrapped lines joined). A real one — a
 * date, a name and an address — is well under 200; a longer candidate is text the person wrote.
 */
const QUOTE_HEADER_MAX_CHARS = 500;

/**
 * Whether a line (or wrapped lines joined) is a quote header: it ends with a colon and names the
 * verb before it. The colon is found first and the verb looked for in what precedes it, so the
 * test reads the line once (a verb followed by `.*:` would go back over the rest of the line
 * from every verb: quadratic on a long line of verbs without a colon).
 */
function isQuoteHeader(header: string): boolean {
  const trimmed = header.trimEnd();
  return trimmed.endsWith(':') && QUOTE_HEADER_VERB.test(trimmed.slice(0, -1));
}

/** Whether every line from `from` on is blank or quoted (`>`). */
function onlyQuoteFrom(lines: readonly string[], from: number): boolean {
  for (let i = from; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() !== '' && !line.startsWith('>')) return false;
  }
  return true;
}

/**
 * Cuts a quote header that a client wrapped over several lines (Gmail wraps long ones: `Am Di.,
 * 4. März 2025 um 10:15 Uhr schrieb Name <` / `name@example.com>:`) when only the quote or
 * nothing follows it. The reply parser knows these headers on one line; this catches the rest.
 * Linear in the text: each candidate is at most QUOTE_HEADER_MAX_CHARS long, and the lines after
 * a header are read only up to the first that is neither blank nor quoted.
 */
function cutWrappedQuoteHeader(text: string): string {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!QUOTE_HEADER_START.test(lines[i]!)) continue;
    let header = '';
    for (let end = i; end < Math.min(lines.length, i + QUOTE_HEADER_MAX_LINES); end++) {
      header = end === i ? lines[end]! : `${header} ${lines[end]}`;
      if (header.length > QUOTE_HEADER_MAX_CHARS) break;
      if (isQuoteHeader(header) && onlyQuoteFrom(lines, end + 1)) return lines.slice(0, i).join('\n');
    }
  }
  return text;
}

/** Lines a phone client appends under what the person wrote. */
const DEVICE_SIGNATURE =
  /^(?:Sent from my (?:iPhone|iPad|Android|phone|mobile device)|Get Outlook for (?:iOS|Android)|Von meinem (?:iPhone|iPad) gesendet|Envoyé de mon (?:iPhone|iPad))\b.*$/im;

/** Line ends as `\n`, a no-break space as a space. */
const normalize = (text: string) => text.replace(/\r\n?/g, '\n').replace(/\u00a0/g, ' ');

/** Without trailing spaces, at most one blank line in a row, trimmed. */
function tidy(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/**
 * What the person wrote in a mail: the quoted previous message (`> ` lines, `On … wrote:`,
 * Outlook's `From:/Sent:` block and `-----Original Message-----`) and the signature (after
 * `-- `, `Sent from my iPhone`) removed, in the languages the reply parser knows.
 *
 * Not bounded in time: email-reply-parser's expressions backtrack (it wants the optional native
 * `re2`, which the hub does not install), some quadratically or worse on crafted text (a body of
 * 64 KB of blank lines takes over a minute). Mail goes through `visibleReplyTextWithin`.
 */
export function visibleReplyText(text: string): string {
  let visible = new EmailReplyParser().read(normalize(text)).getVisibleText();
  visible = cutWrappedQuoteHeader(visible);
  const device = DEVICE_SIGNATURE.exec(visible);
  if (device) visible = visible.slice(0, device.index);
  return tidy(visible);
}

/**
 * A context that holds nothing but the function to call: a script run in it with a `timeout` is
 * stopped by V8 when the time is up, in the middle of a regular expression too.
 */
const deadlineContext = vm.createContext({ call: undefined as (() => string) | undefined });
const CALL = new vm.Script('call()');

/**
 * `visibleReplyText`, given at most `timeoutMs`: past that it is stopped (the event loop is the
 * gateway's too) and the whole text is what the person wrote, tidied (`timedOut`). Nothing is
 * left half done: the parser keeps no state between calls.
 */
export function visibleReplyTextWithin(text: string, timeoutMs: number): { text: string; timedOut: boolean } {
  deadlineContext.call = () => visibleReplyText(text);
  try {
    return { text: CALL.runInContext(deadlineContext, { timeout: timeoutMs }) as string, timedOut: false };
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw err;
    return { text: tidy(normalize(text)), timedOut: true };
  } finally {
    deadlineContext.call = undefined;
  }
}
