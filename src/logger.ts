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

/**
 * `logger.child(bindings)`, made the first time something uses it. A child logger redacts its
 * bindings when it is made, which costs more than the rest of a quiet turn; most turns log nothing.
 */
export function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  const made = () => {
    child ??= parent.child(bindings);
    return child;
  };
  return new Proxy({} as Logger, {
    get(_, key) {
      const logger = made();
      const value = Reflect.get(logger, key, logger);
      return typeof value === 'function' ? value.bind(logger) : value;
    },
    set: (_, key, value) => Reflect.set(made(), key, value),
    has: (_, key) => Reflect.has(made(), key),
  });
}
