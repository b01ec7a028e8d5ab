import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.ts';
import { type CompiledScript, compileScript } from './compiler.ts';
import { DialogSyntaxError } from './errors.ts';

export const SCRIPT_EXTENSION = '.bas';
/** A script name is a plain file name in the bot's folder: RUN can never leave it. */
const SCRIPT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*\.bas$/;

export function isScriptName(name: string): boolean {
  return SCRIPT_NAME.test(name) && !name.includes('..');
}

/** The `.bas` files of a folder, by name. */
export async function listScripts(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  return entries
    .filter((e) => e.isFile() && e.name.toLowerCase().endsWith(SCRIPT_EXTENSION) && isScriptName(e.name))
    .map((e) => e.name)
    .sort();
}

export interface CheckResult {
  scripts: string[];
  errors: DialogSyntaxError[];
}

/**
 * Compiles every script of a folder, and checks that each literal `RUN "x.bas"` names one of
 * them and, when `templates` is given, each literal `APPLY SESSION TEMPLATE "x"` one of those.
 */
export async function checkScripts(
  dir: string,
  templates?: ReadonlySet<string>,
): Promise<CheckResult & { compiled: Map<string, CompiledScript> }> {
  const scripts = await listScripts(dir);
  const errors: DialogSyntaxError[] = [];
  const compiled = new Map<string, CompiledScript>();
  for (const name of scripts) {
    const source = await fs.readFile(path.join(dir, name), 'utf8');
    const result = compileScript(name, source);
    errors.push(...result.errors);
    for (const run of result.runs)
      if (!scripts.includes(run.script))
        errors.push(
          new DialogSyntaxError(
            name,
            run.pos.line,
            run.pos.column,
            `RUN: this bot has no script ${run.script}`,
          ),
        );
    for (const t of templates ? result.templates : [])
      if (!templates!.has(t.name))
        errors.push(
          new DialogSyntaxError(
            name,
            t.pos.line,
            t.pos.column,
            `APPLY SESSION TEMPLATE: this bot has no template ${t.name} (session-templates/${t.name}.json)`,
          ),
        );
    if (result.script) compiled.set(name, result.script);
  }
  errors.sort((x, y) => x.file.localeCompare(y.file) || x.line - y.line || x.column - y.column);
  return { scripts, errors, compiled };
}

interface Entry {
  stamp: string;
  script: CompiledScript | undefined;
}

/** How often a script in use is checked for changes (a stat): not on every turn of a busy bot. */
export const SCRIPT_CHECK_INTERVAL_MS = 1_000;

/**
 * A bot's scripts, compiled once and recompiled when their file changes (checked on use, at
 * most every `checkEveryMs`, which costs one stat). A change that does not compile is logged and
 * the last good version stays in service; a session waiting in a changed script is the
 * runtime's business.
 */
export class ScriptLibrary {
  private readonly entries = new Map<string, Entry>();
  private readonly checkedAt = new Map<string, number>();

  private constructor(
    readonly dir: string,
    private readonly checkEveryMs: number,
  ) {}

  /** Loads every script of the folder; any error in any of them is returned (and nothing is served). */
  static async open(
    dir: string,
    options: { checkEveryMs?: number; templates?: ReadonlySet<string> } = {},
  ): Promise<{ library: ScriptLibrary; errors: DialogSyntaxError[] }> {
    const library = new ScriptLibrary(dir, options.checkEveryMs ?? SCRIPT_CHECK_INTERVAL_MS);
    const { scripts, errors, compiled } = await checkScripts(dir, options.templates);
    for (const name of scripts) {
      const stamp = await library.stamp(name);
      if (stamp) library.entries.set(name, { stamp, script: compiled.get(name) });
    }
    return { library, errors };
  }

  private async stamp(name: string): Promise<string | undefined> {
    try {
      const s = await fs.stat(path.join(this.dir, name));
      return `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * What `get` gives without waiting, while the script was checked less than `checkEveryMs` ago
   * (a busy bot's turns); undefined when `get` has more to do (or has nothing to give).
   */
  recent(name: string): CompiledScript | undefined {
    const known = this.entries.get(name);
    if (!known || Date.now() - (this.checkedAt.get(name) ?? 0) >= this.checkEveryMs) return undefined;
    return known.script;
  }

  /** The current version of a script; undefined when there is no such file (or it never compiled). */
  async get(name: string, logger?: Logger): Promise<CompiledScript | undefined> {
    if (!isScriptName(name)) return undefined;
    const now = Date.now();
    const known = this.entries.get(name);
    if (known && now - (this.checkedAt.get(name) ?? 0) < this.checkEveryMs) return known.script;
    this.checkedAt.set(name, now);
    const stamp = await this.stamp(name);
    if (!stamp) {
      // Nothing is kept for a name with no file: RUN on a person's words would otherwise leave
      // an entry per word they typed. (A missing script is looked for on each use all the same.)
      this.entries.delete(name);
      this.checkedAt.delete(name);
      return undefined;
    }
    const entry = this.entries.get(name);
    if (entry?.stamp === stamp) return entry.script;
    const source = await fs.readFile(path.join(this.dir, name), 'utf8');
    const result = compileScript(name, source);
    if (!result.script) {
      logger?.error({
        event: 'dialog.script_invalid',
        script: name,
        errors: result.errors.map((e) => e.message),
      });
      // Keep serving the last version that compiled; remember the stamp so the error is logged once.
      this.entries.set(name, { stamp, script: entry?.script });
      return entry?.script;
    }
    if (entry?.script?.hash !== result.script.hash)
      logger?.info({ event: 'dialog.script_loaded', script: name, hash: result.script.hash });
    this.entries.set(name, { stamp, script: result.script });
    return result.script;
  }

  async names(): Promise<string[]> {
    return listScripts(this.dir);
  }
}
