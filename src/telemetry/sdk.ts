import type { Context, TracerProvider } from '@opentelemetry/api';
import { type Resource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  type BufferConfig,
  ParentBasedSampler,
  type Sampler,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-node';
import { z } from 'zod';
import type { EncodingSpanProcessor } from './encoding-span-processor.ts';

/**
 * The batch span processor's settings when `OTEL_BSP_MAX_QUEUE_SIZE`,
 * `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` and `OTEL_BSP_SCHEDULE_DELAY` are not set. The SDK's own sizes
 * (2,048 and 512) drop spans at a few hundred messages a second: a worker makes several spans a
 * message, and they pile up while one export is on its way. A queue of 32,768 spans holds seconds
 * of a busy worker (a few MB of encoded spans, while a collector is away); batches of 4,096 make a
 * few exports a second instead of dozens. A batch goes at the latest a second after its first span
 * (the SDK's default: 5 s): spans wait as bytes now (EncodingSpanProcessor), so the wait no longer
 * keeps objects alive, and a second is how late a trace shows, and what a crash loses, at an export
 * a second at most when it is not full.
 */
export const DEFAULT_BSP = {
  maxQueueSize: 32_768,
  maxExportBatchSize: 4_096,
  scheduledDelayMillis: 1_000,
} as const;

/** Synthetic messages tracing's warm-up runs (src/telemetry/warm-up.ts) unless `SWITCHBOARD_TRACE_WARMUP` is set. */
const DEFAULT_WARM_UP_MESSAGES = 4_000;

const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

/** A number from the environment, refused with what it should have been and what it was. */
const numberIn = (what: string, ok: (n: number) => boolean) =>
  z.string().transform((raw, ctx) => {
    const value = Number(raw);
    if (Number.isFinite(value) && ok(value)) return value;
    ctx.addIssue({ code: 'custom', message: `${what}, not ${raw}` });
    return z.NEVER;
  });
const positive = numberIn('a positive number', (n) => n > 0).optional();
const compression = z
  .enum(['gzip', 'none'], { error: (issue) => `gzip or none, not ${String(issue.input)}` })
  .optional();

/**
 * The standard variables this module reads (blank ones count as unset), after the OpenTelemetry
 * specification; a value it cannot use refuses the start, naming the variable.
 */
export const TraceEnvSchema = z.object({
  OTEL_TRACES_SAMPLER: z
    .enum(SAMPLERS, { error: (issue) => `one of ${SAMPLERS.join(', ')}, not ${String(issue.input)}` })
    .default('parentbased_always_on'),
  OTEL_TRACES_SAMPLER_ARG: numberIn('a ratio from 0 to 1', (n) => n >= 0 && n <= 1).optional(),
  OTEL_BSP_MAX_QUEUE_SIZE: positive,
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: positive,
  OTEL_BSP_SCHEDULE_DELAY: positive,
  OTEL_BSP_EXPORT_TIMEOUT: positive,
  OTEL_EXPORTER_OTLP_TIMEOUT: positive,
  OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: positive,
  OTEL_EXPORTER_OTLP_COMPRESSION: compression,
  OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: compression,
  OTEL_EXPORTER_OTLP_HEADERS: z.string().optional(),
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: z.string().optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: z
    .enum(['http/protobuf', 'http/json'], {
      error: (issue) => `only http/protobuf and http/json are supported, not ${String(issue.input)}`,
    })
    .optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: z
    .enum(['http/protobuf', 'http/json'], {
      error: (issue) => `only http/protobuf and http/json are supported, not ${String(issue.input)}`,
    })
    .optional(),
  /** The hub's own: synthetic messages of tracing's warm-up (src/telemetry/warm-up.ts). */
  SWITCHBOARD_TRACE_WARMUP: numberIn(
    'a whole number of messages from 0 (no warm-up) to 100000',
    (n) => Number.isInteger(n) && n >= 0 && n <= 100_000,
  ).optional(),
});
type TraceEnv = z.infer<typeof TraceEnvSchema>;

/** Reads and checks the variables; throws `NAME: what it should be, not what it is`. */
export function traceEnv(env: NodeJS.ProcessEnv): TraceEnv {
  const set: Record<string, string> = {};
  for (const key of Object.keys(TraceEnvSchema.shape)) {
    const value = env[key]?.trim();
    if (value) set[key] = value;
  }
  const parsed = TraceEnvSchema.safeParse(set);
  if (parsed.success) return parsed.data;
  throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
}

/** The batch span processor's settings: the standard `OTEL_BSP_*` variables, else the hub's defaults. */
export function batchConfig(env: NodeJS.ProcessEnv): BufferConfig {
  const e = traceEnv(env);
  const maxQueueSize = e.OTEL_BSP_MAX_QUEUE_SIZE ?? DEFAULT_BSP.maxQueueSize;
  return {
    maxQueueSize,
    maxExportBatchSize: Math.min(
      maxQueueSize,
      e.OTEL_BSP_MAX_EXPORT_BATCH_SIZE ?? DEFAULT_BSP.maxExportBatchSize,
    ),
    scheduledDelayMillis: e.OTEL_BSP_SCHEDULE_DELAY ?? DEFAULT_BSP.scheduledDelayMillis,
    ...(e.OTEL_BSP_EXPORT_TIMEOUT !== undefined ? { exportTimeoutMillis: e.OTEL_BSP_EXPORT_TIMEOUT } : {}),
  };
}

/**
 * The sampler of the standard `OTEL_TRACES_SAMPLER` (and `OTEL_TRACES_SAMPLER_ARG`, the ratio of
 * the `traceidratio` ones): `parentbased_always_on` when unset, as the specification says. The
 * `parentbased_*` ones follow the decision of an inbound `traceparent`.
 */
export function samplerFromEnv(env: NodeJS.ProcessEnv): Sampler {
  const e = traceEnv(env);
  const ratio = () => new TraceIdRatioBasedSampler(e.OTEL_TRACES_SAMPLER_ARG ?? 1);
  switch (e.OTEL_TRACES_SAMPLER) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio();
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio() });
  }
}

/**
 * The SDK's AsyncLocalStorage context manager, but for one call: the batch span processor runs
 * each export inside a context that only suppresses tracing (so that an instrumented HTTP client
 * does not trace the exporter's own requests), and on Node 20 the first `AsyncLocalStorage.run`
 * switches its promise hook on for good: every promise of the process pays from then on (4–5×
 * the CPU of a bare loop of awaits), in a process that may have no other reason to (a gateway
 * fed without HTTP, the bench's). Nothing in the hub instruments its HTTP clients, so such a call,
 * made where no context is active, runs its function as it is.
 */
export async function exportContextManager() {
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { ROOT_CONTEXT, trace } = await import('@opentelemetry/api');
  const { isTracingSuppressed } = await import('@opentelemetry/core');
  class ExportContextManager extends AsyncLocalStorageContextManager {
    override with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
      context: Context,
      fn: F,
      thisArg?: ThisParameterType<F>,
      ...args: A
    ): ReturnType<F> {
      if (isTracingSuppressed(context) && !trace.getSpan(context) && this.active() === ROOT_CONTEXT)
        return fn.apply(thisArg, args);
      return super.with(context, fn, thisArg, ...args);
    }
  }
  return new ExportContextManager();
}

/**
 * The OTLP/HTTP transport of the OpenTelemetry exporter (retries, time limit, concurrency,
 * keep-alive, compression), built as `@opentelemetry/exporter-trace-otlp-proto` and `-http` build
 * theirs, around `serializer`. Headers, time limit and compression are the standard variables of
 * `env` (the `_TRACES_` form first): the library's own reading of them looks at `process.env`
 * only, which is not always the environment the hub was started with.
 */
async function otlpHttpExporter<T>(
  url: string,
  json: boolean,
  env: NodeJS.ProcessEnv,
  serializer: { serializeRequest(request: T): Uint8Array | undefined },
  countItems: (request: T) => number,
) {
  const { OTLPExporterBase } = await import('@opentelemetry/otlp-exporter-base');
  const { convertLegacyHttpOptions, createOtlpHttpExportDelegate } = await import(
    '@opentelemetry/otlp-exporter-base/node-http'
  );
  const { JsonTraceSerializer, ProtobufTraceSerializer } = await import('@opentelemetry/otlp-transformer');
  const { parseKeyPairsIntoRecord } = await import('@opentelemetry/core');
  const contentType = json ? 'application/json' : 'application/x-protobuf';
  const e = traceEnv(env);
  const headers = {
    ...parseKeyPairsIntoRecord(e.OTEL_EXPORTER_OTLP_HEADERS),
    ...parseKeyPairsIntoRecord(e.OTEL_EXPORTER_OTLP_TRACES_HEADERS),
    'Content-Type': contentType,
  };
  const config = {
    ...convertLegacyHttpOptions({ url }, 'TRACES', 'v1/traces', { 'Content-Type': contentType }),
    headers: async () => headers,
    timeoutMillis: e.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT ?? e.OTEL_EXPORTER_OTLP_TIMEOUT ?? 10_000,
    compression: e.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION ?? e.OTEL_EXPORTER_OTLP_COMPRESSION ?? 'none',
  };
  const responses = json ? JsonTraceSerializer : ProtobufTraceSerializer;
  return new OTLPExporterBase<T>(
    createOtlpHttpExportDelegate(
      config,
      {
        serializeRequest: (request: T) => serializer.serializeRequest(request),
        deserializeResponse: (data: Uint8Array) => responses.deserializeResponse(data),
      },
      'otlp_http_span_exporter',
      { name: 'span', countItems },
      undefined,
    ),
  );
}

/**
 * The span processor and exporter of `protocol`. `http/protobuf` (the default): the hub's
 * `EncodingSpanProcessor`, which encodes each span when it ends (src/telemetry/otlp-proto.ts,
 * the OTLP exporter's bytes at well under half its CPU a span) and hands the transport the
 * requests as bytes; `http/json`: the SDK's batch span processor with the exporter's JSON
 * serializer.
 */
async function otlpProcessor(
  url: string,
  protocol: string,
  env: NodeJS.ProcessEnv,
  config: BufferConfig,
): Promise<SpanProcessor & Partial<Pick<EncodingSpanProcessor, 'discardWhile'>>> {
  if (protocol === 'http/json') {
    const { JsonTraceSerializer } = await import('@opentelemetry/otlp-transformer');
    const exporter = await otlpHttpExporter(url, true, env, JsonTraceSerializer, (spans) => spans.length);
    return new BatchSpanProcessor(exporter, config);
  }
  const { EncodingSpanProcessor } = await import('./encoding-span-processor.ts');
  type Request = import('./encoding-span-processor.ts').EncodedRequest;
  const exporter = await otlpHttpExporter<Request>(
    url,
    false,
    env,
    { serializeRequest: (request) => request.bytes },
    (request) => request.count,
  );
  return new EncodingSpanProcessor(exporter, config);
}

/**
 * Registers the hub's tracer (src/telemetry/hub-tracer.ts, in place of the SDK's) with what the
 * SDK's provider registers beside it: an AsyncLocalStorage context manager (see
 * exportContextManager), the W3C trace context and baggage propagators. (A context manager on bare
 * V8 promise hooks was tried instead: cheaper on a loop of awaits, but the bench's workers spent
 * more CPU per message with it; README "Tracing".) `sampler`: `samplerFromEnv`'s (a parent-based
 * one with its default delegates, if parent-based).
 */
export async function registerTracer(options: {
  resource: Resource;
  sampler: Sampler;
  processor: SpanProcessor;
}): Promise<TracerProvider & { forceFlush(): Promise<void>; shutdown(): Promise<void> }> {
  const api = await import('@opentelemetry/api');
  const { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } = await import(
    '@opentelemetry/core'
  );
  const { HubTracerProvider } = await import('./hub-tracer.ts');
  const provider = new HubTracerProvider({ ...options, parentBasedDefaults: true });
  api.context.setGlobalContextManager((await exportContextManager()).enable());
  api.propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  api.trace.setGlobalTracerProvider(provider);
  return provider;
}

/**
 * The OpenTelemetry SDK: loaded (dynamically, by `startTracing`) only when an OTLP endpoint is
 * configured. OTLP over HTTP, protobuf unless `OTEL_EXPORTER_OTLP_PROTOCOL` (or its `_TRACES_`
 * form) says `http/json`; endpoint, headers, timeouts, batching (`OTEL_BSP_*`, with larger defaults
 * than the SDK's, see DEFAULT_BSP) and sampling (`OTEL_TRACES_SAMPLER`) come from the standard variables.
 */
export async function startSdk(options: {
  serviceName: string;
  attributes: Record<string, string>;
  env: NodeJS.ProcessEnv;
  /** Where the SDK's own warnings and errors go (a collector that refuses exports, …). */
  onProblem?: (level: 'warn' | 'error', message: string) => void;
}): Promise<{
  protocol: string;
  url: string;
  shutdown: () => Promise<void>;
  /** Synthetic messages of tracing's warm-up (`SWITCHBOARD_TRACE_WARMUP`; 0: none). */
  warmUpMessages: number;
  /**
   * Runs `fn` with the spans that end meanwhile encoded and dropped, not exported; resolves with
   * how many (http/protobuf only: `EncodingSpanProcessor.discardWhile`).
   */
  discardWhile?: (fn: () => Promise<void>) => Promise<number>;
}> {
  const { env } = options;
  const checked = traceEnv(env);
  const protocol =
    checked.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? checked.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  // The signal's own endpoint as it is; the general one with the signal's path appended.
  const url =
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    `${(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4318').replace(/\/+$/, '')}/v1/traces`;
  const processor = await otlpProcessor(url, protocol, env, batchConfig(env));
  const provider = await registerTracer({
    resource: resourceFromAttributes({
      'service.name': env.OTEL_SERVICE_NAME ?? options.serviceName,
      ...options.attributes,
    }),
    sampler: samplerFromEnv(env),
    processor,
  });
  if (options.onProblem) {
    const { diag, DiagLogLevel } = await import('@opentelemetry/api');
    const say =
      (level: 'warn' | 'error') =>
      (message: string, ...args: unknown[]) =>
        options.onProblem!(
          level,
          [message, ...args.map((a) => (a instanceof Error ? a.message : String(a)))].join(' '),
        );
    const quiet = () => undefined;
    diag.setLogger(
      { error: say('error'), warn: say('warn'), info: quiet, debug: quiet, verbose: quiet },
      DiagLogLevel.WARN,
    );
  }
  return {
    protocol,
    url,
    shutdown: () => provider.shutdown(),
    warmUpMessages: checked.SWITCHBOARD_TRACE_WARMUP ?? DEFAULT_WARM_UP_MESSAGES,
    ...(processor.discardWhile ? { discardWhile: (fn) => processor.discardWhile!(fn) } : {}),
  };
}
