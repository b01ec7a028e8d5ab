import type {
  SpanOptions as ApiSpanOptions,
  Attributes,
  Context,
  ContextAPI,
  Link,
  PropagationAPI,
  Span,
  TraceAPI,
  Tracer,
} from '@opentelemetry/api';
import { z } from 'zod';

/**
 * OpenTelemetry traces. Nothing of OpenTelemetry is loaded until `startTracing` finds the standard
 * OTLP variables set: until then every helper here is a plain call of the function it wraps (the
 * API package itself costs a start tens of milliseconds and some megabytes).
 */

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The W3C trace context an envelope carries from its accept through the queue to the worker. */
export const EnvelopeTraceSchema = z.object({
  traceparent: z.string().regex(TRACEPARENT),
  tracestate: z.string().max(512).optional(),
  /** When the ingress queued it (ISO): the start of the queue-wait span. */
  acceptedAt: z.iso.datetime({ offset: true }).optional(),
});
export type EnvelopeTrace = z.infer<typeof EnvelopeTraceSchema>;

/** `SpanKind` of the API, without loading it. */
export const SpanKind = { INTERNAL: 0, SERVER: 1, CLIENT: 2, PRODUCER: 3, CONSUMER: 4 } as const;
/** `SpanStatusCode` of the API, without loading it. */
export const SpanStatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;

interface Api {
  context: ContextAPI;
  trace: TraceAPI;
  propagation: PropagationAPI;
  ROOT_CONTEXT: Context;
  createContextKey(description: string): symbol;
}

/** A tracer that may take a span's attributes object as its own (src/telemetry/hub-tracer.ts). */
type OwningTracer = {
  startSpan(name: string, options: ApiSpanOptions, context: Context, ownAttributes: boolean): Span;
};

/** The API, once tracing is on. */
let api: Api | undefined;
/** The hub's tracer, once tracing is on. */
let tracer: Tracer | undefined;

/** Whether an SDK was started in this process (`startTracing`). */
export function tracingEnabled(): boolean {
  return api !== undefined;
}

/**
 * Switches the helpers on (loading the API) or off. `startTracing` calls it once its SDK is
 * registered; a test that registers an SDK of its own does too.
 */
export async function enableTracing(on = true): Promise<void> {
  api = on ? await import('@opentelemetry/api') : undefined;
  // Looked up once: the provider is registered before this is called (every span asked for it).
  tracer = api?.trace.getTracer('switchboard');
}

/** Message text and prompts go into spans only when `SWITCHBOARD_TRACE_CONTENT=true`. */
export function traceContent(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.SWITCHBOARD_TRACE_CONTENT === 'true';
}

/** Whether the standard variables ask for traces (an OTLP endpoint, and the SDK not disabled). */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true' || env.OTEL_TRACES_EXPORTER === 'none') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

export interface SpanOptions {
  kind?: (typeof SpanKind)[keyof typeof SpanKind];
  /** Made for this span: the span may change it (a frozen object is copied instead). */
  attributes?: Attributes;
  links?: Link[];
  startTime?: Date | number;
  /** The parent; the active context when absent. */
  parent?: Context;
}

/** Where `inLazySpan` keeps its span-to-be on the context it runs `fn` in. */
const LAZY_SPAN = Symbol.for('switchboard.lazy-span');

interface LazySpan {
  name: string;
  options: SpanOptions;
  /** When `inLazySpan` began (epoch ms): the span, if made, starts then. */
  startTime: number;
  parent: Context;
  /** The span active where `inLazySpan` was called: only spans started directly under it adopt this one. */
  owner: Span | undefined;
  span?: Span;
}

/** The active context, with a lazy span made real when a span is about to start directly under it. */
function activeParent(a: Api): Context {
  const active = a.context.active();
  const lazy = active.getValue(LAZY_SPAN) as LazySpan | undefined;
  if (!lazy || a.trace.getSpan(active) !== lazy.owner) return active;
  lazy.span ??= start(a, lazy.name, { ...lazy.options, parent: lazy.parent, startTime: lazy.startTime }).span;
  return a.trace.setSpan(active, lazy.span);
}

function start(a: Api, name: string, options: SpanOptions): { span: Span; parent: Context } {
  const parent = options.parent ?? activeParent(a);
  tracer ??= a.trace.getTracer('switchboard');
  // The options as they are: a superset of the API's (`parent` is ignored by a tracer). The
  // attributes are the span's own (made for it by each caller here): the hub's tracer keeps them
  // rather than copying them when an attribute is set later; the SDK's copies them anyway.
  const span = (tracer as OwningTracer).startSpan(name, options as ApiSpanOptions, parent, true);
  return { span, parent };
}

/**
 * Runs `fn` inside a new span (ended when `fn` settles; an error marks it failed). With tracing
 * off, `fn(undefined)` and nothing more: no async frame of its own, so no extra promise and
 * microtask hop on the hot paths that call it for every message.
 */
export function inSpan<T>(
  name: string,
  options: SpanOptions,
  fn: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  const a = api;
  if (!a) return settled(() => fn(undefined));
  const { span, parent } = start(a, name, options);
  return endWhenSettled(
    span,
    settled(() => a.context.with(a.trace.setSpan(parent, span), () => fn(span))),
  );
}

/** `fn()`, with a synchronous throw turned into a rejection. */
function settled<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn();
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Runs `fn` with a new span and the context that holds it, handed down rather than made active:
 * the span ends when `fn` settles (an error marks it failed). For the paths every message of a
 * worker takes (the drain, the turn, the commit): a context made active (AsyncLocalStorage) makes
 * every promise of the process pay from then on (README "Tracing"). With tracing off,
 * `fn(undefined, undefined)`.
 */
export function inPassedSpan<T>(
  name: string,
  options: SpanOptions,
  fn: (span: Span | undefined, context: Context | undefined) => Promise<T>,
): Promise<T> {
  const a = api;
  if (!a) return settled(() => fn(undefined, undefined));
  const { span, parent } = start(a, name, options);
  return endWhenSettled(
    span,
    settled(() => fn(span, a.trace.setSpan(parent, span))),
  );
}

/** Ends `span` when `running` settles (a rejection marks it failed); settles as `running` does. */
export function endWhenSettled<T>(span: Span, running: Promise<T>): Promise<T> {
  return running.then(
    (result) => {
      span.end();
      return result;
    },
    (err: unknown) => {
      failSpan(span, err);
      span.end();
      throw err;
    },
  );
}

/** The span a context holds (undefined with tracing off, or none). */
export function spanIn(ctx: Context | undefined): Span | undefined {
  return ctx && api?.trace.getSpan(ctx);
}

/** Runs `fn` with `ctx` as the active context (as is with tracing off or no context). */
export function withContext<T>(ctx: Context | undefined, fn: () => T): T {
  if (!api || !ctx) return fn();
  return api.context.with(ctx, fn);
}

/** The context of a span a link names (undefined with tracing off or no link). */
export function linkedContext(link: Link | undefined): Context | undefined {
  return api && link ? api.trace.setSpanContext(api.ROOT_CONTEXT, link.context) : undefined;
}

/**
 * Runs `fn` inside a span that exists only if it has children: the span is made (with the start
 * time of this call) when a span is first started directly inside `fn`, and ended when `fn`
 * settles; without one, nothing is recorded. For a step that is worth a span of its own only when
 * it does traced work of its own (a dialog that calls an LLM or a tool), and costs nothing when it
 * does not (most turns).
 */
export function inLazySpan<T>(name: string, options: SpanOptions, fn: () => Promise<T>): Promise<T> {
  const a = api;
  if (!a) return fn();
  const parent = options.parent ?? a.context.active();
  const lazy: LazySpan = { name, options, startTime: Date.now(), parent, owner: a.trace.getSpan(parent) };
  return inLazy(a, lazy, fn);
}

async function inLazy<T>(a: Api, lazy: LazySpan, fn: () => Promise<T>): Promise<T> {
  try {
    return await a.context.with(lazy.parent.setValue(LAZY_SPAN, lazy), fn);
  } catch (err) {
    failSpan(lazy.span, err);
    throw err;
  } finally {
    lazy.span?.end();
  }
}

/** Records an error on a span and marks it failed. */
export function failSpan(span: Span | undefined, err: unknown): void {
  if (!span) return;
  const error = err instanceof Error ? err : new Error(String(err));
  span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}

/** A finished span from `startTime` to now (a wait that no code ran through: the queue). */
export function recordSpan(name: string, options: SpanOptions & { startTime: Date | number }): void {
  if (api) start(api, name, options).span.end();
}

/** The active span, if tracing is on and there is one. */
export function activeSpan(): Span | undefined {
  return api?.trace.getActiveSpan();
}

/** The active context (the root one with tracing off). */
export function activeContext(): Context | undefined {
  return api?.context.active();
}

/** The root context: a span started under it begins a trace of its own. */
export function rootContext(): Context | undefined {
  return api?.ROOT_CONTEXT;
}

/** Runs `fn` with a value set on the active context (only with tracing on). */
export function withValue<T>(key: symbol, value: unknown, fn: () => T): T {
  if (!api) return fn();
  return api.context.with(api.context.active().setValue(key, value), fn);
}

/** Runs `fn` inside `span` (a span started by hand, under `parent`). */
export function withSpan<T>(parent: Context, span: Span, fn: () => T): T {
  return withContext(withSpanIn(parent, span), fn);
}

/** `parent` with `span` as its span: what a span started by hand is active in, to hand down. */
export function withSpanIn(parent: Context, span: Span): Context {
  return api ? api.trace.setSpan(parent, span) : parent;
}

/** Starts a span that the caller ends (`inSpan` where a callback does not fit). */
export function startSpan(name: string, options: SpanOptions): Span | undefined {
  return api ? start(api, name, options).span : undefined;
}

/** A key for a value of this module's own on a context. */
export function contextKey(description: string): symbol {
  return Symbol.for(`switchboard.${description}`);
}

/**
 * The active context's trace, as an envelope carries it; undefined with tracing off or no span.
 * Written as the W3C propagator's `inject` writes it (`00-<trace id>-<span id>-<flags>`, and the
 * trace state), without its carrier and setter: this runs for every message, in the accept and
 * in the turn.
 */
export function currentTrace(ctx?: Context): EnvelopeTrace | undefined {
  const a = api;
  if (!a) return undefined;
  const span = a.trace.getSpan(ctx ?? a.context.active());
  if (!span) return undefined;
  const c = span.spanContext();
  if (!a.trace.isSpanContextValid(c)) return undefined;
  const flags = c.traceFlags & 0xff;
  const traceparent = `00-${c.traceId}-${c.spanId}-${flags < 16 ? '0' : ''}${flags.toString(16)}`;
  const tracestate = c.traceState?.serialize();
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

/** The context a carried trace continues (a root context when there is none). */
export function traceContext(
  carried: { traceparent?: unknown; tracestate?: unknown } | undefined,
): Context | undefined {
  const a = api;
  if (!a) return undefined;
  if (!carried || typeof carried.traceparent !== 'string') return a.ROOT_CONTEXT;
  const { traceparent } = carried;
  // The form the hub writes (version 00, no trace state), read as the W3C propagator reads it,
  // without its carrier, getter and baggage: this runs for every envelope a worker takes.
  if (carried.tracestate === undefined && traceparent.startsWith('00-') && TRACEPARENT.test(traceparent)) {
    const context = {
      traceId: traceparent.slice(3, 35),
      spanId: traceparent.slice(36, 52),
      traceFlags: Number.parseInt(traceparent.slice(53), 16),
      isRemote: true,
    };
    return a.trace.isSpanContextValid(context)
      ? a.trace.setSpanContext(a.ROOT_CONTEXT, context)
      : a.ROOT_CONTEXT;
  }
  const carrier: Record<string, string> = { traceparent };
  if (typeof carried.tracestate === 'string') carrier.tracestate = carried.tracestate;
  return a.propagation.extract(a.ROOT_CONTEXT, carrier);
}

/** The context of incoming HTTP headers (`traceparent`, `tracestate`). */
export function headersContext(get: (name: string) => string | undefined): Context | undefined {
  const traceparent = get('traceparent');
  const tracestate = get('tracestate');
  return traceContext(traceparent ? { traceparent, ...(tracestate ? { tracestate } : {}) } : undefined);
}

/** A link to the span of a context (nothing when the context holds none). */
export function linkTo(ctx: Context | undefined): Link[] {
  const span = ctx && api?.trace.getSpan(ctx);
  return span ? [{ context: span.spanContext() }] : [];
}

/**
 * The ids of the active span (or of the span `ctx` holds), for log lines (`trace_id`, `span_id`);
 * empty without one.
 */
export function logTraceIds(ctx?: Context): { trace_id?: string; span_id?: string } {
  const a = api;
  if (!a) return {};
  const span = ctx ? a.trace.getSpan(ctx) : a.trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

export type { Context, Link, Span } from '@opentelemetry/api';

/**
 * Starts the SDK when the standard variables ask for traces (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); otherwise loads nothing. Resolves with what flushes and
 * stops it (a no-op when off).
 */
export async function startTracing(options: {
  role: string;
  env?: NodeJS.ProcessEnv;
  /** The SDK's own problems (exports refused or failing), for the log. */
  onProblem?: (level: 'warn' | 'error', message: string) => void;
}): Promise<{ on: boolean; protocol?: string; url?: string; shutdown: () => Promise<void> }> {
  const env = options.env ?? process.env;
  if (!tracingRequested(env)) return { on: false, shutdown: async () => undefined };
  const { startSdk } = await import('./sdk.ts');
  const { protocol, url, shutdown } = await startSdk({
    serviceName: 'switchboard',
    attributes: { 'switchboard.role': options.role, 'process.pid': String(process.pid) },
    env,
    ...(options.onProblem ? { onProblem: options.onProblem } : {}),
  });
  await enableTracing(true);
  return {
    on: true,
    protocol,
    url,
    // Flushes what is left; a collector that is away loses those spans, never fails the stop.
    shutdown: async () => {
      await enableTracing(false);
      await shutdown().catch(() => undefined);
    },
  };
}
