import { DialogSyntaxError } from './errors.ts';

export type TokenKind = 'ident' | 'number' | 'string' | 'op' | 'newline' | 'eof';

export interface Token {
  kind: TokenKind;
  /** The text as written; for strings, the decoded content; for identifiers, as written. */
  text: string;
  /** Identifiers upper-cased (keywords are case-insensitive); other tokens as `text`. */
  upper: string;
  line: number;
  column: number;
}

const TWO_CHAR_OPS = new Set(['<>', '<=', '>=']);
const ONE_CHAR_OPS = new Set(['=', '<', '>', '+', '-', '*', '/', '\\', '^', '&', '(', ')', '[', ']', ',']);

const isDigit = (c: string) => c >= '0' && c <= '9';
const isIdentStart = (c: string) => /[A-Za-z_]/.test(c);
const isIdentPart = (c: string) => /[A-Za-z0-9_]/.test(c);

/**
 * Splits a script into tokens with line and column. `'` and `REM` start comments; a `_` at the
 * end of a line continues the statement on the next one.
 */
export function tokenize(source: string, file: string): { tokens: Token[]; errors: DialogSyntaxError[] } {
  const tokens: Token[] = [];
  const errors: DialogSyntaxError[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const fail = (message: string, at = i) => {
    errors.push(new DialogSyntaxError(file, line, at - lineStart + 1, message));
  };
  const push = (kind: TokenKind, text: string, start: number, upper = text) =>
    tokens.push({ kind, text, upper, line, column: start - lineStart + 1 });
  const atStatementStart = () => {
    const last = tokens.at(-1);
    return !last || last.kind === 'newline';
  };
  const skipToEol = () => {
    while (i < source.length && source[i] !== '\n' && source[i] !== '\r') i++;
  };

  while (i < source.length) {
    const c = source[i]!;
    if (c === '\r' || c === '\n') {
      push('newline', '\n', i);
      i += c === '\r' && source[i + 1] === '\n' ? 2 : 1;
      line++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\uFEFF') {
      i++;
      continue;
    }
    if (c === "'") {
      skipToEol();
      continue;
    }
    if (c === '_' && /^_[ \t]*(\r?\n|\r)/.test(source.slice(i, i + 80))) {
      // Line continuation: the statement goes on.
      i++;
      while (source[i] === ' ' || source[i] === '\t') i++;
      i += source[i] === '\r' && source[i + 1] === '\n' ? 2 : 1;
      line++;
      lineStart = i;
      continue;
    }
    if (c === '"') {
      const start = i;
      let text = '';
      i++;
      for (;;) {
        if (i >= source.length || source[i] === '\n' || source[i] === '\r') {
          fail('this text has no closing quote (")', start);
          break;
        }
        if (source[i] === '"') {
          if (source[i + 1] === '"') {
            text += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        text += source[i];
        i++;
      }
      push('string', text, start);
      continue;
    }
    if (isDigit(c) || (c === '.' && isDigit(source[i + 1] ?? ''))) {
      const start = i;
      while (isDigit(source[i] ?? '')) i++;
      if (source[i] === '.' && isDigit(source[i + 1] ?? '')) {
        i++;
        while (isDigit(source[i] ?? '')) i++;
      }
      if (isIdentStart(source[i] ?? '')) {
        fail(`"${source.slice(start, i + 1)}" is not a number`, start);
        while (isIdentPart(source[i] ?? '')) i++;
      }
      push('number', source.slice(start, i), start);
      continue;
    }
    if (isIdentStart(c)) {
      const start = i;
      while (isIdentPart(source[i] ?? '')) i++;
      const text = source.slice(start, i);
      const upper = text.toUpperCase();
      if (upper === 'REM' && atStatementStart()) {
        skipToEol();
        continue;
      }
      push('ident', text, start, upper);
      continue;
    }
    const two = source.slice(i, i + 2);
    if (TWO_CHAR_OPS.has(two)) {
      push('op', two, i);
      i += 2;
      continue;
    }
    if (ONE_CHAR_OPS.has(c)) {
      push('op', c, i);
      i++;
      continue;
    }
    fail(`unexpected character "${c}"`);
    i++;
  }
  push('newline', '\n', i);
  tokens.push({ kind: 'eof', text: '', upper: '', line, column: i - lineStart + 1 });
  return { tokens, errors };
}
