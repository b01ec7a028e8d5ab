import type {
  SpanOptions as ApiSpanOptions,
  Attributes,
  Context,
  ContextAPI,
  Link,
  PropagationAPI,
  Span,
  SpanContext,
  TraceAPI,
  Tracer,
} from '@opentelemetry/api';
import { z } from 'zod';
import { CarriedSpanContext } from './span-ids.ts';
import type { WarmUp } from './warm-up.ts';

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
  /**
   * When the ingress queued it: the start of the queue-wait span. Epoch milliseconds (what the
   * ingress writes: 13 digits in every queued envelope rather than an ISO string of 24, and no
   * date to parse in the worker); an ISO date in envelopes queued by versions before.
   */
  acceptedAt: z.union([z.number().nonnegative(), z.iso.datetime({ offset: true })]).optional(),
});
export type EnvelopeTrace = z.infer<typeof EnvelopeTraceSchema>;

/**
 * When a carried trace's envelope was accepted (epoch milliseconds; either form of `acceptedAt`),
 * or undefined when it does not say (or says nothing that is a time). A queued envelope is read
 * without its schema (the ingress validated it): what is read here is checked here.
 */
export function acceptedAtMs(carried: { acceptedAt?: unknown }): number | undefined {
  const at = carried.acceptedAt;
  const ms = typeof at === 'number' ? at : typeof at === 'string' ? Date.parse(at) : Number.NaN;
  return ms >= 0 && ms < Number.POSITIVE_INFINITY ? ms : undefined;
}

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
  /** A span started and ended at once (`recordSpan`), which the tracer may record without one. */
  recordEnded?(name: string, options: ApiSpanOptions, context: Context): void;
};

/** The API, once tracing is on. */
let api: Api | undefined;
/** The hub's tracer, once tracing is on. */
let tracer: Tracer | undefined;
/** The class of the hub's tracer's spans, once tracing is on: their ids are valid by making. */
let hubSpan: (abstract new (...args: never[]) => Span) | undefined;

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
  hubSpan = on ? (await import('./hub-tracer.ts')).HubSpan : undefined;
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

/**
 * The options of a span on a path every message takes (the accept, the queue wait, the turn, the
 * drain, the commit), made in one place so that they all have one shape: the tracer that reads
 * them reads one kind of object (what is absent is there, undefined).
 */
export function spanOptions(
  kind: SpanOptions['kind'],
  attributes: Attributes,
  links?: Link[],
  parent?: Context,
  startTime?: number,
): SpanOptions {
  return { kind, attributes, links, startTime, parent };
}

/** Where `inLazySpan` keeps its span-to-be on the context it runs `fn` in. */
const LAZY_SPAN = Symbol.for('switchboard.lazy-span');

/** The API's key of a context's span (`createContextKey` is `Symbol.for` of its description). */
const SPAN_KEY = Symbol.for('OpenTelemetry Context Key SPAN');

/**
 * A context: `parent` with one value set, as the API's `setValue` makes it. The API's context
 * copies its parent's map into a new one and makes three closures of its own each time, and every
 * message makes several (the accept's, the carried trace's, the turn's): this is one small object
 * that asks its parent for the other keys. Chains are as deep as spans are nested.
 */
class ContextWith implements Context {
  constructor(
    private readonly parent: Context,
    private readonly key: symbol,
    private readonly value: unknown,
  ) {}

  getValue(key: symbol): unknown {
    return key === this.key ? this.value : this.parent.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return new ContextWith(this, key, value);
  }

  deleteValue(key: symbol): Context {
    // Without the key, as the API's: a value that reads as absent.
    return this.getValue(key) === undefined ? this : new ContextWith(this, key, undefined);
  }
}

/** `parent` with `span` as its span (the API's `trace.setSpan`). */
function contextWithSpan(parent: Context, span: Span): Context {
  return new ContextWith(parent, SPAN_KEY, span);
}

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
  lazy.span ??= start(
    a,
    lazy.name,
    { ...lazy.options, parent: lazy.parent, startTime: lazy.startTime },
    lazy.parent,
  );
  return contextWithSpan(active, lazy.span);
}

/** The parent of a span started with `options`: theirs, or the active context. */
function parentOf(a: Api, options: SpanOptions): Context {
  return options.parent ?? activeParent(a);
}

function start(a: Api, name: string, options: SpanOptions, parent: Context): Span {
  tracer ??= a.trace.getTracer('switchboard');
  // The options as they are: a superset of the API's (`parent` is ignored by a tracer). The
  // attributes and links are the span's own (made for it by each caller here): the hub's tracer
  // keeps them rather than copying them; the SDK's copies them anyway.
  return (tracer as OwningTracer).startSpan(name, options as ApiSpanOptions, parent, true);
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
  const parent = parentOf(a, options);
  const span = start(a, name, options, parent);
  return endWhenSettled(
    span,
    settled(() => a.context.with(contextWithSpan(parent, span), () => fn(span))),
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
  const parent = parentOf(a, options);
  const span = start(a, name, options, parent);
  return endWhenSettled(
    span,
    settled(() => fn(span, contextWithSpan(parent, span))),
  );
}

/**
 * Ends `span` when `running` settles (a rejection marks it failed); settles as `running` does.
 * `outcomeKey`: a string `running` resolves with is set on the span under that key first.
 */
export function endWhenSettled<T>(span: Span, running: Promise<T>, outcomeKey?: string): Promise<T> {
  return running.then(
    (result) => {
      if (outcomeKey !== undefined && typeof result === 'string') span.setAttribute(outcomeKey, result);
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
  return api && link ? contextWithSpan(api.ROOT_CONTEXT, api.trace.wrapSpanContext(link.context)) : undefined;
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
    return await a.context.with(new ContextWith(lazy.parent, LAZY_SPAN, lazy), fn);
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

/**
 * A finished span from `startTime` to now (a wait that no code ran through: the queue). The hub's
 * tracer records it without making a span (`HubTracer.recordEnded`); another, as any span.
 */
export function recordSpan(name: string, options: SpanOptions): void {
  const a = api;
  if (!a) return;
  const parent = parentOf(a, options);
  tracer ??= a.trace.getTracer('switchboard');
  const t = tracer as OwningTracer;
  if (t.recordEnded) t.recordEnded(name, options as ApiSpanOptions, parent);
  else start(a, name, options, parent).end();
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
  const active = api.context.active();
  return api.context.with(new ContextWith(active, key, value), fn);
}

/** Runs `fn` inside `span` (a span started by hand, under `parent`). */
export function withSpan<T>(parent: Context, span: Span, fn: () => T): T {
  return withContext(withSpanIn(parent, span), fn);
}

/** `parent` with `span` as its span: what a span started by hand is active in, to hand down. */
export function withSpanIn(parent: Context, span: Span): Context {
  return api ? contextWithSpan(parent, span) : parent;
}

/** Starts a span that the caller ends (`inSpan` where a callback does not fit). */
export function startSpan(name: string, options: SpanOptions): Span | undefined {
  return api ? start(api, name, options, parentOf(api, options)) : undefined;
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
  return span && spanTrace(span);
}

/** The trace of `span` as an envelope carries it (`currentTrace` of a context that holds it). */
export function spanTrace(span: Span): EnvelopeTrace | undefined {
  const a = api;
  if (!a) return undefined;
  const c = span.spanContext();
  if (!(hubSpan && span instanceof hubSpan) && !a.trace.isSpanContextValid(c)) return undefined;
  const flags = c.traceFlags;
  // Sampled (01) or not (00): the only flags W3C defines; any other byte as the propagator writes it.
  const hex = flags === 1 ? '01' : flags === 0 ? '00' : (0x100 | (flags & 0xff)).toString(16).slice(1);
  const traceparent = `00-${c.traceId}-${c.spanId}-${hex}`;
  const tracestate = c.traceState?.serialize();
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

const INVALID_TRACE_ID = '0'.repeat(32);
const INVALID_SPAN_ID = '0'.repeat(16);

/**
 * What a traceparent of the form the hub writes (version 00, no trace state) names, read as the
 * W3C propagator reads it, without its carrier, getter and baggage: this runs for every envelope
 * a worker takes. Null when its ids are the invalid ones (no trace, as the propagator reads it);
 * undefined when it is of another form (for the propagator to read).
 */
function hubSpanContext(traceparent: string): SpanContext | null | undefined {
  // The pattern proves the ids hex of their lengths: only all zeros is left to refuse.
  if (!traceparent.startsWith('00-') || !TRACEPARENT.test(traceparent)) return undefined;
  const traceId = traceparent.slice(3, 35);
  const spanId = traceparent.slice(36, 52);
  if (traceId === INVALID_TRACE_ID || spanId === INVALID_SPAN_ID) return null;
  // Two lower-case hex digits (the pattern says so), read without a substring to parse.
  const flags = hexDigit(traceparent.charCodeAt(53)) * 16 + hexDigit(traceparent.charCodeAt(54));
  // Of a class the hub's tracer knows valid (checked above): not checked again by each span
  // under it; with the ids' bytes for the encoder, read while the traceparent is at hand.
  return new CarriedSpanContext(traceId, spanId, flags);
}

/** The value of a lower-case hex digit's char code. */
function hexDigit(code: number): number {
  return code <= 57 ? code - 48 : code - 87;
}

type Carried = { traceparent?: unknown; tracestate?: unknown };

/**
 * The span context a carried trace names (undefined with tracing off, or none, or not valid):
 * what a link to it holds, and what `remoteContext` makes a parent of.
 */
export function carriedSpanContext(carried: Carried | undefined): SpanContext | undefined {
  if (!api || !carried || typeof carried.traceparent !== 'string') return undefined;
  if (carried.tracestate === undefined) {
    const context = hubSpanContext(carried.traceparent);
    if (context !== undefined) return context ?? undefined;
  }
  return api.trace.getSpanContext(extracted(api, carried, carried.traceparent));
}

/** The context a span context of a carried trace continues (the root one when there is none). */
export function remoteContext(context: SpanContext | undefined): Context | undefined {
  const a = api;
  if (!a) return undefined;
  return context ? contextWithSpan(a.ROOT_CONTEXT, a.trace.wrapSpanContext(context)) : a.ROOT_CONTEXT;
}

function extracted(a: Api, carried: Carried, traceparent: string): Context {
  const carrier: Record<string, string> = { traceparent };
  if (typeof carried.tracestate === 'string') carrier.tracestate = carried.tracestate;
  return a.propagation.extract(a.ROOT_CONTEXT, carrier);
}

/** The context a carried trace continues (a root context when there is none). */
export function traceContext(carried: Carried | undefined): Context | undefined {
  const a = api;
  if (!a) return undefined;
  if (!carried || typeof carried.traceparent !== 'string') return a.ROOT_CONTEXT;
  const { traceparent } = carried;
  if (carried.tracestate === undefined) {
    const context = hubSpanContext(traceparent);
    if (context !== undefined) return remoteContext(context ?? undefined);
  }
  return extracted(a, carried, traceparent);
}

/** The context of incoming HTTP headers (`traceparent`, `tracestate`). */
export function headersContext(get: (name: string) => string | undefined): Context | undefined {
  const traceparent = get('traceparent');
  const tracestate = get('tracestate');
  return traceContext(traceparent ? { traceparent, tracestate: tracestate || undefined } : undefined);
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
  return spanLogIds(ctx ? a.trace.getSpan(ctx) : a.trace.getActiveSpan());
}

/** A span's ids for log lines (`trace_id`, `span_id`); empty without one. */
export function spanLogIds(span: Span | undefined): { trace_id?: string; span_id?: string } {
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

export type { Context, Link, Span, SpanContext } from '@opentelemetry/api';

/**
 * Starts the SDK when the standard variables ask for traces (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); otherwise loads nothing. Then, unless
 * `SWITCHBOARD_TRACE_WARMUP=0`, warms the tracing code of `role` (src/telemetry/warm-up.ts):
 * call it before the process takes work. Resolves with what flushes and stops it (a no-op when off).
 */
export async function startTracing(options: {
  role: string;
  env?: NodeJS.ProcessEnv;
  /** The SDK's own problems (exports refused or failing), for the log. */
  onProblem?: (level: 'warn' | 'error', message: string) => void;
}): Promise<{
  on: boolean;
  protocol?: string;
  url?: string;
  /** What the warm-up did (tracing on, http/protobuf, not switched off). */
  warmUp?: WarmUp;
  shutdown: () => Promise<void>;
}> {
  const env = options.env ?? process.env;
  if (!tracingRequested(env)) return { on: false, shutdown: async () => undefined };
  const { startSdk } = await import('./sdk.ts');
  const {
    protocol,
    url,
    shutdown,
    warmUpMessages: messages,
    discardWhile,
  } = await startSdk({
    serviceName: 'switchboard',
    attributes: { 'switchboard.role': options.role, 'process.pid': String(process.pid) },
    env,
    ...(options.onProblem ? { onProblem: options.onProblem } : {}),
  });
  await enableTracing(true);
  let warmUp: WarmUp | undefined;
  if (discardWhile && messages > 0) {
    const { warmTracing } = await import('./warm-up.ts');
    // A warm-up that fails leaves tracing as it is, only not warm: said, never fatal.
    warmUp = await warmTracing(options.role, discardWhile, messages).catch((err: Error) => {
      options.onProblem?.('warn', `tracing warm-up failed: ${err.message}`);
      return undefined;
    });
  }
  return {
    on: true,
    protocol,
    url,
    ...(warmUp ? { warmUp } : {}),
    // Flushes what is left; a collector that is away loses those spans, never fails the stop.
    shutdown: async () => {
      await enableTracing(false);
      await shutdown().catch(() => undefined);
    },
  };
}
