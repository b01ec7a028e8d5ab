import fs from 'node:fs/promises';
import path from 'node:path';
import { BOTS_DIR, UnknownBotError } from '../config/bots.ts';
import { loadSessionTemplates } from '../config/session-templates.ts';
import { DialogSyntaxError } from './errors.ts';
import { checkScripts } from './library.ts';

/** Where a bot's tool scripts live (the LLM's tools). */
const TOOLS_DIR = 'tools';

export interface BotCheck {
  bot: string;
  dir: string;
  scripts: string[];
  errors: DialogSyntaxError[];
}

/** Compiles the scripts of every bot under `<configDir>/bots/` (or of one bot). */
export async function checkBots(configDir: string, only?: string): Promise<BotCheck[]> {
  const root = path.join(configDir, BOTS_DIR);
  const entries = await fs.readdir(root, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  const bots = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  if (only !== undefined && !bots.includes(only)) throw new UnknownBotError(only);
  const checks: BotCheck[] = [];
  for (const bot of only === undefined ? bots : [only]) {
    const dir = path.join(root, bot);
    const templates = await loadSessionTemplates(dir);
    const names = new Set(templates.templates.keys());
    const { scripts, errors } = await checkScripts(dir, names);
    // Tool scripts (`tools/`, see src/llm/tools.ts) are dialog scripts too.
    const tools = await checkScripts(path.join(dir, TOOLS_DIR), names);
    checks.push({
      bot,
      dir,
      scripts: [...scripts, ...tools.scripts.map((s) => `${TOOLS_DIR}/${s}`)],
      errors: [
        // A bad template is reported at its file, as line 1.
        ...templates.errors.map((e) => {
          const at = e.indexOf(': ');
          return new DialogSyntaxError(e.slice(0, at), 1, 1, e.slice(at + 2));
        }),
        ...errors,
        ...tools.errors.map(
          (e) => new DialogSyntaxError(`${TOOLS_DIR}/${e.file}`, e.line, e.column, e.reason),
        ),
      ],
    });
  }
  return checks;
}

/** `path/to/script.bas:line:column: message`, the path relative to `cwd` when it lies below it. */
export function formatError(dir: string, error: DialogSyntaxError, cwd = process.cwd()): string {
  const file = path.join(dir, error.file);
  const relative = path.relative(cwd, file);
  const shown = relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
  return `${shown}:${error.line}:${error.column}: ${error.reason}`;
}
