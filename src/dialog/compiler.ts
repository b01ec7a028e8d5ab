import { createHash } from 'node:crypto';
import type { BinaryOp, DebugTopic, Expr, MemoryScope, Pos, ProgramAst, Routine, Stmt } from './ast.ts';
import { BUILTINS } from './builtins.ts';
import { DialogSyntaxError } from './errors.ts';
import type { HearType } from './hear.ts';
import { parseScript } from './parser.ts';
import { isSessionKey, SESSION_KEYS } from './session-info.ts';
import type { Value } from './values.ts';

/**
 * One instruction of the dialog machine. Scripts compile to flat code so that a position is
 * a number and the whole execution state — frames, their program counters, operand stacks
 * and locals — is plain JSON that any process can pick up.
 */
export type InstrBody =
  | { op: 'push'; value: Value }
  | { op: 'load'; name: string }
  | { op: 'store'; name: string }
  /** Pops the value, then `depth` indexes: `a[i][j] = v`. */
  | { op: 'storeIndex'; name: string; depth: number }
  | { op: 'drop'; names: string[] }
  | { op: 'pop' }
  | { op: 'list'; count: number }
  | { op: 'index' }
  | { op: 'unary'; operator: '-' | 'NOT' }
  | { op: 'binary'; operator: BinaryOp }
  | { op: 'truthy' }
  | { op: 'jump'; to: number }
  | { op: 'jumpIfFalse'; to: number }
  | { op: 'jumpIfTrue'; to: number }
  | { op: 'builtin'; name: string; argc: number }
  | { op: 'call'; routine: string; argc: number }
  | { op: 'return' }
  | { op: 'run' }
  | { op: 'end' }
  | { op: 'talk' }
  | { op: 'hear'; target: string; type: HearType | null; choices: number }
  | { op: 'setVar' }
  | { op: 'getVar' }
  | { op: 'setMemory'; scope: MemoryScope }
  | { op: 'getMemory'; scope: MemoryScope }
  | { op: 'getSession' }
  | { op: 'availableAgent'; hasQueue: boolean }
  | { op: 'transfer'; hasAgent: boolean; hasQueue: boolean }
  | { op: 'setContext' }
  | { op: 'clearContext'; all: boolean }
  | { op: 'useKb' }
  | { op: 'clearKb'; all: boolean }
  | { op: 'useTool' }
  | { op: 'clearTools'; all: boolean }
  | { op: 'addSuggestion'; hasValue: boolean }
  | { op: 'clearSuggestions' }
  | { op: 'logSession'; hasValue: boolean }
  | { op: 'log' }
  | { op: 'llm' }
  | { op: 'saveState' }
  | { op: 'restoreState' }
  /** Pops the text and the session; with `keep`, pushes the refusal ("" when queued) instead of failing. */
  | { op: 'sendToSession'; keep: boolean }
  | { op: 'createSubSession' }
  /** Pops the script and the sub-session; runs the script there to its end, within this turn. */
  | { op: 'runInSession' }
  | { op: 'mergeSession' }
  | { op: 'applyTemplate' }
  | { op: 'debugShow'; what: DebugTopic }
  /** Pops the caption (with `hasCaption`) and the file; stores it and talks it. */
  | { op: 'sendFile'; image: boolean; hasCaption: boolean }
  /** Pops `argc` values: title, text, image, buttons. */
  | { op: 'talkCard'; argc: number }
  | { op: 'talkCarousel' }
  /** FOR: jumps to `to` once `variable` has passed the end (in the step's direction). */
  | { op: 'forCheck'; variable: string; end: string; step: string; to: number }
  | { op: 'forStep'; variable: string; step: string }
  /** FOR EACH: the next item into `variable`, or a jump to `to` when the list is done. */
  | { op: 'eachNext'; variable: string; list: string; index: string; to: number };

export type Instr = Pos & InstrBody;

export interface StatementInfo {
  /** Enclosing blocks' first lines, the statement's text, and its occurrence: survives edits elsewhere. */
  anchor: string;
  start: number;
  end: number;
}

/** A body of code: a script's main part, a FUNCTION or SUB, or its ON SESSION END block. */
export interface Unit {
  name: string;
  params: string[];
  isFunction: boolean;
  code: Instr[];
  statements: StatementInfo[];
  /** For each instruction, the innermost statement it belongs to. */
  owner: number[];
  byAnchor: Map<string, number>;
}

export const MAIN_UNIT = '';
export const END_UNIT = '@end';
/** The unit of a script's ON TRANSFER END block. */
export const TRANSFER_END_UNIT = '@transfer-end';

export interface CompiledScript {
  name: string;
  /** Content hash: a waiting position records it, to notice that the script changed. */
  hash: string;
  units: Map<string, Unit>;
  /** Scripts this one RUNs by literal name, to check that they exist. */
  runs: { script: string; pos: Pos }[];
  /** Session templates it applies by literal name, to check that they exist. */
  templates: { name: string; pos: Pos }[];
}

export interface CompileResult {
  script: CompiledScript | undefined;
  errors: DialogSyntaxError[];
  /** Literal RUN targets, also when the script has errors. */
  runs: CompiledScript['runs'];
  /** Literal APPLY SESSION TEMPLATE names, also when the script has errors. */
  templates: CompiledScript['templates'];
}

/** Bump when the generated code changes shape: saved positions of older code are then relocated. */
const CODE_VERSION = '1';

export function contentHash(source: string): string {
  return createHash('sha256').update(`${CODE_VERSION}\n${source}`).digest('hex').slice(0, 16);
}

/** Normalises `RUN "form"` and `RUN "form.bas"` to the file name. */
export function scriptFileName(name: string): string {
  const n = name.trim();
  return n.toLowerCase().endsWith('.bas') ? n : `${n}.bas`;
}

/** Parses and compiles a script. Any error leaves `script` undefined. */
export function compileScript(name: string, source: string): CompileResult {
  const { ast, errors } = parseScript(source, name);
  const compiler = new Compiler(name, ast);
  const script: CompiledScript = {
    name,
    hash: contentHash(source),
    units: compiler.compileAll(),
    runs: compiler.runs,
    templates: compiler.templates,
  };
  const all = [...errors, ...compiler.errors].sort((a, b) => a.line - b.line || a.column - b.column);
  return {
    script: all.length === 0 ? script : undefined,
    errors: all,
    runs: compiler.runs,
    templates: compiler.templates,
  };
}

interface LoopLabel {
  kind: 'FOR' | 'WHILE';
  exits: number[];
}

class UnitBuilder {
  readonly code: Instr[] = [];
  readonly statements: StatementInfo[] = [];
  readonly loops: LoopLabel[] = [];
  readonly path: string[] = [];
  readonly seen = new Map<string, number>();
  forDepth = 0;

  constructor(
    readonly name: string,
    readonly kind: 'main' | 'function' | 'sub' | 'end',
  ) {}

  emit(pos: Pos, instr: InstrBody): number {
    this.code.push({ ...instr, line: pos.line, column: pos.column } as Instr);
    return this.code.length - 1;
  }

  patch(at: number, to: number): void {
    (this.code[at] as { to: number }).to = to;
  }

  get here(): number {
    return this.code.length;
  }
}

class Compiler {
  readonly errors: DialogSyntaxError[] = [];
  readonly runs: { script: string; pos: Pos }[] = [];
  readonly templates: { name: string; pos: Pos }[] = [];

  constructor(
    private readonly file: string,
    private readonly ast: ProgramAst,
  ) {}

  private error(pos: Pos, message: string): void {
    this.errors.push(new DialogSyntaxError(this.file, pos.line, pos.column, message));
  }

  compileAll(): Map<string, Unit> {
    const units = new Map<string, Unit>();
    units.set(MAIN_UNIT, this.compileUnit(new UnitBuilder(MAIN_UNIT, 'main'), this.ast.main, [], false));
    for (const routine of this.ast.routines.values()) {
      if (BUILTINS.has(routine.name))
        this.error(routine.pos, `${routine.name} is a built-in function: choose another name`);
      const b = new UnitBuilder(routine.name, routine.isFunction ? 'function' : 'sub');
      units.set(routine.name, this.compileUnit(b, routine.body, routine.params, routine.isFunction));
    }
    if (this.ast.onEnd)
      units.set(END_UNIT, this.compileUnit(new UnitBuilder(END_UNIT, 'end'), this.ast.onEnd.body, [], false));
    if (this.ast.onTransferEnd)
      units.set(
        TRANSFER_END_UNIT,
        this.compileUnit(new UnitBuilder(TRANSFER_END_UNIT, 'sub'), this.ast.onTransferEnd.body, [], false),
      );
    return units;
  }

  private compileUnit(b: UnitBuilder, body: Stmt[], params: string[], isFunction: boolean): Unit {
    this.block(b, body);
    const endPos = body.at(-1)?.pos ?? { line: 1, column: 1 };
    b.emit(endPos, { op: 'push', value: null });
    b.emit(endPos, { op: 'return' });
    const owner = new Array<number>(b.code.length).fill(-1);
    b.statements.forEach((s, idx) => {
      for (let pc = s.start; pc < s.end; pc++) if (owner[pc] === -1) owner[pc] = idx;
    });
    const byAnchor = new Map(b.statements.map((s, idx) => [s.anchor, idx]));
    return { name: b.name, params, isFunction, code: b.code, statements: b.statements, owner, byAnchor };
  }

  private block(b: UnitBuilder, body: Stmt[]): void {
    for (const stmt of body) this.statement(b, stmt);
  }

  /** Registers a statement's code range (after its inner statements: inner ones own their code). */
  private statement(b: UnitBuilder, stmt: Stmt): void {
    const start = b.here;
    const base = [...b.path, stmt.text].join(' > ');
    const occurrence = b.seen.get(base) ?? 0;
    b.seen.set(base, occurrence + 1);
    this.emitStatement(b, stmt);
    b.statements.push({ anchor: `${base} #${occurrence}`, start, end: b.here });
  }

  private nested(b: UnitBuilder, header: string, body: Stmt[]): void {
    b.path.push(header);
    this.block(b, body);
    b.path.pop();
  }

  private emitStatement(b: UnitBuilder, s: Stmt): void {
    const { pos } = s;
    switch (s.kind) {
      case 'talk':
        this.expr(b, s.value);
        b.emit(pos, { op: 'talk' });
        return;
      case 'sendFile':
        this.expr(b, s.file);
        if (s.caption) this.expr(b, s.caption);
        b.emit(pos, { op: 'sendFile', image: s.image, hasCaption: s.caption !== null });
        return;
      case 'talkCard':
        for (const a of s.args) this.expr(b, a);
        b.emit(pos, { op: 'talkCard', argc: s.args.length });
        return;
      case 'talkCarousel':
        this.expr(b, s.value);
        b.emit(pos, { op: 'talkCarousel' });
        return;
      case 'hear': {
        if (b.kind === 'end')
          this.error(pos, 'HEAR cannot wait for an answer inside ON SESSION END: the session is ending');
        let choices = 0;
        if (s.spec && 'choices' in s.spec) {
          for (const c of s.spec.choices) this.expr(b, c);
          choices = s.spec.choices.length;
        }
        const type = s.spec && 'type' in s.spec ? s.spec.type : null;
        b.emit(pos, { op: 'hear', target: s.target, type, choices });
        return;
      }
      case 'assign':
        if (s.indexes.length === 0) {
          this.expr(b, s.value);
          b.emit(pos, { op: 'store', name: s.target });
          return;
        }
        for (const i of s.indexes) this.expr(b, i);
        this.expr(b, s.value);
        b.emit(pos, { op: 'storeIndex', name: s.target, depth: s.indexes.length });
        return;
      case 'setVar':
        this.expr(b, s.name);
        this.expr(b, s.value);
        b.emit(pos, { op: 'setVar' });
        return;
      case 'setMemory':
        this.expr(b, s.key);
        this.expr(b, s.value);
        b.emit(pos, { op: 'setMemory', scope: s.scope });
        return;
      case 'setContext':
        this.expr(b, s.name);
        this.expr(b, s.value);
        b.emit(pos, { op: 'setContext' });
        return;
      case 'clearContext':
        if (s.name) this.expr(b, s.name);
        b.emit(pos, { op: 'clearContext', all: !s.name });
        return;
      case 'useKb':
        this.expr(b, s.name);
        b.emit(pos, { op: 'useKb' });
        return;
      case 'clearKb':
        if (s.name) this.expr(b, s.name);
        b.emit(pos, { op: 'clearKb', all: !s.name });
        return;
      case 'useTool':
        this.expr(b, s.name);
        b.emit(pos, { op: 'useTool' });
        return;
      case 'clearTools':
        if (s.name) this.expr(b, s.name);
        b.emit(pos, { op: 'clearTools', all: !s.name });
        return;
      case 'addSuggestion':
        this.expr(b, s.label);
        if (s.value) this.expr(b, s.value);
        b.emit(pos, { op: 'addSuggestion', hasValue: !!s.value });
        return;
      case 'clearSuggestions':
        b.emit(pos, { op: 'clearSuggestions' });
        return;
      case 'logSession':
        this.expr(b, s.event);
        if (s.value) this.expr(b, s.value);
        b.emit(pos, { op: 'logSession', hasValue: !!s.value });
        return;
      case 'log':
        this.expr(b, s.value);
        b.emit(pos, { op: 'log' });
        return;
      case 'transfer':
        if (s.agent) this.expr(b, s.agent);
        if (s.queue) this.expr(b, s.queue);
        b.emit(pos, { op: 'transfer', hasAgent: !!s.agent, hasQueue: !!s.queue });
        return;
      case 'if': {
        const ends: number[] = [];
        s.branches.forEach((branch, i) => {
          this.expr(b, branch.cond);
          const skip = b.emit(branch.pos, { op: 'jumpIfFalse', to: -1 });
          // The first branch's own line is the IF statement's text, already on the path below.
          b.path.push(s.text);
          this.nested(b, i === 0 ? 'THEN' : branch.text, branch.body);
          b.path.pop();
          if (i < s.branches.length - 1 || s.elseBody) ends.push(b.emit(branch.pos, { op: 'jump', to: -1 }));
          b.patch(skip, b.here);
        });
        if (s.elseBody) {
          b.path.push(s.text);
          this.nested(b, 'ELSE', s.elseBody);
          b.path.pop();
        }
        for (const at of ends) b.patch(at, b.here);
        return;
      }
      case 'while': {
        const top = b.here;
        this.expr(b, s.cond);
        const exit = b.emit(pos, { op: 'jumpIfFalse', to: -1 });
        const loop: LoopLabel = { kind: 'WHILE', exits: [exit] };
        b.loops.push(loop);
        this.nested(b, s.text, s.body);
        b.loops.pop();
        b.emit(pos, { op: 'jump', to: top });
        for (const at of loop.exits) b.patch(at, b.here);
        return;
      }
      case 'for': {
        b.forDepth++;
        const end = `$end${b.forDepth}`;
        const step = `$step${b.forDepth}`;
        this.expr(b, s.from);
        b.emit(pos, { op: 'store', name: s.variable });
        this.expr(b, s.to);
        b.emit(pos, { op: 'store', name: end });
        if (s.step) this.expr(b, s.step);
        else b.emit(pos, { op: 'push', value: 1 });
        b.emit(pos, { op: 'store', name: step });
        const top = b.emit(pos, { op: 'forCheck', variable: s.variable, end, step, to: -1 });
        const loop: LoopLabel = { kind: 'FOR', exits: [top] };
        b.loops.push(loop);
        this.nested(b, s.text, s.body);
        b.loops.pop();
        b.emit(pos, { op: 'forStep', variable: s.variable, step });
        b.emit(pos, { op: 'jump', to: top });
        for (const at of loop.exits) b.patch(at, b.here);
        b.emit(pos, { op: 'drop', names: [end, step] });
        b.forDepth--;
        return;
      }
      case 'forEach': {
        b.forDepth++;
        const list = `$list${b.forDepth}`;
        const index = `$index${b.forDepth}`;
        this.expr(b, s.list);
        b.emit(pos, { op: 'store', name: list });
        b.emit(pos, { op: 'push', value: 0 });
        b.emit(pos, { op: 'store', name: index });
        const top = b.emit(pos, { op: 'eachNext', variable: s.variable, list, index, to: -1 });
        const loop: LoopLabel = { kind: 'FOR', exits: [top] };
        b.loops.push(loop);
        this.nested(b, s.text, s.body);
        b.loops.pop();
        b.emit(pos, { op: 'jump', to: top });
        for (const at of loop.exits) b.patch(at, b.here);
        b.emit(pos, { op: 'drop', names: [list, index] });
        b.forDepth--;
        return;
      }
      case 'callSub': {
        const routine = this.ast.routines.get(s.name);
        if (!routine) {
          if (BUILTINS.has(s.name))
            this.error(pos, `${s.name} gives a value: use it in an expression, such as x = ${s.name}(...)`);
          else this.error(pos, `unknown SUB or FUNCTION ${s.name}`);
          return;
        }
        this.checkArity(pos, routine, s.args.length);
        for (const a of s.args) this.expr(b, a);
        b.emit(pos, { op: 'call', routine: routine.name, argc: s.args.length });
        b.emit(pos, { op: 'pop' });
        return;
      }
      case 'return':
        if (b.kind === 'function') {
          if (s.value) this.expr(b, s.value);
          else b.emit(pos, { op: 'push', value: null });
        } else {
          if (s.value)
            this.error(
              pos,
              b.kind === 'sub'
                ? 'a SUB returns no value: write RETURN alone'
                : 'RETURN with a value belongs in a FUNCTION',
            );
          b.emit(pos, { op: 'push', value: null });
        }
        b.emit(pos, { op: 'return' });
        return;
      case 'run':
        if (s.script.kind === 'literal' && typeof s.script.value === 'string')
          this.runs.push({ script: scriptFileName(s.script.value), pos });
        this.expr(b, s.script);
        b.emit(pos, { op: 'run' });
        b.emit(pos, { op: 'pop' });
        return;
      case 'restoreState':
        this.expr(b, s.value);
        b.emit(pos, { op: 'restoreState' });
        return;
      case 'exit':
        this.exit(b, s.what, pos);
        return;
      case 'end':
        b.emit(pos, { op: 'end' });
        return;
      default:
        this.sessionStatement(b, s);
    }
  }

  /** SEND TO SESSION, sub-sessions, templates and DEBUG SHOW (src/engine/session-control.ts runs them). */
  private sessionStatement(
    b: UnitBuilder,
    s: Stmt & {
      kind:
        | 'sendToSession'
        | 'createSubSession'
        | 'runInSession'
        | 'mergeSession'
        | 'applyTemplate'
        | 'debugShow';
    },
  ): void {
    const { pos } = s;
    switch (s.kind) {
      case 'sendToSession':
        this.expr(b, s.session);
        this.expr(b, s.value);
        b.emit(pos, { op: 'sendToSession', keep: s.target !== null });
        if (s.target !== null) b.emit(pos, { op: 'store', name: s.target });
        return;
      case 'createSubSession':
        b.emit(pos, { op: 'createSubSession' });
        b.emit(pos, { op: 'store', name: s.target });
        return;
      case 'runInSession':
        if (b.kind === 'end') this.error(pos, 'RUN IN SESSION cannot run inside ON SESSION END');
        if (s.script.kind === 'literal' && typeof s.script.value === 'string')
          this.runs.push({ script: scriptFileName(s.script.value), pos });
        this.expr(b, s.session);
        this.expr(b, s.script);
        b.emit(pos, { op: 'runInSession' });
        return;
      case 'mergeSession':
        this.expr(b, s.session);
        b.emit(pos, { op: 'mergeSession' });
        return;
      case 'applyTemplate':
        if (s.name.kind === 'literal' && typeof s.name.value === 'string')
          this.templates.push({ name: s.name.value, pos });
        this.expr(b, s.name);
        b.emit(pos, { op: 'applyTemplate' });
        return;
      case 'debugShow':
        b.emit(pos, { op: 'debugShow', what: s.what });
        return;
    }
  }

  private exit(b: UnitBuilder, what: 'FOR' | 'WHILE' | 'FUNCTION' | 'SUB', pos: Pos): void {
    if (what === 'FUNCTION' || what === 'SUB') {
      if (b.kind !== what.toLowerCase()) {
        this.error(pos, `EXIT ${what} outside a ${what}`);
        return;
      }
      b.emit(pos, { op: 'push', value: null });
      b.emit(pos, { op: 'return' });
      return;
    }
    const loop = [...b.loops].reverse().find((l) => l.kind === what);
    if (!loop) {
      this.error(pos, `EXIT ${what} outside a ${what} loop`);
      return;
    }
    // A FOR's hidden counters are dropped at its exit label, which EXIT FOR jumps to as well.
    loop.exits.push(b.emit(pos, { op: 'jump', to: -1 }));
  }

  private checkArity(pos: Pos, routine: Routine, argc: number): void {
    if (routine.params.length !== argc)
      this.error(
        pos,
        `${routine.name} takes ${routine.params.length} argument${routine.params.length === 1 ? '' : 's'}, not ${argc}`,
      );
  }

  private expr(b: UnitBuilder, e: Expr): void {
    const { pos } = e;
    switch (e.kind) {
      case 'literal':
        b.emit(pos, { op: 'push', value: e.value });
        return;
      case 'var':
        b.emit(pos, { op: 'load', name: e.name });
        return;
      case 'list':
        for (const item of e.items) this.expr(b, item);
        b.emit(pos, { op: 'list', count: e.items.length });
        return;
      case 'index':
        this.expr(b, e.target);
        this.expr(b, e.index);
        b.emit(pos, { op: 'index' });
        return;
      case 'unary':
        this.expr(b, e.operand);
        b.emit(pos, { op: 'unary', operator: e.op });
        return;
      case 'binary':
        this.expr(b, e.left);
        this.expr(b, e.right);
        b.emit(pos, { op: 'binary', operator: e.op });
        return;
      case 'logical': {
        this.expr(b, e.left);
        const shortCut = b.emit(
          pos,
          e.op === 'AND' ? { op: 'jumpIfFalse', to: -1 } : { op: 'jumpIfTrue', to: -1 },
        );
        this.expr(b, e.right);
        b.emit(pos, { op: 'truthy' });
        const done = b.emit(pos, { op: 'jump', to: -1 });
        b.patch(shortCut, b.here);
        b.emit(pos, { op: 'push', value: e.op === 'OR' });
        b.patch(done, b.here);
        return;
      }
      case 'call': {
        const builtin = BUILTINS.get(e.name);
        const routine = this.ast.routines.get(e.name);
        if (routine) {
          if (!routine.isFunction)
            this.error(pos, `${e.name} is a SUB and gives no value: call it on its own line`);
          this.checkArity(pos, routine, e.args.length);
          for (const a of e.args) this.expr(b, a);
          b.emit(pos, { op: 'call', routine: routine.name, argc: e.args.length });
          return;
        }
        if (!builtin) {
          this.error(pos, `unknown function ${e.name}`);
          return;
        }
        if (e.args.length < builtin.min || e.args.length > builtin.max) {
          const range = builtin.min === builtin.max ? `${builtin.min}` : `${builtin.min} to ${builtin.max}`;
          this.error(
            pos,
            `${e.name} takes ${range} argument${builtin.max === 1 ? '' : 's'}, not ${e.args.length}`,
          );
        }
        for (const a of e.args) this.expr(b, a);
        b.emit(pos, { op: 'builtin', name: e.name, argc: e.args.length });
        return;
      }
      case 'getVar':
        this.expr(b, e.name);
        b.emit(pos, { op: 'getVar' });
        return;
      case 'getMemory':
        this.expr(b, e.key);
        b.emit(pos, { op: 'getMemory', scope: e.scope });
        return;
      case 'getSession':
        if (e.key.kind === 'literal' && typeof e.key.value === 'string' && !isSessionKey(e.key.value))
          this.error(
            e.key.pos,
            `GET SESSION knows no "${e.key.value}": use one of ${SESSION_KEYS.map((k) => `"${k}"`).join(', ')}`,
          );
        this.expr(b, e.key);
        b.emit(pos, { op: 'getSession' });
        return;
      case 'llm':
        this.expr(b, e.prompt);
        b.emit(pos, { op: 'llm' });
        return;
      case 'availableAgent':
        if (e.queue) this.expr(b, e.queue);
        b.emit(pos, { op: 'availableAgent', hasQueue: !!e.queue });
        return;
      case 'saveState':
        b.emit(pos, { op: 'saveState' });
        return;
    }
  }
}
