import { EXIT_FAILED, EXIT_USAGE, isUsageError } from './cli-usage.ts';
import { ConfigError } from './config/env.ts';
import { DependencyError, listenError } from './dependencies.ts';

/** LOG_LEVEL values at which a failing command also prints the error's stack. */
const STACK_LEVELS = new Set(['debug', 'trace']);

/**
 * An error the operator can act on from its message alone: the configuration (ConfigError, and
 * the channel, queue and tool errors built on it), a dependency (DependencyError), the command
 * line, the embedded database held by another process, an unknown bot.
 */
export function isKnownFailure(err: unknown): boolean {
  if (err instanceof ConfigError || err instanceof DependencyError || isUsageError(err)) return true;
  return err instanceof Error && /^(DataDirLockedError|UnknownBotError)$/.test(err.name);
}

/** 2 for a command line that does not say what to do, 1 for everything else that failed. */
export function failureExitCode(err: unknown): number {
  return isUsageError(err) ? EXIT_USAGE : EXIT_FAILED;
}

/**
 * Writes why a command failed: one line, `switchboard: <message>`. The stack only at
 * LOG_LEVEL=debug or trace; for an error that is not a known one, a line saying how to get it.
 */
export function reportFailure(
  failure: unknown,
  io: { env: Readonly<Record<string, string | undefined>>; write(text: string): unknown },
): void {
  // A failed listen is the hub's address (HOST, PORT), not a bug.
  const err = listenError(failure) ?? failure;
  io.write(`switchboard: ${err instanceof Error ? err.message : String(err)}\n`);
  if (isUsageError(err)) io.write('(switchboard help lists the commands and their options)\n');
  if (STACK_LEVELS.has(io.env.LOG_LEVEL?.trim() ?? '')) {
    if (err instanceof Error && err.stack) io.write(`${err.stack}\n`);
    const cause = err instanceof Error ? err.cause : undefined;
    if (cause instanceof Error && cause.stack) io.write(`caused by: ${cause.stack}\n`);
  } else if (!isKnownFailure(err)) {
    io.write('switchboard: (an unexpected error; LOG_LEVEL=debug prints where it happened)\n');
  }
}
