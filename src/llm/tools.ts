import path from 'node:path';
import type { BotSettings } from '../config/bots.ts';
import { ConfigError } from '../config/env.ts';
import { MAIN_UNIT } from '../dialog/compiler.ts';
import { DialogRuntimeError } from '../dialog/errors.ts';
import { ScriptLibrary } from '../dialog/library.ts';
import { Machine, RESERVED_VARIABLES } from '../dialog/machine.ts';
import { TurnBuffer } from '../dialog/turn-buffer.ts';
import { fromJson, type Value } from '../dialog/values.ts';
import type { BotContext } from '../engine/bot.ts';
import { effectKeysOf } from '../engine/effect-keys.ts';
import { bareRecord, setOwn } from '../own.ts';
import { truncateUtf16 } from '../text.ts';
import type { ToolCall, ToolSpec } from './client.ts';
import { callHttpTool } from './http-tool.ts';
import type { ToolDeclaration } from './settings.ts';
import { compileToolArguments, type ToolArguments, toolValidator } from './tool-arguments.ts';

/** Tool scripts live here, inside the bot's folder. */
export const TOOLS_DIR = 'tools';
/** Most characters of a tool's result that are stored and sent to the model. */
export const MAX_TOOL_RESULT_CHARS = 8_000;

export class ToolConfigError extends ConfigError {
  override name = 'ToolConfigError';
}

export interface ToolOutcome {
  /** What the model is told: the tool's result, or what went wrong. */
  content: string;
  ok: boolean;
  /** The arguments as the model sent them, parsed when they were JSON. */
  args: unknown;
}

interface LoadedTool {
  declaration: ToolDeclaration;
  spec: ToolSpec;
  args: ToolArguments;
  /** Names an argument may not take: the script's own variables, the URL's own query keys. */
  reserved: ReadonlySet<string>;
}

/** What the hub or the bot's author already decided for a tool, which an argument may not change. */
function reservedNames(d: ToolDeclaration): Set<string> {
  if (d.script) return new Set(RESERVED_VARIABLES);
  if (d.http?.method === 'GET') return new Set(new URL(d.http.url).searchParams.keys());
  return new Set();
}

/** The reserved name an argument would take, if any (script variables are case-insensitive). */
function clash(tool: LoadedTool, name: string): boolean {
  return tool.reserved.has(tool.declaration.script ? name.toLowerCase() : name);
}

/** Cut on a character's edge: half an emoji's surrogate pair is no text the store takes. */
function clip(text: string): string {
  return text.length <= MAX_TOOL_RESULT_CHARS ? text : `${truncateUtf16(text, MAX_TOOL_RESULT_CHARS)}… (cut)`;
}

/**
 * A bot's declared tools: what `USE TOOL` can expose to the model, and how each one runs — a
 * `.bas` script in the bot's `tools/` folder (the arguments are its variables; what it TALKs is
 * the result) or an HTTP endpoint (the arguments as JSON; the response body is the result). A
 * tool that fails tells the model so, in words: the model can then say so to the person.
 */
export class BotTools {
  private constructor(
    private readonly tools: Map<string, LoadedTool>,
    private readonly scripts: ScriptLibrary | undefined,
    private readonly settings: BotSettings,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Checks every declaration: scripts exist and compile, parameter schemas are usable. */
  static async load(
    botDir: string,
    settings: BotSettings,
    env: NodeJS.ProcessEnv = process.env,
  ): Promise<BotTools> {
    const declarations = settings.llm?.tools ?? [];
    const tools = new Map<string, LoadedTool>();
    let ajv: ReturnType<typeof toolValidator> | undefined;
    let scripts: ScriptLibrary | undefined;
    if (declarations.some((d) => d.script)) {
      const opened = await ScriptLibrary.open(path.join(botDir, TOOLS_DIR));
      if (opened.errors.length > 0)
        throw new ToolConfigError(
          opened.errors.map((e) => path.join(botDir, TOOLS_DIR, e.message)).join('\n'),
        );
      scripts = opened.library;
    }
    for (const d of declarations) {
      if (d.script && !(await scripts!.get(d.script)))
        throw new ToolConfigError(
          `${path.join(botDir, TOOLS_DIR, d.script)}: tool "${d.name}" names a script that is not there`,
        );
      let args: ToolArguments;
      try {
        ajv ??= toolValidator();
        args = compileToolArguments(ajv, d.parameters);
      } catch (err) {
        throw new ToolConfigError(
          `tool "${d.name}": parameters is not a usable JSON schema (${(err as Error).message})`,
        );
      }
      const loaded: LoadedTool = {
        declaration: d,
        args,
        reserved: reservedNames(d),
        spec: {
          type: 'function',
          function: { name: d.name, description: d.description, parameters: args.schema },
        },
      };
      const declared = Object.keys((d.parameters.properties as Record<string, unknown> | undefined) ?? {});
      const taken = declared.filter((p) => clash(loaded, p));
      if (taken.length > 0)
        throw new ToolConfigError(
          `tool "${d.name}": parameter ${taken.map((t) => `"${t}"`).join(', ')} ${
            d.script ? "is one of the script's own variables" : "is fixed by the tool's URL"
          }; give it another name`,
        );
      tools.set(d.name, loaded);
    }
    return new BotTools(tools, scripts, settings, env);
  }

  has(name: string): boolean {
    return this.tools.has(name);
  }

  /** The declarations of the session's tools (`USE TOOL`), in that order; names not declared are left out. */
  specs(active: readonly string[]): ToolSpec[] {
    return active.flatMap((name) => {
      const tool = this.tools.get(name);
      return tool ? [tool.spec] : [];
    });
  }

  /** Runs a call the model made. Never throws for the tool's own failures: they become the result. */
  async run(call: ToolCall, ctx: BotContext, active: readonly string[]): Promise<ToolOutcome> {
    const name = call.function.name;
    let args: unknown;
    try {
      args = call.function.arguments.trim() === '' ? {} : JSON.parse(call.function.arguments);
    } catch {
      return { ok: false, args: call.function.arguments, content: `error: the arguments are not JSON` };
    }
    const tool = this.tools.get(name);
    if (!tool || !active.includes(name))
      return { ok: false, args, content: `error: there is no tool named "${name}"` };
    const checked = tool.args.check(args);
    if (!checked.ok)
      return { ok: false, args, content: `error: invalid arguments: ${checked.problems.join('; ')}` };
    const input = args as Record<string, unknown>;
    // A schema that leaves arguments open still cannot set what the tool fixed itself.
    const taken = Object.keys(input).filter((k) => clash(tool, k));
    if (taken.length > 0)
      return {
        ok: false,
        args,
        content: `error: invalid arguments: ${taken.map((k) => `${k}: is reserved`).join('; ')}`,
      };
    try {
      const content = tool.declaration.script
        ? await this.runScript(tool.declaration.script, input, ctx)
        : // The turn's next key: a recomputed turn calls with the same one (see EffectKeys).
          await callHttpTool(tool.declaration.http!, input, this.env, effectKeysOf(ctx)?.next());
      return { ok: true, args, content: clip(content) };
    } catch (err) {
      return { ok: false, args, content: clip(`error: ${(err as Error).message}`) };
    }
  }

  /**
   * Runs the tool's script against a held-back copy of the turn: its variables, memory and
   * events are kept when it ends well; its TALKs are the result, never replies.
   */
  private async runScript(name: string, input: Record<string, unknown>, ctx: BotContext): Promise<string> {
    const script = await this.scripts!.get(name, ctx.logger);
    if (!script) throw new Error(`the tool's script ${name} is gone`);
    const buffer = new TurnBuffer(ctx);
    const machine = new Machine(
      {
        script: (n) => this.scripts!.get(n, ctx.logger),
        llm: async () => {
          throw new DialogRuntimeError('a tool script cannot ask the LLM');
        },
        limits: { ...this.settings.dialog, maxKnowledgeBases: this.settings.sessions.maxKnowledgeBases },
        steps: { used: 0 },
      },
      buffer.context,
    );
    const locals = bareRecord<Value>({ message: ctx.text });
    for (const [key, value] of Object.entries(input)) setOwn(locals, key, fromJson(value));
    machine.begin(script, MAIN_UNIT, locals);
    const outcome = await machine.run();
    if (outcome.kind === 'waiting') throw new Error('a tool script cannot wait for an answer (HEAR)');
    const result = buffer.replies.map((r) => r.text).join('\n');
    buffer.replies.length = 0;
    buffer.commit([]);
    return result;
  }
}
