import { type Logger, pino } from 'pino';

export type { Logger };

/**
 * One JSON line per event. Every line carries an `event` name (`session.created`,
 * `turn.failed`, ...) so that logs can be filtered by what happened, not by wording.
 * Secrets never reach a line: authorization headers and tokens are redacted wherever they appear.
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...bindings },
    redact: {
      paths: [
        'token',
        '*.token',
        'authorization',
        '*.authorization',
        'headers.authorization',
        'password',
        '*.password',
      ],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
