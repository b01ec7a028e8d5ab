import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace-node';

/**
 * The OpenTelemetry SDK: loaded (dynamically, by `startTracing`) only when an OTLP endpoint is
 * configured. OTLP over HTTP, protobuf unless `OTEL_EXPORTER_OTLP_PROTOCOL` (or its `_TRACES_`
 * form) says `http/json`; endpoint, headers, timeouts and batching come from the standard variables.
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
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  // An AsyncLocalStorage context manager and the W3C trace context propagator.
  provider.register();
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
