import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  type BufferConfig,
  NodeTracerProvider,
  ParentBasedSampler,
  type Sampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-node';
import { PromiseContextManager } from './promise-context.ts';

/**
 * The batch span processor's sizes when `OTEL_BSP_MAX_QUEUE_SIZE` / `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`
 * are not set. The SDK's own (2,048 and 512) drop spans at a few hundred messages a second: a
 * worker makes several spans a message, and they pile up while one export is on its way. A queue
 * of 32,768 spans holds seconds of a busy worker (some tens of MB at most, while a collector is
 * away); batches of 4,096 make a few exports a second instead of dozens.
 */
export const DEFAULT_BSP = { maxQueueSize: 32_768, maxExportBatchSize: 4_096 } as const;

function envNumber(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}: a positive number, not ${raw}`);
  return value;
}

/** The batch span processor's settings: the standard `OTEL_BSP_*` variables, else the hub's defaults. */
export function batchConfig(env: NodeJS.ProcessEnv): BufferConfig {
  const maxQueueSize = envNumber(env, 'OTEL_BSP_MAX_QUEUE_SIZE') ?? DEFAULT_BSP.maxQueueSize;
  const scheduledDelayMillis = envNumber(env, 'OTEL_BSP_SCHEDULE_DELAY');
  const exportTimeoutMillis = envNumber(env, 'OTEL_BSP_EXPORT_TIMEOUT');
  return {
    maxQueueSize,
    maxExportBatchSize: Math.min(
      maxQueueSize,
      envNumber(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE') ?? DEFAULT_BSP.maxExportBatchSize,
    ),
    ...(scheduledDelayMillis !== undefined ? { scheduledDelayMillis } : {}),
    ...(exportTimeoutMillis !== undefined ? { exportTimeoutMillis } : {}),
  };
}

/**
 * The sampler of the standard `OTEL_TRACES_SAMPLER` (and `OTEL_TRACES_SAMPLER_ARG`, the ratio of
 * the `traceidratio` ones): `parentbased_always_on` when unset, as the specification says. The
 * `parentbased_*` ones follow the decision of an inbound `traceparent`.
 */
export function samplerFromEnv(env: NodeJS.ProcessEnv): Sampler {
  const name = env.OTEL_TRACES_SAMPLER?.trim() || 'parentbased_always_on';
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  const ratio = (): Sampler => {
    const value = arg ? Number(arg) : 1;
    if (!Number.isFinite(value) || value < 0 || value > 1)
      throw new Error(`OTEL_TRACES_SAMPLER_ARG: a ratio from 0 to 1, not ${arg}`);
    return new TraceIdRatioBasedSampler(value);
  };
  switch (name) {
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
    default:
      throw new Error(
        `OTEL_TRACES_SAMPLER: one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio, not ${name}`,
      );
  }
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
}): Promise<{ protocol: string; url: string; shutdown: () => Promise<void> }> {
  const { env } = options;
  const protocol =
    env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  if (protocol !== 'http/protobuf' && protocol !== 'http/json')
    throw new Error(
      `OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf and http/json are supported, not ${protocol}`,
    );
  // The signal's own endpoint as it is; the general one with the signal's path appended.
  const url =
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    `${(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4318').replace(/\/+$/, '')}/v1/traces`;
  const exporter: SpanExporter =
    protocol === 'http/json'
      ? new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter({ url })
      : new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter({ url });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      'service.name': env.OTEL_SERVICE_NAME ?? options.serviceName,
      ...options.attributes,
    }),
    sampler: samplerFromEnv(env),
    spanProcessors: [new BatchSpanProcessor(exporter, batchConfig(env))],
  });
  // The W3C trace context propagator, and the context carried across `await` by promise hooks
  // (src/telemetry/promise-context.ts) rather than the SDK's AsyncLocalStorage, which costs
  // every promise of the process far more.
  provider.register({ contextManager: new PromiseContextManager() });
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
  return { protocol, url, shutdown: () => provider.shutdown() };
}
