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

/**
 * The logger of every command but `start` (`migrate`, `queue failed`, `agent list`, …): its lines
 * go to stderr (readable when stderr is a terminal, as `logDestination` decides for stdout), so
 * that stdout holds the command's result alone, which scripts read (`--json`). Written at once:
 * a command that exits leaves no line behind.
 */
export function commandLogger(level: string): Logger {
  const readable = logDestination(process.stderr.isTTY === true, process.env.LOG_FORMAT, process.stderr);
  return createLogger(level, {}, readable ?? pino.destination({ dest: 2, sync: true }));
}

type Bindings = Record<string, unknown>;

/** For a child that binds nothing of its own but a trace's ids (see `lazyChild`). */
export const NO_BINDINGS: Bindings = Object.freeze({});

/** A lazy child's parent, bindings and trace, and the child once made: the target of its proxy. */
class LazyChild {
  child: Logger | undefined = undefined;
  /** The bindings with the trace's ids, once a line needed them. */
  private lineFields: Bindings | undefined = undefined;
  constructor(
    readonly parent: Logger,
    readonly bindings: Bindings,
    readonly trace: Context | undefined,
  ) {}

  made(): Logger {
    this.child ??= this.parent.child(this.fields());
    return this.child;
  }

  fields(): Bindings {
    this.lineFields ??= this.trace ? { ...this.bindings, ...logTraceIds(this.trace) } : this.bindings;
    return this.lineFields;
  }

  /**
   * A line at `level`, written by the parent with the bindings (and trace ids) as its first
   * fields, as a child would write it: an object's own fields come after them, an error goes
   * under `err` (pino's key for one), a message alone gets them as its object.
   */
  write(level: Level, args: unknown[]): void {
    const [first, ...rest] = args;
    const fields = this.fields();
    const object =
      first instanceof Error
        ? { ...fields, err: first }
        : typeof first === 'object' && first !== null
          ? { ...fields, ...first }
          : fields;
    const tail = object === fields && first !== undefined ? args : rest;
    (this.parent[level] as (obj: object, ...more: unknown[]) => void)(object, ...tail);
  }
}

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
const LEVELS: ReadonlySet<string> = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

/** One handler for every lazy child (its state is the target): a turn makes a proxy and no closure. */
const LAZY_CHILD: ProxyHandler<LazyChild> = {
  get(lazy, key) {
    if (lazy.child === undefined && typeof key === 'string' && LEVELS.has(key)) {
      // A line below the level is never written: its method is the parent's no-op (a child has
      // its parent's level). One that is, is written by the parent with the child's fields.
      if (!lazy.parent.isLevelEnabled(key)) return Reflect.get(lazy.parent, key, lazy.parent);
      return (...args: unknown[]) => lazy.write(key as Level, args);
    }
    const logger = lazy.made();
    const value = Reflect.get(logger, key, logger);
    return typeof value === 'function' ? value.bind(logger) : value;
  },
  set: (lazy, key, value) => Reflect.set(lazy.made(), key, value),
  has: (lazy, key) => Reflect.has(lazy.made(), key),
};

/**
 * `logger.child(bindings)` to whoever holds it, made only for what a line cannot do (`child`,
 * `level`, …): a line is written by the parent with the bindings as its first fields (a line below
 * the level not at all). A pino child redacts its bindings when it is made, which cost more than
 * the rest of a quiet turn, and a session's first turn writes a line (`session.created`).
 * With `trace` (a turn's context, tracing on), its lines carry its `trace_id` and `span_id` too,
 * read at the first line.
 */
export function lazyChild(parent: Logger, bindings: Bindings, trace?: Context): Logger {
  return new Proxy(new LazyChild(parent, bindings, trace), LAZY_CHILD) as unknown as Logger;
}
