import { createRequire } from 'node:module';
import { type DestinationStream, type Logger, pino } from 'pino';
import type PinoPretty from 'pino-pretty';
import { logTraceIds } from './telemetry/tracing.ts';

export type { Logger };

/**
 * Where log lines go: readable, coloured lines when stdout is a terminal (a person is watching),
 * JSON lines otherwise (a collector is reading). `LOG_FORMAT=json|pretty` overrides the guess.
 */
export function logDestination(
  isTerminal = process.stdout.isTTY === true,
  format = process.env.LOG_FORMAT,
  output: NodeJS.WritableStream = process.stdout,
): DestinationStream | undefined {
  const readable = format === 'pretty' || (format !== 'json' && isTerminal);
  if (!readable) return undefined;
  // Required only for a terminal: a hub writing JSON lines never loads pino-pretty.
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  return pretty({
    destination: output,
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,event',
    messageFormat: '{if event}{event}{end}{if msg} {msg}{end}',
  });
}

/**
 * One JSON line per event (readable lines on a terminal, see `logDestination`). Every line carries an `event` name (`session.created`,
 * `turn.failed`, ...) so that logs can be filtered by what happened, not by wording.
 * Secrets never reach a line: authorization headers and tokens are redacted wherever they appear.
 */
export function createLogger(
  level: string,
  bindings: Record<string, unknown> = {},
  destination: DestinationStream | undefined = logDestination(),
): Logger {
  const options: pino.LoggerOptions = {
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
    // With tracing on, a line written inside a span carries its `trace_id` and `span_id`.
    mixin: () => logTraceIds(),
  };
  return destination ? pino(options, destination) : pino(options);
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
