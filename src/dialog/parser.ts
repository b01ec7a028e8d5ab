import { DEFAULT_RATING_QUESTION, RATING_SUGGESTIONS } from '../lifecycle/rating.ts';
import type {
  BinaryOp,
  DebugTopic,
  Expr,
  HearSpec,
  IfBranch,
  MemoryScope,
  Pos,
  ProgramAst,
  Routine,
  Stmt,
  StmtBody,
} from './ast.ts';
import { DialogSyntaxError } from './errors.ts';
import { HEAR_TYPES, isHearType } from './hear.ts';
import { type Token, tokenize } from './lexer.ts';

/** Words that cannot name a variable: they start statements or are operators. */
export const RESERVED = new Set([
  'ADD',
  'AND',
  'CALL',
  'CLEAR',
  'EACH',
  'ELSE',
  'ELSEIF',
  'END',
  'EXIT',
  'FALSE',
  'FOR',
  'FUNCTION',
  'GET',
  'HEAR',
  'IF',
  'IN',
  'LET',
  'LLM',
  'LOG',
  'MOD',
  'NEXT',
  'NOT',
  'NULL',
  'ON',
  'OR',
  'RESTORE',
  'RETURN',
  'RUN',
  'SAVE',
  'SET',
  'STEP',
  'SUB',
  'TALK',
  'THEN',
  'TO',
  'TRUE',
  'USE',
  'WEND',
  'WHILE',
]);

/** Words after which an expression cannot go on: a bare `GET name` ends before them. */
const EXPRESSION_END_WORDS = new Set(['THEN', 'ELSE', 'TO', 'STEP', 'AS', 'AND', 'OR']);
const COMPARISON_OPS = new Set(['=', '<>', '<', '>', '<=', '>=']);
const MAX_ERRORS = 50;

export interface ParseResult {
  ast: ProgramAst;
  errors: DialogSyntaxError[];
}

/** Parses a script; every error carries its line and column. A script with errors still gives an AST. */
export function parseScript(source: string, file: string): ParseResult {
  const { tokens, errors } = tokenize(source, file);
  const result = new Parser(tokens, file).parseProgram();
  // A line with a lexical error also fails to parse: report the lexical error only.
  const lexicalLines = new Set(errors.map((e) => e.line));
  return {
    ast: result.ast,
    errors: [...errors, ...result.errors.filter((e) => !lexicalLines.has(e.line))],
  };
}

function canonical(t: Token): string {
  if (t.kind === 'string') return JSON.stringify(t.text);
  if (t.kind === 'ident') return t.upper;
  return t.text;
}

type Terminator =
  | 'ELSE'
  | 'ELSEIF'
  | 'END IF'
  | 'NEXT'
  | 'WEND'
  | 'END WHILE'
  | 'END FUNCTION'
  | 'END SUB'
  | 'END ON';

class Parser {
  private i = 0;
  private readonly errors: DialogSyntaxError[] = [];
  /** Inside a one-line IF, ELSE ends the statement as the end of the line would. */
  private stopAtElse = false;

  constructor(
    private readonly tokens: Token[],
    private readonly file: string,
  ) {}

  // ── tokens ──────────────────────────────────────────────────────────────────────────────

  private peek(ahead = 0): Token {
    return this.tokens[Math.min(this.i + ahead, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.i++;
    return t;
  }

  private isWord(word: string, ahead = 0): boolean {
    const t = this.peek(ahead);
    return t.kind === 'ident' && t.upper === word;
  }

  private acceptWord(word: string): boolean {
    if (!this.isWord(word)) return false;
    this.next();
    return true;
  }

  private expectWord(word: string, after: string): Token {
    if (!this.isWord(word)) this.fail(`expected ${word} ${after}, found ${this.describe(this.peek())}`);
    return this.next();
  }

  private isOp(op: string, ahead = 0): boolean {
    const t = this.peek(ahead);
    return t.kind === 'op' && t.text === op;
  }

  private acceptOp(op: string): boolean {
    if (!this.isOp(op)) return false;
    this.next();
    return true;
  }

  private expectOp(op: string, after: string): void {
    if (!this.acceptOp(op)) this.fail(`expected "${op}" ${after}, found ${this.describe(this.peek())}`);
  }

  /** Whether the token `ahead` can begin an expression (a value, a name, a parenthesis, a list, a sign). */
  private startsExpression(ahead = 0): boolean {
    const t = this.peek(ahead);
    if (t.kind === 'string' || t.kind === 'number') return true;
    if (t.kind === 'ident') return !EXPRESSION_END_WORDS.has(t.upper);
    return t.kind === 'op' && (t.text === '(' || t.text === '[' || t.text === '-');
  }

  private atEol(ahead = 0): boolean {
    const k = this.peek(ahead).kind;
    return k === 'newline' || k === 'eof' || (this.stopAtElse && this.isWord('ELSE', ahead));
  }

  private expectEol(): void {
    if (!this.atEol()) this.fail(`unexpected ${this.describe(this.peek())} after the end of the statement`);
  }

  private skipNewlines(): void {
    while (this.peek().kind === 'newline') this.next();
  }

  private describe(t: Token): string {
    if (t.kind === 'eof') return 'the end of the script';
    if (t.kind === 'newline') return 'the end of the line';
    if (t.kind === 'string') return `text ${JSON.stringify(t.text)}`;
    return `"${t.text}"`;
  }

  private pos(t: Token = this.peek()): Pos {
    return { line: t.line, column: t.column };
  }

  private fail(message: string, at: Token | Pos = this.peek()): never {
    throw new DialogSyntaxError(this.file, at.line, 'column' in at ? at.column : 1, message);
  }

  private record(err: unknown): void {
    if (!(err instanceof DialogSyntaxError)) throw err;
    if (this.errors.length < MAX_ERRORS) this.errors.push(err);
  }

  /** After an error: skip the rest of the line. */
  private recover(): void {
    while (!this.atEol()) this.next();
  }

  private textFrom(start: number, end = this.i): string {
    return this.tokens
      .slice(start, end)
      .filter((t) => t.kind !== 'newline' && t.kind !== 'eof')
      .map(canonical)
      .join(' ');
  }

  /** The terminator the next tokens spell, if any (without consuming it). */
  private terminator(): Terminator | undefined {
    const t = this.peek();
    if (t.kind !== 'ident') return undefined;
    switch (t.upper) {
      case 'ELSE':
        return this.isWord('IF', 1) ? 'ELSEIF' : 'ELSE';
      case 'ELSEIF':
        return 'ELSEIF';
      case 'NEXT':
        return 'NEXT';
      case 'WEND':
        return 'WEND';
      case 'END': {
        const w = this.peek(1);
        if (w.kind !== 'ident') return undefined;
        const two = `END ${w.upper}`;
        return ['END IF', 'END WHILE', 'END FUNCTION', 'END SUB', 'END ON'].includes(two)
          ? (two as Terminator)
          : undefined;
      }
      default:
        return undefined;
    }
  }

  // ── program and blocks ──────────────────────────────────────────────────────────────────

  parseProgram(): ParseResult {
    const main: Stmt[] = [];
    const routines = new Map<string, Routine>();
    let onEnd: ProgramAst['onEnd'] = null;
    let onTransferEnd: ProgramAst['onEnd'] = null;
    for (;;) {
      this.skipNewlines();
      if (this.peek().kind === 'eof') break;
      try {
        if (this.isWord('FUNCTION') || this.isWord('SUB')) {
          const routine = this.parseRoutine();
          if (!routine) continue;
          if (routines.has(routine.name))
            this.record(
              new DialogSyntaxError(
                this.file,
                routine.pos.line,
                routine.pos.column,
                `${routine.name} is defined twice`,
              ),
            );
          else routines.set(routine.name, routine);
        } else if (this.isWord('ON') && this.isWord('SESSION', 1)) {
          const start = this.peek();
          const block = this.parseOnEnd();
          if (onEnd) this.fail('a script has at most one ON SESSION END block', start);
          onEnd = block;
        } else if (this.isWord('ON') && this.isWord('TRANSFER', 1)) {
          const start = this.peek();
          const block = this.parseOnEnd('TRANSFER');
          if (onTransferEnd) this.fail('a script has at most one ON TRANSFER END block', start);
          onTransferEnd = block;
        } else {
          const term = this.terminator();
          if (term) this.strayTerminator(term);
          main.push(this.parseStatement());
        }
      } catch (err) {
        this.record(err);
        this.recover();
      }
    }
    return { ast: { main, routines, onEnd, onTransferEnd }, errors: this.errors };
  }

  private strayTerminator(term: Terminator): never {
    const opener: Record<Terminator, string> = {
      ELSE: 'IF',
      ELSEIF: 'IF',
      'END IF': 'IF',
      NEXT: 'FOR',
      WEND: 'WHILE',
      'END WHILE': 'WHILE',
      'END FUNCTION': 'FUNCTION',
      'END SUB': 'SUB',
      'END ON': 'ON SESSION END',
    };
    this.fail(`${term} without ${opener[term]}`);
  }

  /** Statements up to (not including) a terminator or the end of the script. */
  private parseBlock(): Stmt[] {
    const body: Stmt[] = [];
    for (;;) {
      this.skipNewlines();
      if (this.peek().kind === 'eof' || this.terminator()) return body;
      try {
        if (
          this.isWord('FUNCTION') ||
          this.isWord('SUB') ||
          (this.isWord('ON') && (this.isWord('SESSION', 1) || this.isWord('TRANSFER', 1)))
        ) {
          // Reported, then read whole so that its END line does not close the enclosing block.
          const what = this.isWord('ON') ? `ON ${this.peek(1).upper} END` : this.peek().upper;
          this.record(
            new DialogSyntaxError(
              this.file,
              this.peek().line,
              this.peek().column,
              `${what} must be at the top level of a script, not inside a block`,
            ),
          );
          if (what.startsWith('ON ')) this.parseOnEnd(what === 'ON TRANSFER END' ? 'TRANSFER' : 'SESSION');
          else this.parseRoutine();
          continue;
        }
        body.push(this.parseStatement());
      } catch (err) {
        this.record(err);
        this.recover();
      }
    }
  }

  /** Parses a block's first line; on an error, records it and skips the line so the block is still read. */
  private header(parse: () => void): boolean {
    try {
      parse();
      this.expectEol();
      return true;
    } catch (err) {
      this.record(err);
      this.recover();
      return false;
    }
  }

  /** Consumes the expected terminator, or records that the block at `opener` was never closed. */
  private closeBlock(expected: Terminator[], opener: Token, what: string): Terminator | undefined {
    const term = this.terminator();
    if (term && expected.includes(term)) {
      this.next();
      if (term.startsWith('END ')) this.next();
      return term;
    }
    this.record(
      new DialogSyntaxError(
        this.file,
        opener.line,
        opener.column,
        `${what} has no ${expected.at(-1)}${term ? ` (found ${term} first)` : ''}`,
      ),
    );
    return undefined;
  }

  /** A FUNCTION or SUB; undefined when its first line has an error (its body is still read). */
  private parseRoutine(): Routine | undefined {
    const start = this.next();
    const isFunction = start.upper === 'FUNCTION';
    const kind = start.upper;
    let name = '';
    const params: string[] = [];
    const ok = this.header(() => {
      const nameTok = this.peek();
      if (nameTok.kind !== 'ident' || RESERVED.has(nameTok.upper))
        this.fail(`expected the name of the ${kind}, found ${this.describe(nameTok)}`);
      this.next();
      name = nameTok.text;
      if (this.acceptOp('(')) {
        if (!this.isOp(')')) {
          do params.push(this.expectVarName(`as a parameter of ${name}`));
          while (this.acceptOp(','));
        }
        this.expectOp(')', `after the parameters of ${name}`);
      } else if (isFunction) {
        this.fail(`expected "(" after FUNCTION ${name}`);
      }
      const seen = new Set<string>();
      for (const p of params) {
        if (seen.has(p)) this.fail(`parameter ${p} appears twice in ${name}`, nameTok);
        seen.add(p);
      }
    });
    const body = this.parseBlock();
    this.closeBlock([isFunction ? 'END FUNCTION' : 'END SUB'], start, `${kind}${name ? ` ${name}` : ''}`);
    return ok ? { name: name.toUpperCase(), isFunction, params, body, pos: this.pos(start) } : undefined;
  }

  /** `ON SESSION END ... END ON`, and `ON TRANSFER END ... END ON` of the same form. */
  private parseOnEnd(what: 'SESSION' | 'TRANSFER' = 'SESSION'): { body: Stmt[]; pos: Pos } {
    const start = this.next();
    this.next();
    this.header(() => this.expectWord('END', `after ON ${what}`));
    const body = this.parseBlock();
    this.closeBlock(['END ON'], start, `ON ${what} END`);
    return { body, pos: this.pos(start) };
  }

  // ── statements ──────────────────────────────────────────────────────────────────────────

  private expectVarName(what: string): string {
    const t = this.peek();
    if (t.kind !== 'ident') this.fail(`expected a variable name ${what}, found ${this.describe(t)}`);
    if (RESERVED.has(t.upper)) this.fail(`${t.upper} is a keyword and cannot name a variable`);
    this.next();
    return t.text.toLowerCase();
  }

  private parseStatement(): Stmt {
    const startIndex = this.i;
    const t = this.peek();
    const pos = this.pos(t);
    const done = (stmt: StmtBody): Stmt => {
      this.expectEol();
      return { ...stmt, pos, text: this.textFrom(startIndex) };
    };
    if (t.kind !== 'ident')
      this.fail(`a statement starts with a keyword or a variable name, not ${this.describe(t)}`);
    switch (t.upper) {
      case 'TALK': {
        this.next();
        // `TALK CARD …` and `TALK CAROUSEL …`; `TALK card` alone (or `TALK card + 1`) is a variable.
        const w = this.peek();
        if (
          w.kind === 'ident' &&
          (w.upper === 'CARD' || w.upper === 'CAROUSEL') &&
          this.startsExpression(1)
        ) {
          this.next();
          if (w.upper === 'CAROUSEL') return done({ kind: 'talkCarousel', value: this.parseExpr() });
          const args = [this.parseExpr()];
          while (this.acceptOp(',')) args.push(this.parseExpr());
          if (args.length > 13) this.fail('TALK CARD takes a title, a text, an image and at most 10 buttons');
          return done({ kind: 'talkCard', args });
        }
        return done({ kind: 'talk', value: this.parseExpr() });
      }
      case 'HEAR': {
        this.next();
        const target = this.expectVarName('after HEAR');
        return done({ kind: 'hear', target, spec: this.parseHearSpec() });
      }
      case 'SET':
        this.next();
        return done(this.parseSet());
      case 'GET': {
        this.next();
        if (this.peek().kind !== 'ident' || !this.atEol(1))
          this.fail('a GET statement copies a session variable: GET name; otherwise write x = GET ...');
        const target = this.expectVarName(
          'after GET (a statement GET copies the session variable of that name)',
        );
        return done({
          kind: 'assign',
          target,
          indexes: [],
          value: { kind: 'getVar', name: { kind: 'literal', value: target, pos }, pos },
        });
      }
      case 'LET':
        this.next();
        return done(this.parseAssignment());
      case 'CLEAR':
        this.next();
        return done(this.parseClear());
      case 'USE': {
        this.next();
        if (this.acceptWord('KB')) return done({ kind: 'useKb', name: this.parseExpr() });
        if (this.acceptWord('TOOL')) return done({ kind: 'useTool', name: this.parseExpr() });
        return this.fail(`expected KB or TOOL after USE, found ${this.describe(this.peek())}`);
      }
      case 'ADD': {
        this.next();
        this.expectWord('SUGGESTION', 'after ADD');
        const label = this.parseExpr();
        const value = this.acceptWord('AS') ? this.parseExpr() : null;
        return done({ kind: 'addSuggestion', label, value });
      }
      case 'LOG': {
        this.next();
        if (this.acceptWord('SESSION')) {
          const event = this.parseExpr();
          const value = this.acceptOp(',') ? this.parseExpr() : null;
          return done({ kind: 'logSession', event, value });
        }
        return done({ kind: 'log', value: this.parseExpr() });
      }
      case 'IF':
        return this.parseIf();
      case 'FOR':
        return this.parseFor();
      case 'WHILE':
        return this.parseWhile();
      case 'CALL': {
        this.next();
        const nameTok = this.next();
        if (nameTok.kind !== 'ident' || RESERVED.has(nameTok.upper))
          this.fail(
            `expected the name of a SUB or FUNCTION after CALL, found ${this.describe(nameTok)}`,
            nameTok,
          );
        const args = this.acceptOp('(') ? this.parseArgs(')') : [];
        return done({ kind: 'callSub', name: nameTok.upper, args });
      }
      case 'RETURN':
        this.next();
        return done({ kind: 'return', value: this.atEol() ? null : this.parseExpr() });
      case 'RUN':
        this.next();
        if (this.acceptWord('IN')) return done(this.parseRunInSession());
        return done({ kind: 'run', script: this.parseExpr() });
      case 'RESTORE':
        this.next();
        this.expectWord('SESSION', 'after RESTORE');
        this.expectWord('STATE', 'after RESTORE SESSION');
        return done({ kind: 'restoreState', value: this.parseExpr() });
      case 'EXIT': {
        this.next();
        const w = this.peek();
        if (w.kind !== 'ident' || !['FOR', 'WHILE', 'FUNCTION', 'SUB'].includes(w.upper))
          this.fail(`expected FOR, WHILE, FUNCTION or SUB after EXIT, found ${this.describe(w)}`);
        this.next();
        return done({ kind: 'exit', what: w.upper as 'FOR' | 'WHILE' | 'FUNCTION' | 'SUB' });
      }
      case 'END':
        this.next();
        return done({ kind: 'end' });
      case 'SAVE':
        return this.fail('SAVE SESSION STATE gives a value: write state = SAVE SESSION STATE');
      case 'TRANSFER': {
        // Not a reserved word: `transfer = 1` still names a variable.
        if (!this.isWord('SESSION', 1)) break;
        this.next();
        this.next();
        const agent = this.atEol() || this.isWord('QUEUE') ? null : this.parseExpr();
        const queue = this.acceptWord('QUEUE') ? this.parseExpr() : null;
        return done({ kind: 'transfer', agent, queue });
      }
      case 'ELSE':
      case 'ELSEIF':
      case 'NEXT':
      case 'WEND':
        return this.strayTerminator(this.terminator()!);
      default:
        break;
    }
    if (RESERVED.has(t.upper)) this.fail(`${t.upper} cannot start a statement`);
    const sessionStatement = this.parseSessionStatement();
    if (sessionStatement) return done(sessionStatement);
    if (this.isOp('=', 1) || this.isOp('[', 1)) return done(this.parseAssignment());
    if (this.isOp('(', 1)) {
      this.next();
      this.next();
      const args = this.parseArgs(')');
      if (this.isOp('=')) this.fail(`to change a list item write ${t.text.toLowerCase()}[index] = value`);
      return done({ kind: 'callSub', name: t.upper, args });
    }
    if (this.atEol(1)) {
      this.next();
      return done({ kind: 'callSub', name: t.upper, args: [] });
    }
    return this.fail(`unknown statement "${t.text}"`);
  }

  private parseAssignment(): Extract<
    StmtBody,
    { kind: 'assign' | 'hear' | 'createSubSession' | 'sendToSession' }
  > {
    const target = this.expectVarName('to assign to');
    const indexes: Expr[] = [];
    while (this.acceptOp('[')) {
      indexes.push(this.parseExpr());
      this.expectOp(']', 'after the list index');
    }
    this.expectOp('=', `after ${target}`);
    if (this.isWord('HEAR')) {
      this.next();
      if (indexes.length > 0) this.fail('HEAR stores its answer in a plain variable, not a list item');
      return { kind: 'hear', target, spec: this.parseHearSpec() };
    }
    const sessionValue = this.parseSessionValue(target, indexes.length > 0);
    if (sessionValue) return sessionValue;
    return { kind: 'assign', target, indexes, value: this.parseExpr() };
  }

  // ── other sessions: SEND TO SESSION, sub-sessions, templates, DEBUG SHOW ───────────────

  /**
   * The session statements that are not words of their own (SEND, MERGE, APPLY and DEBUG can
   * still name variables): recognised by their whole phrase. Undefined when this is not one.
   */
  private parseSessionStatement(): StmtBody | undefined {
    if (this.isWord('SEND') && this.isWord('TO', 1)) {
      this.next();
      this.next();
      return this.parseSendToSession(null);
    }
    if (this.isWord('MERGE') && this.isWord('SESSION', 1)) {
      this.next();
      this.next();
      return { kind: 'mergeSession', session: this.parseExpr() };
    }
    if (this.isWord('APPLY') && this.isWord('SESSION', 1)) {
      this.next();
      this.next();
      this.expectWord('TEMPLATE', 'after APPLY SESSION');
      return { kind: 'applyTemplate', name: this.parseExpr() };
    }
    if (this.isWord('SHOW') && this.isWord('IMAGE', 1)) {
      this.next();
      this.next();
      return { kind: 'sendFile', image: true, file: this.parseExpr(), caption: null };
    }
    if (this.isWord('SEND') && this.isWord('FILE', 1)) {
      this.next();
      this.next();
      const file = this.parseExpr();
      const caption = this.acceptOp(',') ? this.parseExpr() : null;
      return { kind: 'sendFile', image: false, file, caption };
    }
    if (this.isWord('ASK') && this.isWord('RATING', 1)) {
      const pos = this.pos(this.peek());
      this.next();
      this.next();
      return askRating(pos);
    }
    if (this.isWord('DEBUG') && this.isWord('SHOW', 1)) {
      this.next();
      this.next();
      const w = this.peek();
      if (w.kind !== 'ident' || !['SESSION', 'CONTEXT', 'VARIABLES'].includes(w.upper))
        this.fail(`expected SESSION, CONTEXT or VARIABLES after DEBUG SHOW, found ${this.describe(w)}`);
      this.next();
      return { kind: 'debugShow', what: w.upper as DebugTopic };
    }
    if (this.isWord('CREATE') && this.isWord('SUB', 1))
      this.fail('CREATE SUB SESSION gives the new session: write sub = CREATE SUB SESSION');
    return undefined;
  }

  /** `x = CREATE SUB SESSION`, `x = SEND TO SESSION id, text`. */
  private parseSessionValue(
    target: string,
    indexed: boolean,
  ): Extract<StmtBody, { kind: 'createSubSession' | 'sendToSession' }> | undefined {
    const create = this.isWord('CREATE') && this.isWord('SUB', 1) && this.isWord('SESSION', 2);
    const send = this.isWord('SEND') && this.isWord('TO', 1) && this.isWord('SESSION', 2);
    if (!create && !send) return undefined;
    if (indexed)
      this.fail(`${create ? 'CREATE SUB SESSION' : 'SEND TO SESSION'} stores into a plain variable`);
    this.next();
    this.next();
    if (create) {
      this.next();
      return { kind: 'createSubSession', target };
    }
    return this.parseSendToSession(target);
  }

  /** After `SEND TO`: `SESSION id, text`. */
  private parseSendToSession(target: string | null): Extract<StmtBody, { kind: 'sendToSession' }> {
    this.expectWord('SESSION', 'after SEND TO');
    const session = this.parseExpr();
    this.expectOp(',', 'between the session and the text (SEND TO SESSION id, "text")');
    return { kind: 'sendToSession', target, session, value: this.parseExpr() };
  }

  /** After `RUN IN`: `SESSION sub, "script.bas"`. */
  private parseRunInSession(): StmtBody {
    this.expectWord('SESSION', 'after RUN IN');
    const session = this.parseExpr();
    this.expectOp(',', 'between the sub-session and the script (RUN IN SESSION sub, "task.bas")');
    return { kind: 'runInSession', session, script: this.parseExpr() };
  }

  private parseHearSpec(): HearSpec | null {
    if (!this.acceptWord('AS')) return null;
    const t = this.peek();
    if (t.kind === 'ident' && !RESERVED.has(t.upper) && this.atEol(1)) {
      if (!isHearType(t.upper))
        this.fail(
          `unknown answer type ${t.text}: use ${HEAR_TYPES.join(', ')}, or a list of choices such as AS "yes", "no"`,
        );
      this.next();
      return { type: t.upper };
    }
    const choices = [this.parseExpr()];
    while (this.acceptOp(',')) choices.push(this.parseExpr());
    return { choices };
  }

  private parseSet(): StmtBody {
    if ((this.isWord('BOT') || this.isWord('USER')) && this.isWord('MEMORY', 1)) {
      const scope: MemoryScope = this.next().upper === 'USER' ? 'user' : 'bot';
      this.next();
      const key = this.parseExpr();
      this.expectOp(',', 'between the memory key and its value');
      return { kind: 'setMemory', scope, key, value: this.parseExpr() };
    }
    if (this.isWord('CONTEXT') && !this.isOp('=', 1)) {
      this.next();
      const name = this.parseExpr();
      this.expectWord('AS', 'after the context name (SET CONTEXT "name" AS value)');
      return { kind: 'setContext', name, value: this.parseExpr() };
    }
    const t = this.peek();
    if (t.kind === 'ident' && !RESERVED.has(t.upper) && this.isOp('=', 1)) {
      const name = this.expectVarName('after SET');
      this.next();
      return {
        kind: 'setVar',
        name: { kind: 'literal', value: name, pos: this.pos(t) },
        value: this.parseExpr(),
      };
    }
    const name = this.parseExpr();
    this.expectOp(',', 'between the variable name and its value (SET "name", value or SET name = value)');
    return { kind: 'setVar', name, value: this.parseExpr() };
  }

  private parseClear(): StmtBody {
    const w = this.peek();
    if (w.kind === 'ident') {
      switch (w.upper) {
        case 'CONTEXT':
          this.next();
          return { kind: 'clearContext', name: this.atEol() ? null : this.parseExpr() };
        case 'KB':
          this.next();
          if (this.atEol() || this.acceptWord('ALL')) return { kind: 'clearKb', name: null };
          return { kind: 'clearKb', name: this.parseExpr() };
        case 'TOOLS':
          this.next();
          return { kind: 'clearTools', name: null };
        case 'TOOL':
          this.next();
          return { kind: 'clearTools', name: this.parseExpr() };
        case 'SUGGESTIONS':
          this.next();
          return { kind: 'clearSuggestions' };
      }
    }
    return this.fail(
      `expected CONTEXT, KB, TOOLS, TOOL or SUGGESTIONS after CLEAR, found ${this.describe(this.peek())}`,
    );
  }

  private parseIf(): Stmt {
    const startIndex = this.i;
    const start = this.next();
    let cond: Expr = { kind: 'literal', value: false, pos: this.pos(start) };
    let inline = false;
    try {
      cond = this.parseExpr();
      this.expectWord('THEN', 'after the IF condition');
      inline = !this.atEol();
    } catch (err) {
      this.record(err);
      this.recover();
    }
    if (inline) return this.parseInlineIf(startIndex, start, cond);
    const text = this.textFrom(startIndex);
    const branches: IfBranch[] = [{ cond, body: this.parseBlock(), text, pos: this.pos(start) }];
    let elseBody: Stmt[] | null = null;
    for (;;) {
      const term = this.terminator();
      if (term === 'ELSEIF' && elseBody === null) {
        const branchIndex = this.i;
        const branchTok = this.next();
        if (branchTok.upper === 'ELSE') this.next();
        let c: Expr = { kind: 'literal', value: false, pos: this.pos(branchTok) };
        let branchText = '';
        this.header(() => {
          c = this.parseExpr();
          this.expectWord('THEN', 'after the ELSE IF condition');
          branchText = this.textFrom(branchIndex);
        });
        branches.push({ cond: c, body: this.parseBlock(), text: branchText, pos: this.pos(branchTok) });
        continue;
      }
      if (term === 'ELSE' && elseBody === null) {
        this.next();
        this.header(() => undefined);
        elseBody = this.parseBlock();
        continue;
      }
      this.closeBlock(['END IF'], start, 'IF');
      break;
    }
    return { kind: 'if', branches, elseBody, pos: this.pos(start), text };
  }

  /** IF cond THEN statement [ELSE statement], on one line. */
  private parseInlineIf(startIndex: number, start: Token, cond: Expr): Stmt {
    const thenStmt = this.parseInlineStatement();
    let elseBody: Stmt[] | null = null;
    if (this.acceptWord('ELSE')) elseBody = [this.parseInlineStatement()];
    this.expectEol();
    const text = this.textFrom(startIndex);
    return {
      kind: 'if',
      branches: [{ cond, body: [thenStmt], text, pos: this.pos(start) }],
      elseBody,
      pos: this.pos(start),
      text,
    };
  }

  /** The statement after THEN or ELSE on a one-line IF: a simple one, not a block; ELSE ends it. */
  private parseInlineStatement(): Stmt {
    if (['IF', 'FOR', 'WHILE'].some((w) => this.isWord(w)))
      this.fail(`a one-line IF cannot hold ${this.peek().upper}: write the IF as a block with END IF`);
    const outer = this.stopAtElse;
    this.stopAtElse = true;
    try {
      return this.parseStatement();
    } finally {
      this.stopAtElse = outer;
    }
  }

  private parseFor(): Stmt {
    const startIndex = this.i;
    const start = this.next();
    const pos = this.pos(start);
    const none: Expr = { kind: 'literal', value: null, pos };
    let stmt: Stmt = { kind: 'while', cond: none, body: [], pos, text: '' };
    let variable = '';
    this.header(() => {
      if (this.acceptWord('EACH')) {
        variable = this.expectVarName('after FOR EACH');
        this.expectWord('IN', `after FOR EACH ${variable}`);
        const list = this.parseExpr();
        stmt = { kind: 'forEach', variable, list, body: [], pos, text: this.textFrom(startIndex) };
        return;
      }
      variable = this.expectVarName('after FOR');
      this.expectOp('=', `after FOR ${variable}`);
      const from = this.parseExpr();
      this.expectWord('TO', 'after the start value of FOR');
      const to = this.parseExpr();
      const step = this.acceptWord('STEP') ? this.parseExpr() : null;
      stmt = { kind: 'for', variable, from, to, step, body: [], pos, text: this.textFrom(startIndex) };
    });
    const body = this.parseBlock();
    this.closeNext(start, stmt.kind === 'while' ? undefined : variable);
    return { ...stmt, body };
  }

  /** NEXT [variable]; `variable` is undefined when the FOR line itself had an error. */
  private closeNext(start: Token, variable: string | undefined): void {
    if (!this.closeBlock(['NEXT'], start, 'FOR')) return;
    if (this.atEol()) return;
    if (variable === undefined) {
      this.recover();
      return;
    }
    const t = this.peek();
    try {
      const named = this.expectVarName('after NEXT');
      if (named !== variable) this.fail(`NEXT ${named} does not match FOR ${variable}`, t);
      this.expectEol();
    } catch (err) {
      this.record(err);
      this.recover();
    }
  }

  private parseWhile(): Stmt {
    const startIndex = this.i;
    const start = this.next();
    let cond: Expr = { kind: 'literal', value: null, pos: this.pos(start) };
    this.header(() => {
      cond = this.parseExpr();
    });
    const text = this.textFrom(startIndex);
    const body = this.parseBlock();
    this.closeBlock(['WEND', 'END WHILE'], start, 'WHILE');
    return { kind: 'while', cond, body, pos: this.pos(start), text };
  }

  // ── expressions ─────────────────────────────────────────────────────────────────────────

  private parseArgs(close: ')' | ']'): Expr[] {
    const args: Expr[] = [];
    if (this.acceptOp(close)) return args;
    do args.push(this.parseExpr());
    while (this.acceptOp(','));
    this.expectOp(close, 'after the arguments');
    return args;
  }

  parseExpr(): Expr {
    return this.parseOr();
  }

  private parseOr(): Expr {
    let left = this.parseAnd();
    while (this.isWord('OR')) {
      const pos = this.pos(this.next());
      left = { kind: 'logical', op: 'OR', left, right: this.parseAnd(), pos };
    }
    return left;
  }

  private parseAnd(): Expr {
    let left = this.parseNot();
    while (this.isWord('AND')) {
      const pos = this.pos(this.next());
      left = { kind: 'logical', op: 'AND', left, right: this.parseNot(), pos };
    }
    return left;
  }

  private parseNot(): Expr {
    if (this.isWord('NOT')) {
      const pos = this.pos(this.next());
      return { kind: 'unary', op: 'NOT', operand: this.parseNot(), pos };
    }
    return this.parseComparison();
  }

  private parseComparison(): Expr {
    let left = this.parseConcat();
    for (;;) {
      const t = this.peek();
      if (t.kind !== 'op' || !COMPARISON_OPS.has(t.text)) return left;
      this.next();
      left = { kind: 'binary', op: t.text as BinaryOp, left, right: this.parseConcat(), pos: this.pos(t) };
    }
  }

  private parseConcat(): Expr {
    let left = this.parseAdditive();
    while (this.isOp('&')) {
      const pos = this.pos(this.next());
      left = { kind: 'binary', op: '&', left, right: this.parseAdditive(), pos };
    }
    return left;
  }

  private parseAdditive(): Expr {
    let left = this.parseMultiplicative();
    while (this.isOp('+') || this.isOp('-')) {
      const t = this.next();
      left = {
        kind: 'binary',
        op: t.text as BinaryOp,
        left,
        right: this.parseMultiplicative(),
        pos: this.pos(t),
      };
    }
    return left;
  }

  private parseMultiplicative(): Expr {
    let left = this.parseUnary();
    for (;;) {
      const t = this.peek();
      const op =
        t.kind === 'op' && ['*', '/', '\\'].includes(t.text)
          ? t.text
          : this.isWord('MOD')
            ? 'MOD'
            : undefined;
      if (!op) return left;
      this.next();
      left = { kind: 'binary', op: op as BinaryOp, left, right: this.parseUnary(), pos: this.pos(t) };
    }
  }

  private parseUnary(): Expr {
    if (this.isOp('-')) {
      const pos = this.pos(this.next());
      return { kind: 'unary', op: '-', operand: this.parseUnary(), pos };
    }
    if (this.acceptOp('+')) return this.parseUnary();
    return this.parsePower();
  }

  private parsePower(): Expr {
    const base = this.parsePostfix();
    if (!this.isOp('^')) return base;
    const pos = this.pos(this.next());
    return { kind: 'binary', op: '^', left: base, right: this.parseUnary(), pos };
  }

  private parsePostfix(): Expr {
    let e = this.parsePrimary();
    while (this.isOp('[')) {
      const pos = this.pos(this.next());
      const index = this.parseExpr();
      this.expectOp(']', 'after the list index');
      e = { kind: 'index', target: e, index, pos };
    }
    return e;
  }

  private parsePrimary(): Expr {
    const t = this.peek();
    const pos = this.pos(t);
    switch (t.kind) {
      case 'number':
        this.next();
        return { kind: 'literal', value: Number(t.text), pos };
      case 'string':
        this.next();
        return { kind: 'literal', value: t.text, pos };
      case 'op':
        if (t.text === '(') {
          this.next();
          const e = this.parseExpr();
          this.expectOp(')', 'to close "("');
          return e;
        }
        if (t.text === '[') {
          this.next();
          return { kind: 'list', items: this.parseArgs(']'), pos };
        }
        return this.fail(`expected a value, found ${this.describe(t)}`);
      case 'ident':
        break;
      default:
        return this.fail(`expected a value, found ${this.describe(t)}`);
    }
    switch (t.upper) {
      case 'TRUE':
      case 'FALSE':
        this.next();
        return { kind: 'literal', value: t.upper === 'TRUE', pos };
      case 'NULL':
        this.next();
        return { kind: 'literal', value: null, pos };
      case 'GET':
        return this.parseGet();
      case 'LLM':
        this.next();
        return { kind: 'llm', prompt: this.parseConcat(), pos };
      case 'SAVE':
        this.next();
        this.expectWord('SESSION', 'after SAVE');
        this.expectWord('STATE', 'after SAVE SESSION');
        return { kind: 'saveState', pos };
      case 'HEAR':
        return this.fail('HEAR waits for an answer and stands on its own line: HEAR x, or x = HEAR');
      default:
        break;
    }
    if (RESERVED.has(t.upper)) this.fail(`expected a value, found the keyword ${t.upper}`);
    this.next();
    if (this.acceptOp('(')) return { kind: 'call', name: t.upper, args: this.parseArgs(')'), pos };
    return { kind: 'var', name: t.text.toLowerCase(), pos };
  }

  /** `GET BOT MEMORY key`, `GET USER MEMORY key`, `GET SESSION key`, `GET name`, `GET "name"`: the operand runs up to a comparison. */
  private parseGet(): Expr {
    const pos = this.pos(this.next());
    if ((this.isWord('BOT') || this.isWord('USER')) && this.isWord('MEMORY', 1)) {
      const scope: MemoryScope = this.next().upper === 'USER' ? 'user' : 'bot';
      this.next();
      return { kind: 'getMemory', scope, key: this.parseConcat(), pos };
    }
    if (this.isWord('SESSION')) {
      this.next();
      return { kind: 'getSession', key: this.parseConcat(), pos };
    }
    const endsAt = (after: Token) =>
      after.kind === 'newline' ||
      after.kind === 'eof' ||
      (after.kind === 'op' && [')', ',', ']', '=', '<>', '<', '>', '<=', '>='].includes(after.text)) ||
      (after.kind === 'ident' && EXPRESSION_END_WORDS.has(after.upper));
    if (this.isWord('AVAILABLE') && this.isWord('AGENT', 1)) {
      this.next();
      this.next();
      return { kind: 'availableAgent', queue: endsAt(this.peek()) ? null : this.parseConcat(), pos };
    }
    const t = this.peek();
    const endsHere = endsAt(this.peek(1));
    if (t.kind === 'ident' && !RESERVED.has(t.upper) && endsHere) {
      this.next();
      return {
        kind: 'getVar',
        name: { kind: 'literal', value: t.text.toLowerCase(), pos: this.pos(t) },
        pos,
      };
    }
    return { kind: 'getVar', name: this.parseConcat(), pos };
  }
}

/**
 * `ASK RATING`: offers 1 to 5 stars as suggestions (each channel renders them its way: buttons,
 * a list, numbered choices), waits for the answer in `rating` (a whole number; the dashboard
 * counts 1 to 5) and records it as the session event `rating`, which the dashboard's satisfaction chart counts.
 */
function askRating(pos: Pos): StmtBody {
  const lit = (value: string): Expr => ({ kind: 'literal', value, pos });
  const stmt = (body: StmtBody, text: string): Stmt => ({ ...body, pos, text: `ASK RATING ${text}` });
  return {
    kind: 'if',
    branches: [
      {
        cond: { kind: 'literal', value: true, pos },
        pos,
        text: 'ASK RATING',
        body: [
          stmt({ kind: 'clearSuggestions' }, 'CLEAR SUGGESTIONS'),
          // The same five stars as the hub's own ask: channels recognise them (isRatingAsk).
          ...RATING_SUGGESTIONS.map((s) =>
            stmt(
              { kind: 'addSuggestion', label: lit(s.text), value: lit(s.value!) },
              `ADD SUGGESTION ${s.value}`,
            ),
          ),
          stmt(
            {
              kind: 'talk',
              value: lit(DEFAULT_RATING_QUESTION),
            },
            'TALK',
          ),
          // AS INTEGER, not the five choices: a HEAR on choices shows its choices in place of the stars.
          stmt({ kind: 'hear', target: 'rating', spec: { type: 'INTEGER' } }, 'HEAR rating'),
          stmt({ kind: 'clearSuggestions' }, 'CLEAR SUGGESTIONS AFTER'),
          stmt(
            { kind: 'logSession', event: lit('rating'), value: { kind: 'var', name: 'rating', pos } },
            'LOG SESSION',
          ),
        ],
      },
    ],
    elseBody: null,
  };
}
