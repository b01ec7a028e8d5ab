import {
  type Attributes,
  type Context,
  context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { z } from 'zod';

/**
 * OpenTelemetry traces, through the API package only: until `startTracing` loads the SDK (and it
 * does only when the standard OTLP variables are set), every helper here is a plain call of the
 * function it wraps, and nothing else of OpenTelemetry is loaded.
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

let enabled = false;

/** Whether an SDK was started in this process (`startTracing`). */
export function tracingEnabled(): boolean {
  return enabled;
}

/** Marks tracing on; `startTracing` calls it once its SDK is registered (tests may too). */
export function enableTracing(on = true): void {
  enabled = on;
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

export function tracer() {
  return trace.getTracer('switchboard');
}

export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  links?: Link[];
  startTime?: Date | number;
  /** The parent; the active context when absent. */
  parent?: Context;
}

/**
 * Runs `fn` inside a new span (ended when `fn` settles; an error marks it failed). Without an SDK,
 * `fn(undefined)` and nothing more.
 */
export async function inSpan<T>(
  name: string,
  options: SpanOptions,
  fn: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (!enabled) return fn(undefined);
  const parent = options.parent ?? context.active();
  const span = tracer().startSpan(
    name,
    {
      ...(options.kind !== undefined ? { kind: options.kind } : {}),
      ...(options.attributes ? { attributes: options.attributes } : {}),
      ...(options.links ? { links: options.links } : {}),
      ...(options.startTime !== undefined ? { startTime: options.startTime } : {}),
    },
    parent,
  );
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    failSpan(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/** Records an error on a span and marks it failed. */
export function failSpan(span: Span | undefined, err: unknown): void {
  if (!span) return;
  const error = err instanceof Error ? err : new Error(String(err));
  span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}

/** A finished span from `start` to now (a wait that no code ran through: the queue). */
export function recordSpan(name: string, options: SpanOptions & { startTime: Date | number }): void {
  if (!enabled) return;
  const span = tracer().startSpan(
    name,
    {
      ...(options.kind !== undefined ? { kind: options.kind } : {}),
      ...(options.attributes ? { attributes: options.attributes } : {}),
      startTime: options.startTime,
    },
    options.parent ?? context.active(),
  );
  span.end();
}

/** The active context's trace, as an envelope carries it; undefined without an SDK or a span. */
export function currentTrace(ctx: Context = context.active()): EnvelopeTrace | undefined {
  if (!enabled || !trace.getSpan(ctx)) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  if (!carrier.traceparent) return undefined;
  return {
    traceparent: carrier.traceparent,
    ...(carrier.tracestate ? { tracestate: carrier.tracestate } : {}),
  };
}

/** The context a carried trace continues (a root context when there is none). */
export function traceContext(carried: { traceparent?: unknown; tracestate?: unknown } | undefined): Context {
  if (!enabled || !carried || typeof carried.traceparent !== 'string') return ROOT_CONTEXT;
  const carrier: Record<string, string> = { traceparent: carried.traceparent };
  if (typeof carried.tracestate === 'string') carrier.tracestate = carried.tracestate;
  return propagation.extract(ROOT_CONTEXT, carrier);
}

/** The context of incoming HTTP headers (`traceparent`, `tracestate`). */
export function headersContext(get: (name: string) => string | undefined): Context {
  if (!enabled) return ROOT_CONTEXT;
  return propagation.extract(
    ROOT_CONTEXT,
    { traceparent: get('traceparent'), tracestate: get('tracestate') },
    {
      get: (carrier, key) => carrier[key as 'traceparent'] ?? undefined,
      keys: (carrier) => Object.keys(carrier),
    },
  );
}

/** A link to the span of a context (nothing when the context holds none). */
export function linkTo(ctx: Context): Link[] {
  const span = trace.getSpan(ctx);
  return span ? [{ context: span.spanContext() }] : [];
}

/** The active span's ids, for log lines (`trace_id`, `span_id`); empty without one. */
export function logTraceIds(): { trace_id?: string; span_id?: string } {
  if (!enabled) return {};
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

export type { Context, Link, Span } from '@opentelemetry/api';
export { context, createContextKey, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';

/**
 * Starts the SDK when the standard variables ask for traces (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); otherwise loads nothing. Resolves with what flushes and
 * stops it (a no-op when off).
 */
export async function startTracing(options: {
  role: string;
  env?: NodeJS.ProcessEnv;
}): Promise<{ on: boolean; protocol?: string; url?: string; shutdown: () => Promise<void> }> {
  const env = options.env ?? process.env;
  if (!tracingRequested(env)) return { on: false, shutdown: async () => undefined };
  const { startSdk } = await import('./sdk.ts');
  const { protocol, url, shutdown } = await startSdk({
    serviceName: 'switchboard',
    attributes: { 'switchboard.role': options.role, 'process.pid': String(process.pid) },
    env,
  });
  enabled = true;
  return {
    on: true,
    protocol,
    url,
    // Flushes what is left; a collector that is away loses those spans, never fails the stop.
    shutdown: async () => {
      enabled = false;
      await shutdown().catch(() => undefined);
    },
  };
}
