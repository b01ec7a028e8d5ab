import { z } from 'zod';
import { type Card, type CardButton, CardSchema } from '../cards/card.ts';
import { deepCopy } from '../clone.ts';
import type { BotContext } from '../engine/bot.ts';
import { type DebugTopic, SessionSendError } from '../engine/session-control.ts';
import type { Attachment } from '../envelope.ts';
import { bareRecord, own, setOwn } from '../own.ts';
import { BUILTINS } from './builtins.ts';
import { type CompiledScript, type Instr, MAIN_UNIT, scriptFileName, type Unit } from './compiler.ts';
import { DialogRuntimeError } from './errors.ts';
import { checkAnswer, checkChoice } from './hear.ts';
import { readSession, SESSION_KEYS } from './session-info.ts';
import type { DialogState, FrameState, WaitState } from './state.ts';
import {
  compare,
  describe,
  equals,
  fromJson,
  isList,
  isRecord,
  plus,
  toInteger,
  toNumber,
  toText,
  truthy,
  type Value,
} from './values.ts';

/** Names a script reads as the session's own facts when it has no variable of that name. */
export const SESSION_VARIABLES: readonly string[] = ['session_id', 'user_id', 'channel'];

/**
 * Variables the hub gives a script itself: the person's message and the session's facts. Values
 * from outside the script (a tool's arguments) never take these names.
 */
export const RESERVED_VARIABLES: readonly string[] = ['message', ...SESSION_VARIABLES];

/** Longest list a script may build: keeps `a = a + [x]` in a loop from eating the process. */
export const MAX_LIST_ITEMS = 10_000;

export interface DialogLimits {
  /** Session variables a session may hold. */
  maxVariables: number;
  /** JSON bytes of the session's variables, and separately of a waiting script's locals. */
  maxVariableBytes: number;
  /** Instructions one turn may run before it is stopped as a runaway loop. */
  maxStepsPerTurn: number;
  /** Invalid answers to one HEAR before the script goes on with an empty answer. */
  maxHearTries: number;
  /** Nested FUNCTION, SUB and RUN calls. */
  maxCallDepth: number;
  /** Knowledge bases a session may use at once (`sessions.maxKnowledgeBases`). */
  maxKnowledgeBases: number;
  /** `SET CONTEXT` entries a session may hold. */
  maxContextEntries: number;
  /** `ADD SUGGESTION`s a session may hold. */
  maxSuggestions: number;
  /** `USE TOOL` names a session may hold. */
  maxTools: number;
}

export interface MachineHost {
  /** The current version of a script, or undefined when the bot has none by that name. */
  script(name: string): Promise<CompiledScript | undefined>;
  llm(prompt: string, ctx: BotContext): Promise<string>;
  limits: DialogLimits;
  /** Steps used so far in this turn, shared by every run of the turn. */
  steps: { used: number };
}

interface Frame extends Omit<FrameState, 'at'> {
  code: Unit;
  compiled: CompiledScript;
}

export type RunOutcome = { kind: 'finished' } | { kind: 'waiting'; state: DialogState };

const SavedStateSchema = z.object({
  variables: z.record(z.string(), z.unknown()).default({}),
  context: z.record(z.string(), z.string()).default({}),
  kbs: z.array(z.string()).default([]),
  tools: z.array(z.string()).default([]),
  suggestions: z.array(z.object({ text: z.string(), value: z.string().optional() })).default([]),
});

function jsonBytes(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v ?? null));
}

/** Bytes of a map counted as the variables' are: each name and its value, as JSON. */
function entriesBytes(map: Record<string, unknown>): number {
  let bytes = 0;
  for (const [k, v] of Object.entries(map)) bytes += jsonBytes(k) + jsonBytes(v);
  return bytes;
}

/**
 * Runs compiled scripts against one turn's context until they finish or wait at HEAR. It holds
 * no state of its own between turns: `snapshot` turns the frames into JSON, and `restore`
 * brings them back, in whatever process the next message lands.
 */
export class Machine {
  private frames: Frame[] = [];
  private waiting: WaitState | undefined;
  private variableSizes: Map<string, number> | undefined;
  private variableBytes = 0;

  constructor(
    private readonly host: MachineHost,
    private readonly ctx: BotContext,
    /** `end` runs ON SESSION END blocks and `sub` RUN IN SESSION scripts: HEAR cannot wait in either. */
    private readonly mode: 'dialog' | 'end' | 'sub' = 'dialog',
  ) {}

  /** Starts a unit (a script's main part, or its ON SESSION END block) in a fresh frame. */
  begin(script: CompiledScript, unit: string, locals: Record<string, Value>): void {
    const code = script.units.get(unit);
    if (!code)
      throw new DialogRuntimeError(`${script.name} has no ${unit === MAIN_UNIT ? 'main part' : unit}`);
    this.frames.push({
      script: script.name,
      hash: script.hash,
      unit,
      pc: 0,
      locals: bareRecord(locals),
      stack: [],
      code,
      compiled: script,
    });
  }

  /** Takes up frames saved at HEAR; each frame's script and pc must already fit the current versions. */
  restore(state: DialogState, scripts: Map<string, CompiledScript>): void {
    this.frames = state.frames.map((f) => {
      const compiled = scripts.get(f.script)!;
      return {
        script: f.script,
        hash: compiled.hash,
        unit: f.unit,
        pc: f.pc,
        locals: bareRecord(f.locals),
        stack: f.stack,
        code: compiled.units.get(f.unit)!,
        compiled,
      };
    });
    this.waiting = state.waiting;
  }

  /** Answers the HEAR the restored frames wait at, then runs on. */
  async answer(text: string): Promise<RunOutcome> {
    const waiting = this.waiting;
    if (!waiting) throw new Error('answer() without a waiting HEAR');
    const frame = this.top();
    const result =
      waiting.choices !== null
        ? checkChoice(waiting.choices, text)
        : waiting.type !== null
          ? checkAnswer(waiting.type, text)
          : ({ ok: true, value: text } as const);
    if (result.ok) {
      frame.locals[waiting.target] = result.value;
    } else {
      const tries = waiting.tries + 1;
      if (tries < this.host.limits.maxHearTries) {
        this.ctx.talk(result.retry);
        this.waiting = { ...waiting, tries };
        return { kind: 'waiting', state: this.snapshot() };
      }
      // Bounded tries: the script goes on with an empty answer, and can check for it.
      this.ctx.log('dialog.hear_gave_up', { script: frame.script, variable: waiting.target, tries });
      frame.locals[waiting.target] = null;
    }
    this.waiting = undefined;
    frame.pc++;
    return this.run();
  }

  private top(): Frame {
    return this.frames.at(-1)!;
  }

  /** The JSON that `session_state.dialog` keeps while a script waits. */
  snapshot(): DialogState {
    const last = this.frames.length - 1;
    return {
      v: 1,
      frames: this.frames.map((f, i) => {
        // A waiting frame stands at its HEAR; a calling frame just past its call.
        const at = i === last ? f.pc : f.pc - 1;
        const owner = f.code.owner[at] ?? -1;
        const statement = f.code.statements[owner];
        return {
          script: f.script,
          hash: f.hash,
          unit: f.unit,
          pc: f.pc,
          locals: f.locals,
          stack: f.stack,
          at: {
            anchor: statement?.anchor ?? '',
            offset: statement ? at - statement.start : 0,
            op: f.code.code[at]?.op ?? '',
          },
        };
      }),
      waiting: this.waiting!,
    };
  }

  /** Runs until every frame has returned, or a HEAR waits. */
  async run(): Promise<RunOutcome> {
    const { limits, steps } = this.host;
    while (this.frames.length > 0) {
      const frame = this.top();
      const instr = frame.code.code[frame.pc];
      if (!instr) throw new DialogRuntimeError(`${frame.script} ran past its end`);
      if (++steps.used > limits.maxStepsPerTurn)
        throw new DialogRuntimeError(
          `stopped after ${limits.maxStepsPerTurn} steps in one turn: a loop that never waits for an answer?`,
          frame.script,
          instr.line,
          instr.column,
        );
      frame.pc++;
      try {
        // Most instructions finish at once; only a few (RUN, GET MEMORY, LLM) wait for I/O.
        const step = this.exec(frame, instr);
        if (step === true || (step !== false && (await step))) {
          this.checkLocalsSize();
          return { kind: 'waiting', state: this.snapshot() };
        }
      } catch (err) {
        const runtime =
          err instanceof DialogRuntimeError
            ? err
            : new DialogRuntimeError((err as Error).message ?? String(err));
        throw runtime.at(frame.script, instr);
      }
    }
    return { kind: 'finished' };
  }

  private pop(frame: Frame): Value {
    if (frame.stack.length === 0) throw new DialogRuntimeError('internal: operand stack is empty');
    return frame.stack.pop()!;
  }

  private popMany(frame: Frame, n: number): Value[] {
    return n === 0 ? [] : frame.stack.splice(frame.stack.length - n, n);
  }

  private lookup(frame: Frame, name: string): Value {
    // Locals have no prototype; own() keeps it so should one ever slip in with one.
    const local = own(frame.locals, name);
    if (local !== undefined) return local;
    if (frame.unit !== MAIN_UNIT) {
      // A FUNCTION or SUB sees its script's main variables (read-only) after its own.
      for (let i = this.frames.length - 1; i >= 0; i--) {
        const f = this.frames[i]!;
        if (f.script === frame.script && f.unit === MAIN_UNIT && Object.hasOwn(f.locals, name))
          return f.locals[name]!;
      }
    }
    if (SESSION_VARIABLES.includes(name))
      return readSession(name, this.ctx.session, this.ctx.envelope) ?? null;
    throw new DialogRuntimeError(
      `variable ${name} has no value yet (assign it first, or read a session variable with GET ${name})`,
    );
  }

  private checkValue(v: Value): Value {
    const max = this.host.limits.maxVariableBytes;
    if (typeof v === 'string' && v.length > max)
      throw new DialogRuntimeError(`a text grew beyond the limit of ${max} bytes`);
    if (Array.isArray(v) && v.length > MAX_LIST_ITEMS)
      throw new DialogRuntimeError(`a list cannot hold more than ${MAX_LIST_ITEMS} items`);
    return v;
  }

  private checkLocalsSize(): void {
    const max = this.host.limits.maxVariableBytes;
    const bytes = jsonBytes(this.frames.map((f) => [f.locals, f.stack]));
    if (bytes > max)
      throw new DialogRuntimeError(
        `the script's variables take ${bytes} bytes, more than the limit of ${max}`,
      );
  }

  /** SET: a session variable, within the configured count and size. */
  private setVariable(name: string, value: Value): void {
    const { maxVariables, maxVariableBytes } = this.host.limits;
    const vars = this.ctx.state.variables;
    if (!this.variableSizes) {
      this.variableSizes = new Map(Object.entries(vars).map(([k, v]) => [k, jsonBytes(k) + jsonBytes(v)]));
      this.variableBytes = [...this.variableSizes.values()].reduce((a, b) => a + b, 0);
    }
    const before = this.variableSizes.get(name) ?? 0;
    if (value === null) {
      this.ctx.set(name, undefined);
      this.variableSizes.delete(name);
      this.variableBytes -= before;
      return;
    }
    if (!Object.hasOwn(vars, name) && Object.keys(vars).length >= maxVariables)
      throw new DialogRuntimeError(
        `a session may hold at most ${maxVariables} variables; ${name} would be one more`,
      );
    const size = jsonBytes(name) + jsonBytes(value);
    if (this.variableBytes - before + size > maxVariableBytes)
      throw new DialogRuntimeError(
        `session variables would take more than the limit of ${maxVariableBytes} bytes`,
      );
    this.ctx.set(name, value);
    this.variableSizes.set(name, size);
    this.variableBytes += size - before;
  }

  /** SET CONTEXT: an entry of the session's context, within its own count and maxVariableBytes. */
  private setContext(name: string, value: string): void {
    const context = this.ctx.state.context;
    const what = `SET CONTEXT "${name}"`;
    const old = own(context, name);
    if (old === undefined)
      this.checkCount(
        what,
        Object.keys(context).length,
        this.host.limits.maxContextEntries,
        'context entries',
        'CLEAR CONTEXT one first',
      );
    const before = old === undefined ? 0 : jsonBytes(name) + jsonBytes(old);
    this.checkBytes(
      what,
      entriesBytes(context) - before + jsonBytes(name) + jsonBytes(value),
      "the session's context",
    );
    setOwn(context, name, value);
  }

  /**
   * The session's context, suggestions and tools are kept from turn to turn and loaded and
   * written with every turn: a script that adds to them on each message (keyed on what the
   * person says) must meet a limit, as SET does.
   */
  private checkCount(what: string, count: number, max: number, items: string, hint: string): void {
    if (count >= max)
      throw new DialogRuntimeError(`${what}: a session may hold at most ${max} ${items}; ${hint}`);
  }

  private checkBytes(what: string, bytes: number, whose: string): void {
    const max = this.host.limits.maxVariableBytes;
    if (bytes > max)
      throw new DialogRuntimeError(`${what}: ${whose} would take more than the limit of ${max} bytes`);
  }

  private nonEmptyName(v: Value, what: string): string {
    const name = toText(v).trim();
    if (!name) throw new DialogRuntimeError(`${what} needs a name, got ${describe(v)}`);
    return name;
  }

  private call(compiled: CompiledScript, unit: string, locals: Record<string, Value>): void {
    const max = this.host.limits.maxCallDepth;
    if (this.frames.length >= max)
      throw new DialogRuntimeError(
        `calls nested deeper than ${max}: a FUNCTION, SUB or RUN that never ends?`,
      );
    const code = compiled.units.get(unit);
    if (!code) throw new DialogRuntimeError(`${compiled.name} has no ${unit}`);
    this.frames.push({
      script: compiled.name,
      hash: compiled.hash,
      unit,
      pc: 0,
      locals: bareRecord(locals),
      stack: [],
      code,
      compiled,
    });
  }

  /**
   * Executes one instruction (the frame's pc already points past it). True when HEAR waits; a
   * promise only for the instructions that wait for I/O, so a turn's many other steps allocate none.
   */
  private exec(frame: Frame, instr: Instr): boolean | Promise<boolean> {
    const { ctx } = this;
    const state = ctx.state;
    switch (instr.op) {
      case 'push':
        frame.stack.push(instr.value);
        return false;
      case 'load':
        frame.stack.push(this.lookup(frame, instr.name));
        return false;
      case 'store':
        frame.locals[instr.name] = this.checkValue(this.pop(frame));
        return false;
      case 'storeIndex': {
        const value = this.pop(frame);
        const indexes = this.popMany(frame, instr.depth);
        if (!Object.hasOwn(frame.locals, instr.name)) frame.locals[instr.name] = [];
        frame.locals[instr.name] = this.checkValue(
          setIn(frame.locals[instr.name]!, indexes, value, instr.name),
        );
        return false;
      }
      case 'drop':
        for (const n of instr.names) delete frame.locals[n];
        return false;
      case 'pop':
        this.pop(frame);
        return false;
      case 'list':
        frame.stack.push(this.checkValue(this.popMany(frame, instr.count)));
        return false;
      case 'index': {
        const index = this.pop(frame);
        frame.stack.push(getIn(this.pop(frame), index));
        return false;
      }
      case 'unary': {
        const v = this.pop(frame);
        frame.stack.push(instr.operator === 'NOT' ? !truthy(v) : -toNumber(v));
        return false;
      }
      case 'binary': {
        const right = this.pop(frame);
        const left = this.pop(frame);
        const result = binary(instr.operator, left, right);
        if (typeof result === 'number' && !Number.isFinite(result))
          throw new DialogRuntimeError('the result of this calculation is too large');
        frame.stack.push(this.checkValue(result));
        return false;
      }
      case 'truthy':
        frame.stack.push(truthy(this.pop(frame)));
        return false;
      case 'jump':
        frame.pc = instr.to;
        return false;
      case 'jumpIfFalse':
        if (!truthy(this.pop(frame))) frame.pc = instr.to;
        return false;
      case 'jumpIfTrue':
        if (truthy(this.pop(frame))) frame.pc = instr.to;
        return false;
      case 'builtin': {
        const args = this.popMany(frame, instr.argc);
        const limits = { maxTextLength: this.host.limits.maxVariableBytes };
        frame.stack.push(this.checkValue(BUILTINS.get(instr.name)!.fn(args, limits)));
        return false;
      }
      case 'call': {
        const args = this.popMany(frame, instr.argc);
        const locals = bareRecord<Value>();
        const params = frame.compiled.units.get(instr.routine)?.params ?? [];
        params.forEach((p, i) => {
          locals[p] = args[i] ?? null;
        });
        this.call(frame.compiled, instr.routine, locals);
        return false;
      }
      case 'return': {
        const v = this.pop(frame);
        this.frames.pop();
        this.frames.at(-1)?.stack.push(v);
        return false;
      }
      case 'run':
        return this.runScript(frame, scriptFileName(this.nonEmptyName(this.pop(frame), 'RUN')));
      case 'end':
        this.frames = [];
        return false;
      case 'talk': {
        // Nothing to say is not a message: channels refuse empty texts.
        const text = toText(this.pop(frame));
        if (text.trim() !== '') ctx.talk(text);
        return false;
      }
      case 'sendFile': {
        const caption = instr.hasCaption ? toText(this.pop(frame)) : '';
        const ref = this.nonEmptyName(this.pop(frame), instr.image ? 'SHOW IMAGE' : 'SEND FILE');
        return storeMedia(ctx, ref, instr.image ? 'SHOW IMAGE' : 'SEND FILE').then((file) => {
          ctx.talk({ text: caption, files: [file] });
          return false;
        });
      }
      case 'talkCard': {
        const [title, text, image, ...buttons] = this.popMany(frame, instr.argc);
        return cardFromValues(ctx, {
          title,
          text,
          image,
          buttons: buttons.flatMap((b) => (isList(b) ? b : [b])),
        }).then((card) => {
          ctx.talk({ card });
          return false;
        });
      }
      case 'talkCarousel': {
        const list = this.pop(frame);
        if (!isList(list) || list.length === 0)
          throw new DialogRuntimeError(
            'TALK CAROUSEL needs a list of cards (records with title, text, image, buttons)',
          );
        return Promise.all(
          list.map((item) => {
            if (!isRecord(item)) throw new DialogRuntimeError('TALK CAROUSEL: each card is a record');
            const buttons = item.buttons ?? null;
            return cardFromValues(ctx, {
              title: item.title ?? null,
              text: item.text ?? null,
              image: item.image ?? null,
              buttons: isList(buttons) ? buttons : buttons === null ? [] : [buttons],
            });
          }),
        ).then((cards) => {
          ctx.talk({ cards });
          return false;
        });
      }
      case 'hear': {
        if (this.mode === 'end')
          throw new DialogRuntimeError('HEAR cannot wait for an answer while the session is ending');
        if (this.mode === 'sub')
          throw new DialogRuntimeError(
            'HEAR cannot wait for an answer in a sub-session: RUN IN SESSION runs its script to the end within this turn; ask in the parent session',
          );
        const choices = this.popMany(frame, instr.choices)
          .flatMap((c) => (isList(c) ? c : [c]))
          .map(toText);
        if (instr.choices > 0 && choices.length === 0)
          throw new DialogRuntimeError('HEAR AS needs at least one choice');
        frame.pc--;
        this.waiting = {
          target: instr.target,
          type: instr.type,
          choices: instr.choices > 0 ? choices : null,
          tries: 0,
          askedIn: ctx.envelope.id,
        };
        return true;
      }
      case 'setVar': {
        const value = this.pop(frame);
        this.setVariable(this.nonEmptyName(this.pop(frame), 'SET'), value);
        return false;
      }
      case 'getVar': {
        const name = this.nonEmptyName(this.pop(frame), 'GET');
        if (name.toLowerCase().startsWith('session.')) {
          frame.stack.push(this.session(name));
          return false;
        }
        frame.stack.push(fromJson(ctx.get(name)));
        return false;
      }
      case 'setMemory': {
        const value = this.pop(frame);
        const memory = instr.scope === 'user' ? ctx.user.memory : ctx.memory;
        memory.set(this.nonEmptyName(this.pop(frame), `SET ${instr.scope.toUpperCase()} MEMORY`), value);
        return false;
      }
      case 'getMemory': {
        const key = this.nonEmptyName(this.pop(frame), `GET ${instr.scope.toUpperCase()} MEMORY`);
        const memory = instr.scope === 'user' ? ctx.user.memory : ctx.memory;
        return this.pushWhenReady(frame, memory.get(key), fromJson);
      }
      case 'getSession':
        frame.stack.push(this.session(toText(this.pop(frame))));
        return false;
      case 'setContext': {
        const value = toText(this.pop(frame));
        this.setContext(this.nonEmptyName(this.pop(frame), 'SET CONTEXT'), value);
        return false;
      }
      case 'clearContext':
        if (instr.all) state.context = {};
        else delete state.context[toText(this.pop(frame))];
        return false;
      case 'useKb': {
        const name = this.nonEmptyName(this.pop(frame), 'USE KB');
        if (state.kbs.includes(name)) return false;
        const max = this.host.limits.maxKnowledgeBases;
        if (state.kbs.length >= max)
          throw new DialogRuntimeError(
            `USE KB "${name}": a session may use at most ${max} knowledge bases at once; CLEAR KB one first`,
          );
        state.kbs.push(name);
        return false;
      }
      case 'clearKb':
        if (instr.all) state.kbs = [];
        else {
          const name = toText(this.pop(frame));
          state.kbs = state.kbs.filter((k) => k !== name);
        }
        return false;
      case 'useTool': {
        const name = this.nonEmptyName(this.pop(frame), 'USE TOOL');
        if (state.tools.includes(name)) return false;
        const what = `USE TOOL "${name}"`;
        this.checkCount(what, state.tools.length, this.host.limits.maxTools, 'tools', 'CLEAR TOOL one first');
        this.checkBytes(what, jsonBytes(state.tools) + jsonBytes(name), "the session's tools");
        state.tools.push(name);
        return false;
      }
      case 'clearTools':
        if (instr.all) state.tools = [];
        else {
          const name = toText(this.pop(frame));
          state.tools = state.tools.filter((t) => t !== name);
        }
        return false;
      case 'addSuggestion': {
        const value = instr.hasValue ? toText(this.pop(frame)) : undefined;
        const text = this.nonEmptyName(this.pop(frame), 'ADD SUGGESTION');
        const suggestion = value === undefined ? { text } : { text, value };
        const at = state.suggestions.findIndex((s) => s.text === text);
        const what = `ADD SUGGESTION "${text}"`;
        const { maxSuggestions } = this.host.limits;
        if (at < 0)
          this.checkCount(
            what,
            state.suggestions.length,
            maxSuggestions,
            'suggestions',
            'CLEAR SUGGESTIONS first',
          );
        const replaced = at >= 0 ? jsonBytes(state.suggestions[at]) : 0;
        this.checkBytes(
          what,
          jsonBytes(state.suggestions) - replaced + jsonBytes(suggestion),
          "the session's suggestions",
        );
        if (at >= 0) state.suggestions[at] = suggestion;
        else state.suggestions.push(suggestion);
        return false;
      }
      case 'clearSuggestions':
        state.suggestions = [];
        return false;
      case 'logSession': {
        const value = instr.hasValue ? this.pop(frame) : null;
        ctx.log(this.nonEmptyName(this.pop(frame), 'LOG SESSION'), { value });
        return false;
      }
      case 'log': {
        const message = toText(this.pop(frame));
        ctx.logger.info({ event: 'dialog.log', script: frame.script, line: instr.line, message });
        ctx.log('log', { message });
        return false;
      }
      case 'transfer': {
        const queue = instr.hasQueue ? toText(this.pop(frame)) : '';
        const agent = instr.hasAgent ? toText(this.pop(frame)) : '';
        ctx.handoff({ agentId: agent || null, queue: queue || null });
        return false;
      }
      case 'availableAgent': {
        const queue = instr.hasQueue ? toText(this.pop(frame)) : '';
        return this.pushWhenReady(frame, ctx.availableAgent(queue || null), (id) => toText(id));
      }
      case 'llm':
        return this.pushWhenReady(frame, this.host.llm(toText(this.pop(frame)), ctx), (answer) =>
          this.checkValue(toText(answer)),
        );
      case 'saveState':
        frame.stack.push(
          fromJson({
            variables: state.variables,
            context: state.context,
            kbs: state.kbs,
            tools: state.tools,
            suggestions: state.suggestions,
          }),
        );
        return false;
      case 'restoreState': {
        this.restoreSessionState(this.pop(frame));
        return false;
      }
      case 'forCheck': {
        const i = toNumber(this.lookup(frame, instr.variable), 'a number as the FOR counter');
        const end = toNumber(frame.locals[instr.end] ?? null, 'a number after TO');
        const step = toNumber(frame.locals[instr.step] ?? null, 'a number after STEP');
        if (step === 0) throw new DialogRuntimeError('FOR with STEP 0 would never end');
        if (step > 0 ? i > end : i < end) frame.pc = instr.to;
        return false;
      }
      case 'forStep': {
        const i = toNumber(this.lookup(frame, instr.variable), 'a number as the FOR counter');
        frame.locals[instr.variable] = i + toNumber(frame.locals[instr.step] ?? null);
        return false;
      }
      case 'eachNext': {
        const list = frame.locals[instr.list] ?? null;
        if (!isList(list)) throw new DialogRuntimeError(`FOR EACH needs a list, got ${describe(list)}`);
        const index = toInteger(frame.locals[instr.index] ?? 0);
        if (index >= list.length) {
          frame.pc = instr.to;
          return false;
        }
        frame.locals[instr.variable] = list[index]!;
        frame.locals[instr.index] = index + 1;
        return false;
      }
      default:
        return this.execSession(frame, instr);
    }
  }

  /** SEND TO SESSION, sub-sessions, templates and DEBUG SHOW: `ctx.sessions` does the work. */
  private execSession(frame: Frame, instr: Instr): boolean | Promise<boolean> {
    const sessions = this.ctx.sessions;
    switch (instr.op) {
      case 'sendToSession': {
        const text = toText(this.pop(frame));
        const id = toText(this.pop(frame));
        const sent = sessions.send(id, text);
        if (!instr.keep) return sent.then(() => false);
        // `x = SEND TO SESSION …`: the refusal is the script's to test ("" when queued).
        return sent.then(
          () => {
            frame.stack.push('');
            return false;
          },
          (err: Error) => {
            if (!(err instanceof SessionSendError)) throw err;
            frame.stack.push(err.message);
            return false;
          },
        );
      }
      case 'createSubSession':
        frame.stack.push(sessions.createSub());
        return false;
      case 'runInSession': {
        const name = scriptFileName(this.nonEmptyName(this.pop(frame), 'RUN IN SESSION'));
        const id = toText(this.pop(frame));
        return this.runInSession(id, name);
      }
      case 'mergeSession':
        return sessions.merge(toText(this.pop(frame))).then(() => false);
      case 'applyTemplate': {
        const name = this.nonEmptyName(this.pop(frame), 'APPLY SESSION TEMPLATE');
        sessions.applyTemplate(name);
        // The template may have set variables past the limits' accounting: count them again.
        this.variableSizes = undefined;
        return false;
      }
      case 'debugShow':
        sessions.debugShow(instr.what.toLowerCase() as DebugTopic);
        return false;
      default:
        throw new DialogRuntimeError(`internal: unknown instruction ${(instr as Instr).op}`);
    }
  }

  /** Runs `name` in the sub-session to its end, sharing this turn's step budget; HEAR there is an error. */
  private async runInSession(id: string, name: string): Promise<boolean> {
    const compiled = await this.host.script(name);
    if (!compiled) throw new DialogRuntimeError(`RUN IN SESSION: this bot has no script ${name}`);
    if (this.frames.length >= this.host.limits.maxCallDepth)
      throw new DialogRuntimeError(`calls nested deeper than ${this.host.limits.maxCallDepth}`);
    await this.ctx.sessions.runIn(id, async (child) => {
      const machine = new Machine(this.host, child, 'sub');
      machine.begin(compiled, MAIN_UNIT, { message: toText(this.ctx.text) });
      await machine.run();
    });
    return false;
  }

  private async runScript(frame: Frame, name: string): Promise<boolean> {
    const compiled = await this.host.script(name);
    if (!compiled) throw new DialogRuntimeError(`RUN: this bot has no script ${name}`);
    const message = Object.hasOwn(frame.locals, 'message') ? frame.locals.message! : toText(this.ctx.text);
    this.call(compiled, MAIN_UNIT, { message });
    return false;
  }

  private async pushWhenReady<T>(
    frame: Frame,
    pending: Promise<T>,
    toValue: (v: T) => Value,
  ): Promise<boolean> {
    frame.stack.push(toValue(await pending));
    return false;
  }

  private session(key: string): Value {
    const name = key.trim();
    const value = readSession(name, this.ctx.session, this.ctx.envelope);
    if (value === undefined)
      throw new DialogRuntimeError(`GET SESSION knows no "${name}": use one of ${SESSION_KEYS.join(', ')}`);
    return value;
  }

  private restoreSessionState(v: Value): void {
    let raw: unknown = v;
    if (typeof v === 'string') {
      try {
        raw = JSON.parse(v);
      } catch {
        raw = undefined;
      }
    }
    const parsed = SavedStateSchema.safeParse(raw);
    if (!parsed.success)
      throw new DialogRuntimeError('RESTORE SESSION STATE needs a value made by SAVE SESSION STATE');
    const saved = parsed.data;
    const { maxVariables, maxVariableBytes } = this.host.limits;
    const count = Object.keys(saved.variables).length;
    if (count > maxVariables)
      throw new DialogRuntimeError(
        `the saved state holds ${count} variables, more than the limit of ${maxVariables}`,
      );
    if (jsonBytes(saved.variables) > maxVariableBytes)
      throw new DialogRuntimeError(`the saved state's variables take more than ${maxVariableBytes} bytes`);
    this.checkSaved('context entries', Object.keys(saved.context).length, this.host.limits.maxContextEntries);
    this.checkSaved('suggestions', saved.suggestions.length, this.host.limits.maxSuggestions);
    this.checkSaved('tools', saved.tools.length, this.host.limits.maxTools);
    this.checkSaved('knowledge bases', saved.kbs.length, this.host.limits.maxKnowledgeBases);
    for (const [what, bytes] of [
      ['context takes', entriesBytes(saved.context)],
      ['suggestions take', jsonBytes(saved.suggestions)],
      ['tools take', jsonBytes(saved.tools)],
    ] as const)
      if (bytes > maxVariableBytes)
        throw new DialogRuntimeError(`the saved state's ${what} more than ${maxVariableBytes} bytes`);
    const state = this.ctx.state;
    state.variables = deepCopy(saved.variables);
    state.context = { ...saved.context };
    state.kbs = [...saved.kbs];
    state.tools = [...saved.tools];
    state.suggestions = saved.suggestions.map((s) => (s.value === undefined ? { text: s.text } : { ...s }));
    this.variableSizes = undefined;
  }

  private checkSaved(items: string, count: number, max: number): void {
    if (count > max)
      throw new DialogRuntimeError(`the saved state holds ${count} ${items}, more than the limit of ${max}`);
  }
}

function listIndex(list: Value[], index: Value, allowAppend: boolean): number {
  const i = toInteger(index, 'a whole number as the list index');
  const max = allowAppend ? list.length : list.length - 1;
  if (i < 0 || i > max)
    throw new DialogRuntimeError(
      list.length === 0 && !allowAppend
        ? `index ${i} is outside the list: it is empty`
        : `index ${i} is outside the list (0 to ${max})`,
    );
  return i;
}

function getIn(target: Value, index: Value): Value {
  if (isList(target)) return target[listIndex(target, index, false)]!;
  if (isRecord(target)) return own(target, toText(index)) ?? null;
  if (typeof target === 'string') {
    const chars = [...target];
    return chars[listIndex(chars, index, false)]!;
  }
  throw new DialogRuntimeError(`cannot take an item of ${describe(target)}`);
}

/** `a[i][j] = v` on a copy: values in frames stay plain and unshared. */
function setIn(target: Value, indexes: Value[], value: Value, name: string): Value {
  const [first, ...rest] = indexes;
  if (first === undefined) return value;
  if (isList(target)) {
    const copy = [...target];
    const i = listIndex(copy, first, true);
    copy[i] = setIn(copy[i] ?? [], rest, value, name);
    return copy;
  }
  if (isRecord(target)) {
    const key = toText(first);
    const copy = { ...target };
    setOwn(copy, key, setIn(own(target, key) ?? [], rest, value, name));
    return copy;
  }
  throw new DialogRuntimeError(`${name} is ${describe(target)}, not a list`);
}

function binary(op: string, left: Value, right: Value): Value {
  switch (op) {
    case '+':
      return plus(left, right);
    case '&':
      return toText(left) + toText(right);
    case '-':
      return toNumber(left) - toNumber(right);
    case '*':
      return toNumber(left) * toNumber(right);
    case '/': {
      const d = toNumber(right);
      if (d === 0) throw new DialogRuntimeError('division by zero');
      return toNumber(left) / d;
    }
    case '\\': {
      const d = Math.trunc(toNumber(right));
      if (d === 0) throw new DialogRuntimeError('division by zero');
      return Math.trunc(Math.trunc(toNumber(left)) / d);
    }
    case 'MOD': {
      const d = toNumber(right);
      if (d === 0) throw new DialogRuntimeError('division by zero');
      return toNumber(left) % d;
    }
    case '^':
      return toNumber(left) ** toNumber(right);
    case '=':
      return equals(left, right);
    case '<>':
      return !equals(left, right);
    case '<':
      return compare(left, right) < 0;
    case '>':
      return compare(left, right) > 0;
    case '<=':
      return compare(left, right) <= 0;
    case '>=':
      return compare(left, right) >= 0;
    default:
      throw new DialogRuntimeError(`unknown operator ${op}`);
  }
}

/** A media name or URL stored for sending; a missing file is the script's error. */
async function storeMedia(ctx: BotContext, ref: string, statement: string): Promise<Attachment> {
  try {
    return await ctx.file(ref);
  } catch (err) {
    throw new DialogRuntimeError(`${statement} "${ref}": ${(err as Error).message}`);
  }
}

/** A button written as "Title|value" or "Title|https://…" (a bare "Title" sends its title), or a record {title, value|url}. */
function buttonFromValue(v: Value): CardButton {
  if (isRecord(v)) {
    const title = toText(v.title ?? null);
    if (typeof v.url === 'string' && v.url) return { title, url: v.url };
    return { title, value: toText(v.value ?? v.title ?? null) };
  }
  const text = toText(v);
  const bar = text.indexOf('|');
  const title = (bar < 0 ? text : text.slice(0, bar)).trim();
  const target = (bar < 0 ? text : text.slice(bar + 1)).trim();
  return /^https?:\/\//i.test(target) ? { title, url: target } : { title, value: target || title };
}

async function cardFromValues(
  ctx: BotContext,
  v: { title: Value | undefined; text: Value | undefined; image: Value | undefined; buttons: Value[] },
): Promise<Card> {
  const image = toText(v.image ?? null).trim();
  const stored = image ? await storeMedia(ctx, image, 'TALK CARD') : undefined;
  const parsed = CardSchema.safeParse({
    ...(toText(v.title ?? null) ? { title: toText(v.title ?? null) } : {}),
    ...(toText(v.text ?? null) ? { text: toText(v.text ?? null) } : {}),
    ...(stored ? { image: { fileId: stored.fileId, name: stored.name, type: stored.type } } : {}),
    buttons: v.buttons.map(buttonFromValue),
  });
  if (!parsed.success)
    throw new DialogRuntimeError(
      `TALK CARD: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'card'}: ${i.message}`).join('; ')}`,
    );
  return parsed.data;
}
