import { createRequire } from 'node:module';
import { type DestinationStream, type Logger, pino } from 'pino';
import type PinoPretty from 'pino-pretty';
import { type Context, logTraceIds } from './telemetry/tracing.ts';

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

type Bindings = Record<string, unknown>;

/** For a child that binds nothing of its own but a trace's ids (see `lazyChild`). */
export const NO_BINDINGS: Bindings = Object.freeze({});

/** A lazy child's parent, bindings and trace, and the child once made: the target of its proxy. */
class LazyChild {
  child: Logger | undefined = undefined;
  constructor(
    readonly parent: Logger,
    readonly bindings: Bindings,
    readonly trace: Context | undefined,
  ) {}

  made(): Logger {
    this.child ??= this.parent.child(
      this.trace ? { ...this.bindings, ...logTraceIds(this.trace) } : this.bindings,
    );
    return this.child;
  }
}

const LEVELS: ReadonlySet<string> = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

/** One handler for every lazy child (its state is the target): a turn makes a proxy and no closure. */
const LAZY_CHILD: ProxyHandler<LazyChild> = {
  get(lazy, key) {
    // A line below the level is never written: its method is the parent's no-op, and no child is
    // made for it (a child has its parent's level).
    if (
      lazy.child === undefined &&
      typeof key === 'string' &&
      LEVELS.has(key) &&
      !lazy.parent.isLevelEnabled(key)
    )
      return Reflect.get(lazy.parent, key, lazy.parent);
    const logger = lazy.made();
    const value = Reflect.get(logger, key, logger);
    return typeof value === 'function' ? value.bind(logger) : value;
  },
  set: (lazy, key, value) => Reflect.set(lazy.made(), key, value),
  has: (lazy, key) => Reflect.has(lazy.made(), key),
};

/**
 * `logger.child(bindings)`, made the first time something uses it (a line below the level does not
 * count). A child logger redacts its bindings when it is made, which costs more than the rest of a
 * quiet turn; most turns log nothing.
 * With `trace` (a turn's context, tracing on), its lines carry its `trace_id` and `span_id` too,
 * read when the child is made.
 */
export function lazyChild(parent: Logger, bindings: Bindings, trace?: Context): Logger {
  return new Proxy(new LazyChild(parent, bindings, trace), LAZY_CHILD) as unknown as Logger;
}
