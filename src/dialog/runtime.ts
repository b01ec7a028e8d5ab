import type { BotSettings } from '../config/bots.ts';
import { type BotContext, type BotHandler, NoLlmConfiguredError } from '../engine/bot.ts';
import type { Suggestion } from '../store/records.ts';
import { type CompiledScript, END_UNIT, MAIN_UNIT, TRANSFER_END_UNIT } from './compiler.ts';
import { DialogRuntimeError } from './errors.ts';
import type { ScriptLibrary } from './library.ts';
import { Machine, type MachineHost, type RunOutcome } from './machine.ts';
import { type DialogState, DialogStateSchema, type FrameState } from './state.ts';
import { TurnBuffer } from './turn-buffer.ts';
import type { Value } from './values.ts';

export const START_SCRIPT = 'start.bas';
export const MESSAGE_SCRIPT = 'message.bas';

/** What a dialog bot gets from outside its scripts. Later issues plug the LLM in here. */
export interface DialogServices {
  /** `answer = LLM "prompt"`. `ctx.state` holds what the script has set so far (context, KBs, tools). */
  llm(prompt: string, ctx: BotContext): Promise<string>;
  /** A message that no script waits for, in a bot without message.bas. */
  fallback(ctx: BotContext): void | Promise<void>;
}

export { NoLlmConfiguredError };

export interface DialogBotOptions {
  library: ScriptLibrary;
  settings: BotSettings;
  services?: Partial<DialogServices>;
}

/** Steps used per turn: a turn's start and message runs share one budget. */
const turnSteps = new WeakMap<BotContext, { used: number }>();

/** The handler of a bot whose folder holds `.bas` scripts. */
export function createDialogHandler(options: DialogBotOptions): BotHandler {
  const runtime = new DialogRuntime(options);
  return {
    onStart: (ctx) => runtime.onStart(ctx),
    onMessage: (ctx) => runtime.onMessage(ctx),
    onEnd: (ctx) => runtime.onEnd(ctx),
    onTransferEnd: (ctx) => runtime.onTransferEnd(ctx),
  };
}

class DialogRuntime {
  private readonly library: ScriptLibrary;
  private readonly settings: BotSettings;
  private readonly services: DialogServices;
  /** The machine's limits: the same for every turn. */
  private readonly limits: MachineHost['limits'];

  constructor(options: DialogBotOptions) {
    this.library = options.library;
    this.settings = options.settings;
    this.limits = {
      ...options.settings.dialog,
      maxKnowledgeBases: options.settings.sessions.maxKnowledgeBases,
    };
    const { defaultReply } = options.settings;
    this.services = {
      llm: async () => {
        throw new NoLlmConfiguredError();
      },
      fallback: (ctx) => ctx.talk(defaultReply),
      ...options.services,
    };
  }

  async onStart(ctx: BotContext): Promise<void> {
    // Most turns find the script checked a moment ago: no wait for it.
    const start = this.library.recent(START_SCRIPT) ?? (await this.library.get(START_SCRIPT, ctx.logger));
    if (!start) {
      ctx.talk(this.settings.greeting);
      return;
    }
    await this.runFresh(ctx, start, MAIN_UNIT, '');
  }

  async onMessage(ctx: BotContext): Promise<void> {
    const waiting = this.waitingState(ctx);
    if (waiting) {
      // The message that opened the session is not the answer to a question asked in reply to it.
      if (waiting.waiting.askedIn === ctx.envelope.id) return;
      if (await this.resume(ctx, waiting)) return;
    }
    const message =
      this.library.recent(MESSAGE_SCRIPT) ?? (await this.library.get(MESSAGE_SCRIPT, ctx.logger));
    if (message) {
      await this.runFresh(ctx, message, MAIN_UNIT, ctx.text);
      return;
    }
    const buffer = new TurnBuffer(ctx);
    await this.services.fallback(buffer.context);
    buffer.commit(buffer.state.suggestions);
  }

  /** Runs the ON SESSION END blocks: start.bas's, message.bas's, then the other scripts' by name. */
  async onEnd(ctx: BotContext): Promise<void> {
    await this.runInEveryScript(ctx, END_UNIT, 'end');
  }

  /**
   * Runs the ON TRANSFER END blocks (start.bas's, message.bas's, then the others by name). A
   * question the bot was waiting on before the handoff is not waited on any longer.
   */
  async onTransferEnd(ctx: BotContext): Promise<void> {
    await this.runInEveryScript(ctx, TRANSFER_END_UNIT, 'dialog');
  }

  /** Forgets the awaited question, then runs `unit` of start.bas, message.bas, then the other scripts by name. */
  private async runInEveryScript(ctx: BotContext, unit: string, mode: 'dialog' | 'end'): Promise<void> {
    ctx.state.dialog = null;
    const names = await this.library.names();
    const order = [
      START_SCRIPT,
      MESSAGE_SCRIPT,
      ...names.filter((n) => n !== START_SCRIPT && n !== MESSAGE_SCRIPT),
    ];
    for (const name of order) {
      if (!names.includes(name)) continue;
      const script = await this.library.get(name, ctx.logger);
      if (script?.units.has(unit)) await this.runFresh(ctx, script, unit, '', mode);
    }
  }

  private waitingState(ctx: BotContext): DialogState | undefined {
    const raw = ctx.state.dialog;
    if (raw === null || raw === undefined) return undefined;
    const parsed = DialogStateSchema.safeParse(raw);
    if (parsed.success) return parsed.data;
    ctx.logger.warn({ event: 'dialog.state_invalid', err: parsed.error.message });
    ctx.state.dialog = null;
    return undefined;
  }

  private host(ctx: BotContext): MachineHost {
    let steps = turnSteps.get(ctx);
    if (!steps) {
      steps = { used: 0 };
      turnSteps.set(ctx, steps);
    }
    return {
      script: (name) => this.library.get(name, ctx.logger),
      llm: (prompt, c) => this.services.llm(prompt, c),
      limits: this.limits,
      steps,
    };
  }

  private async runFresh(
    ctx: BotContext,
    script: CompiledScript,
    unit: string,
    message: Value,
    mode: 'dialog' | 'end' = 'dialog',
  ): Promise<void> {
    const buffer = new TurnBuffer(ctx);
    const machine = new Machine(this.host(ctx), buffer.context, mode);
    // Not an async function of its own: `execute` catches what `begin` throws all the same.
    await this.execute(ctx, buffer, script.name, () => {
      machine.begin(script, unit, { message });
      return machine.run();
    });
  }

  /**
   * Resumes the script waiting at HEAR with this message. When a script changed since, the
   * position is looked up again by its statement; where that statement is gone the script
   * starts over for this session. False when nothing is left to resume or restart.
   */
  private async resume(ctx: BotContext, state: DialogState): Promise<boolean> {
    const scripts = new Map<string, CompiledScript>();
    const frames: FrameState[] = [];
    let problem: string | undefined;
    let changed = false;
    for (const [i, frame] of state.frames.entries()) {
      const script = scripts.get(frame.script) ?? (await this.library.get(frame.script, ctx.logger));
      if (!script) {
        problem = `${frame.script} no longer exists`;
        break;
      }
      scripts.set(frame.script, script);
      if (script.hash === frame.hash && script.units.has(frame.unit)) {
        frames.push(frame);
        continue;
      }
      const moved = relocate(frame, script, i === state.frames.length - 1);
      if (!moved) {
        problem = `${frame.script} changed and the statement it waited at (${frame.at.anchor || 'unknown'}) is gone`;
        break;
      }
      changed = true;
      frames.push(moved);
    }
    if (problem === undefined) {
      if (changed) ctx.logger.info({ event: 'dialog.resumed_changed_script', scripts: [...scripts.keys()] });
      const buffer = new TurnBuffer(ctx);
      const machine = new Machine(this.host(ctx), buffer.context);
      await this.execute(ctx, buffer, state.frames.at(-1)!.script, async () => {
        machine.restore({ ...state, frames }, scripts);
        return machine.answer(ctx.text);
      });
      return true;
    }
    const root = state.frames[0]!;
    ctx.state.dialog = null;
    ctx.logger.warn({ event: 'dialog.script_restarted', script: root.script, reason: problem });
    ctx.log('dialog.restarted', { script: root.script, reason: problem });
    const script = await this.library.get(root.script, ctx.logger);
    if (!script) return false;
    await this.runFresh(ctx, script, MAIN_UNIT, root.unit === MAIN_UNIT ? (root.locals.message ?? '') : '');
    return true;
  }

  /** Runs a script against a held-back turn: commits it when the run ends well, apologises when it fails. */
  private async execute(
    ctx: BotContext,
    buffer: TurnBuffer,
    scriptName: string,
    run: () => Promise<RunOutcome>,
  ): Promise<void> {
    try {
      const outcome = await run();
      buffer.state.dialog = outcome.kind === 'waiting' ? outcome.state : null;
      buffer.commit(suggestionsFor(buffer.state.suggestions, outcome));
    } catch (err) {
      const e =
        err instanceof DialogRuntimeError
          ? err
          : new DialogRuntimeError((err as Error).message ?? String(err));
      const script = e.file ?? scriptName;
      ctx.logger.error({
        event: 'dialog.runtime_error',
        at: e.line ? `${script}:${e.line}` : script,
        script,
        line: e.line,
        column: e.column,
        err: e.reason,
      });
      ctx.log('dialog.error', { script, line: e.line ?? null, column: e.column ?? null, message: e.reason });
      ctx.state.dialog = null;
      ctx.talk(this.settings.apology);
    }
  }
}

/** While a HEAR waits on a list of choices, the choices; otherwise the session's suggestions. */
function suggestionsFor(current: Suggestion[], outcome: RunOutcome): Suggestion[] {
  if (outcome.kind === 'waiting' && outcome.state.waiting.choices)
    return outcome.state.waiting.choices.map((text) => ({ text }));
  return current;
}

/** The frame moved to where its statement now is in a changed script, or undefined when it is gone. */
function relocate(frame: FrameState, script: CompiledScript, isTop: boolean): FrameState | undefined {
  const unit = script.units.get(frame.unit);
  if (!unit || !frame.at.anchor) return undefined;
  const index = unit.byAnchor.get(frame.at.anchor);
  if (index === undefined) return undefined;
  const statement = unit.statements[index]!;
  const at = statement.start + frame.at.offset;
  if (at >= statement.end || unit.code[at]?.op !== frame.at.op) return undefined;
  return { ...frame, hash: script.hash, pc: isTop ? at : at + 1 };
}
