import fs from 'node:fs/promises';
import path from 'node:path';
import { BOTS_DIR, UnknownBotError } from '../config/bots.ts';
import type { DialogSyntaxError } from './errors.ts';
import { checkScripts } from './library.ts';

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
    const { scripts, errors } = await checkScripts(dir);
    checks.push({ bot, dir, scripts, errors });
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
