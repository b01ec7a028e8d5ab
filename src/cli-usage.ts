/**
 * A command line that does not say what to do: an unknown command, action or option, an
 * argument missing or one too many. The CLI exits 2 for it (1 is for a command that ran and
 * failed, or a value it refused). Thrown before anything is opened.
 */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Exit codes of `switchboard` (README, "Command line"). */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** Node's parseArgs errors (an unknown option, a missing value, an unexpected argument) are usage errors. */
export function isUsageError(err: unknown): boolean {
  if (err instanceof UsageError) return true;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}

/** The command takes no arguments beyond these: a UsageError naming the first extra one. */
export function noMoreArguments(command: string, extra: readonly string[]): void {
  if (extra.length > 0) throw new UsageError(`${command} takes no argument "${extra[0]}"`);
}
