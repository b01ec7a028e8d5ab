import path from 'node:path';

/**
 * One thing wrong with the configuration, and where: a bot's file or folder (with a line and
 * column for a script), or the environment. `start` refuses a configuration with any;
 * `switchboard check` prints each on a line of its own.
 */
export interface ConfigProblem {
  /** The file or folder, absolute; absent: the environment. */
  file?: string;
  line?: number;
  column?: number;
  /** The setting inside the file (`sessions.idleTimeoutMinutes`) or the variable, when one is at fault. */
  field?: string;
  message: string;
}

/** How a problem without a file says where it is. */
export const ENVIRONMENT = 'environment';

/**
 * `file: field: message` (`file:line:column: message` in a script); the file relative to `cwd`
 * when it lies below it, absolute when `cwd` is undefined.
 */
export function formatProblem(problem: ConfigProblem, cwd: string | undefined = process.cwd()): string {
  let where = ENVIRONMENT;
  if (problem.file !== undefined) {
    const relative = cwd === undefined ? '' : path.relative(cwd, problem.file);
    where =
      relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? problem.file : relative;
    if (problem.line !== undefined) where += `:${problem.line}:${problem.column ?? 1}`;
  }
  return [where, problem.field, problem.message].filter((part) => part !== undefined).join(': ');
}

/** Several problems, one a line, the files absolute (a refused start's message). */
export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((p) => formatProblem(p, undefined)).join('\n');
}
