import {
  type Context,
  context,
  createTraceState,
  type DiagLogger,
  DiagLogLevel,
  diag,
  ROOT_CONTEXT,
  SamplingDecision,
  type SpanContext,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { type ExportResult, ExportResultCode, isTracingSuppressed } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  type ReadableSpan,
  type Span,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type EncodedRequest,
  type EncodedRequestExporter,
  EncodingSpanProcessor,
} from '../../src/telemetry/encoding-span-processor.ts';
import { HubSpan, type HubTracer, HubTracerProvider } from '../../src/telemetry/hub-tracer.ts';
import { encodeTraceRequest } from '../../src/telemetry/otlp-proto.ts';
import { samplerFromEnv } from '../../src/telemetry/sdk.ts';

/** An exporter that keeps each request and answers as `answer` says (now, later, never). */
function recorder(
  answer: (request: EncodedRequest, done: (r: ExportResult) => void) => void = (_, done) =>
    done({ code: ExportResultCode.SUCCESS }),
) {
  const requests: EncodedRequest[] = [];
  const suppressed: boolean[] = [];
  let shutdowns = 0;
  const exporter: EncodedRequestExporter = {
    export(request, done) {
      requests.push(request);
      suppressed.push(isTracingSuppressed(context.active()));
      answer(request, done);
    },
    async shutdown() {
      shutdowns++;
    },
  };
  return { exporter, requests, suppressed, shutdowns: () => shutdowns };
}

/** Hands every finished span to both processors (the one under test, and a list to compare with). */
function tee(a: SpanProcessor, b: SpanProcessor): SpanProcessor {
  return {
    onStart: (span: Span, ctx: Context) => {
      a.onStart(span, ctx);
      b.onStart(span, ctx);
    },
    onEnd: (span: ReadableSpan) => {
      a.onEnd(span);
      b.onEnd(span);
    },
    forceFlush: async () => {
      await Promise.all([a.forceFlush(), b.forceFlush()]);
    },
    shutdown: async () => {
      await Promise.all([a.shutdown(), b.shutdown()]);
    },
  };
}

/** Every span that ends, sampled or not, in order. */
function collector() {
  const ended: ReadableSpan[] = [];
  const processor: SpanProcessor = {
    onStart: () => undefined,
    onEnd: (span) => {
      ended.push(span);
    },
    forceFlush: async () => undefined,
    shutdown: async () => undefined,
  };
  return { processor, spans: () => [...ended] };
}

/** The hub's tracer provider over `processor`, and the finished spans in the order they ended. */
function hubProvider(processor: SpanProcessor, service = 'test') {
  const finished = collector();
  const provider = new HubTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'switchboard.role': 'worker' }),
    sampler: samplerFromEnv({}),
    parentBasedDefaults: true,
    processor: tee(processor, finished.processor),
  });
  return { provider, spans: finished.spans };
}

/** The SDK's own provider, for spans of another resource and of a sampler that records unsampled spans. */
function sdkProvider(processor: SpanProcessor, service: string, recordOnly = false) {
  const finished = collector();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    ...(recordOnly
      ? {
          sampler: {
            shouldSample: () => ({ decision: SamplingDecision.RECORD }),
            toString: () => 'RecordOnly',
          },
        }
      : {}),
    spanProcessors: [processor, finished.processor],
  });
  return { provider, spans: finished.spans };
}

const bytes = (request: EncodedRequest | undefined) => Buffer.from(request?.bytes ?? []);
const reference = (spans: ReadableSpan[]) =>
  Buffer.from(ProtobufTraceSerializer.serializeRequest(spans) ?? []);

/** The hub's kinds of span: attributes of every type, a remote parent, links, an event, a status. */
function busySpans(provider: { getTracer(name: string): ReturnType<HubTracerProvider['getTracer']> }) {
  const tracer = provider.getTracer('switchboard');
  const remote = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: 1,
    isRemote: true,
  });
  const accept = tracer.startSpan(
    'switchboard.accept',
    {
      kind: 3,
      attributes: {
        'messaging.system': 'switchboard',
        'switchboard.envelope.id': 'env-1',
        n: 3,
        big: 2 ** 40,
        d: 0.5,
        ok: true,
        list: ['a', 'é'],
      },
    },
    remote,
  );
  accept.addEvent('note', { why: 'test' });
  accept.end();
  const turn = tracer.startSpan(
    'switchboard.turn',
    { kind: 4, links: [{ context: accept.spanContext(), attributes: { k: 'v' } }] },
    trace.setSpan(ROOT_CONTEXT, accept),
  );
  turn.setStatus({ code: 2, message: 'failed: ü' });
  turn.end();
  for (let i = 0; i < 5; i++)
    tracer.startSpan('switchboard.commit', { attributes: { 'switchboard.commit.turns': i } }).end();
}

const problems: { level: string; message: string }[] = [];
const logger: DiagLogger = {
  error: (message) => problems.push({ level: 'error', message }),
  warn: (message) => problems.push({ level: 'warn', message }),
  info: () => undefined,
  debug: () => undefined,
  verbose: () => undefined,
};

afterEach(() => {
  vi.useRealTimers();
  context.disable();
  diag.disable();
  problems.length = 0;
});

describe('EncodingSpanProcessor (spans encoded as they end, exported in batches)', () => {
  it("sends the bytes encodeTraceRequest and the OTLP exporter's serializer make of the same spans", async () => {
    // A context manager that makes what it is given active (the hub's skips a bare suppression).
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const { exporter, requests, suppressed } = recorder();
    const processor = new EncodingSpanProcessor(exporter, {
      maxExportBatchSize: 100,
      scheduledDelayMillis: 60_000,
    });
    const { provider, spans } = hubProvider(processor);
    busySpans(provider);
    expect(requests).toHaveLength(0);
    await processor.forceFlush();
    expect(requests).toHaveLength(1);
    expect(requests[0]!.count).toBe(7);
    expect(bytes(requests[0]).equals(Buffer.from(encodeTraceRequest(spans())))).toBe(true);
    expect(bytes(requests[0]).equals(reference(spans()))).toBe(true);
    // The export runs with tracing suppressed (an instrumented HTTP client makes no span of it).
    expect(suppressed).toEqual([true]);
    // And again, the encoder's caches warm: the same bytes for the next batch's spans.
    const before = spans().length;
    busySpans(provider);
    await processor.forceFlush();
    const second = spans().slice(before);
    expect(bytes(requests[1]).equals(reference(second))).toBe(true);
  });

  it('groups spans of several scopes and resources as the exporter does, in the order they first ended', async () => {
    const { exporter, requests } = recorder();
    const processor = new EncodingSpanProcessor(exporter, { scheduledDelayMillis: 60_000 });
    const hub = hubProvider(processor, 'hub');
    const other = sdkProvider(processor, 'other');
    const ended: ReadableSpan[] = [];
    const last = () => [...hub.spans(), ...other.spans()].find((s) => !ended.includes(s))!;
    const end = (tracer: { startSpan(name: string): { end(): void } }, name: string) => {
      tracer.startSpan(name).end();
      ended.push(last());
    };
    end(hub.provider.getTracer('one'), 'a1');
    end(other.provider.getTracer('one'), 'b1');
    end(hub.provider.getTracer('two', '1.2.3', { schemaUrl: 'https://example.com/s' }), 'a2');
    end(hub.provider.getTracer('one'), 'a3');
    end(other.provider.getTracer('two'), 'b2');
    await processor.forceFlush();
    expect(requests).toHaveLength(1);
    expect(ended.map((s) => s.name)).toEqual(['a1', 'b1', 'a2', 'a3', 'b2']);
    expect(bytes(requests[0]).equals(reference(ended))).toBe(true);
    expect(bytes(requests[0]).equals(Buffer.from(encodeTraceRequest(ended)))).toBe(true);
  });

  it('sends a batch when it is full, and the rest after the schedule delay', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const settle = () => new Promise((resolve) => setImmediate(resolve));
    const { exporter, requests } = recorder();
    const processor = new EncodingSpanProcessor(exporter, {
      maxQueueSize: 100,
      maxExportBatchSize: 3,
      scheduledDelayMillis: 50,
    });
    const { provider, spans } = hubProvider(processor);
    const tracer = provider.getTracer('switchboard');
    for (let i = 0; i < 7; i++) tracer.startSpan(`s${i}`).end();
    // Two full batches, the first at once; the seventh span waits for the timer.
    await settle();
    expect(requests.map((r) => r.count)).toEqual([3, 3]);
    await vi.advanceTimersByTimeAsync(49);
    await settle();
    expect(requests.map((r) => r.count)).toEqual([3, 3]);
    await vi.advanceTimersByTimeAsync(1);
    await settle();
    expect(requests.map((r) => r.count)).toEqual([3, 3, 1]);
    const all = spans();
    expect(bytes(requests[0]).equals(reference(all.slice(0, 3)))).toBe(true);
    expect(bytes(requests[1]).equals(reference(all.slice(3, 6)))).toBe(true);
    expect(bytes(requests[2]).equals(reference(all.slice(6)))).toBe(true);
    // The delay counts from a batch's first span: two spans 30 ms apart go together.
    tracer.startSpan('t1').end();
    await vi.advanceTimersByTimeAsync(30);
    tracer.startSpan('t2').end();
    await vi.advanceTimersByTimeAsync(20);
    await settle();
    expect(requests.map((r) => r.count)).toEqual([3, 3, 1, 2]);
  });

  it('discardWhile drops the spans that end meanwhile, full batches and the rest, past the queue limit too; the next spans are sent', async () => {
    const { exporter, requests } = recorder();
    const processor = new EncodingSpanProcessor(exporter, { maxQueueSize: 8, maxExportBatchSize: 3 });
    const { provider, spans } = hubProvider(processor);
    const tracer = provider.getTracer('switchboard');
    tracer.startSpan('before').end();
    const dropped = await processor.discardWhile(async () => {
      for (let i = 0; i < 20; i++) {
        tracer.startSpan(`warm-up ${i}`).end();
        // As a warm-up's turns do: the spans of one message, then a wait.
        if (i % 2 === 1) await new Promise((resolve) => setImmediate(resolve));
      }
    });
    expect(dropped).toBe(20);
    expect(processor.droppedSpans).toBe(0);
    // What ended before was sent first; nothing of the warm-up was.
    expect(requests.map((r) => r.count)).toEqual([1]);
    tracer.startSpan('after').end();
    await processor.forceFlush();
    expect(requests.map((r) => r.count)).toEqual([1, 1]);
    const all = spans();
    expect(bytes(requests[1]).equals(reference(all.filter((s) => s.name === 'after')))).toBe(true);
  });

  it('only sampled spans are exported', async () => {
    const { exporter, requests } = recorder();
    const processor = new EncodingSpanProcessor(exporter, { scheduledDelayMillis: 60_000 });
    const recordOnly = sdkProvider(processor, 'x', true);
    const span = recordOnly.provider.getTracer('t').startSpan('unsampled');
    expect(span.isRecording()).toBe(true);
    span.end();
    await processor.forceFlush();
    expect(recordOnly.spans()).toHaveLength(1);
    expect(requests).toHaveLength(0);
  });

  it('drops spans past the queue limit while an export is on its way, counts them, and warns once', async () => {
    diag.setLogger(logger, DiagLogLevel.WARN);
    const waiting: ((r: ExportResult) => void)[] = [];
    const { exporter, requests } = recorder((_, done) => waiting.push(done));
    const processor = new EncodingSpanProcessor(exporter, {
      maxQueueSize: 4,
      maxExportBatchSize: 2,
      scheduledDelayMillis: 60_000,
    });
    const { provider } = hubProvider(processor);
    const tracer = provider.getTracer('switchboard');
    // The first batch goes to the exporter, which does not answer; four more wait; five are dropped.
    for (let i = 0; i < 11; i++) tracer.startSpan(`s${i}`).end();
    await vi.waitFor(() => expect(requests).toHaveLength(1));
    expect(processor.droppedSpans).toBe(5);
    expect(problems).toEqual([]);
    // The exporter answers: the waiting batches go, and the next span is taken, with one warning.
    const answer = async () => {
      while (waiting.length) waiting.shift()!({ code: ExportResultCode.SUCCESS });
    };
    await answer();
    await vi.waitFor(() => expect(requests).toHaveLength(2));
    await answer();
    await vi.waitFor(() => expect(requests).toHaveLength(3));
    await answer();
    tracer.startSpan('taken').end();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ level: 'warn', message: expect.stringMatching(/^Dropped 5 spans/) });
    const flushed = processor.forceFlush();
    await vi.waitFor(() => expect(requests).toHaveLength(4));
    await answer();
    await flushed;
    expect(requests.map((r) => r.count)).toEqual([2, 2, 2, 1]);
    expect(processor.droppedSpans).toBe(5);
    expect(problems).toHaveLength(1);
  });

  it('forceFlush sends everything pending and waits for the exports; shutdown too, then ignores later spans', async () => {
    const { exporter, requests, shutdowns } = recorder((_, done) =>
      setImmediate(() => done({ code: ExportResultCode.SUCCESS })),
    );
    const processor = new EncodingSpanProcessor(exporter, {
      maxExportBatchSize: 4,
      scheduledDelayMillis: 60_000,
    });
    const { provider } = hubProvider(processor);
    const tracer = provider.getTracer('switchboard');
    const answered: number[] = [];
    const original = exporter.export.bind(exporter);
    exporter.export = (request, done) =>
      original(request, (result) => {
        answered.push(request.count);
        done(result);
      });
    for (let i = 0; i < 10; i++) tracer.startSpan(`s${i}`).end();
    await processor.forceFlush();
    expect(answered).toEqual([4, 4, 2]);
    for (let i = 0; i < 3; i++) tracer.startSpan(`t${i}`).end();
    expect(shutdowns()).toBe(0);
    await provider.shutdown();
    expect(answered).toEqual([4, 4, 2, 3]);
    expect(shutdowns()).toBe(1);
    tracer.startSpan('late').end();
    await processor.forceFlush();
    await processor.shutdown();
    expect(requests).toHaveLength(4);
    expect(shutdowns()).toBe(1);
  });

  it("a failing collector's error goes to the SDK's error handler (diag), never to the caller", async () => {
    diag.setLogger(logger, DiagLogLevel.WARN);
    let mode: 'fail' | 'throw' | 'ok' = 'fail';
    const { exporter, requests } = recorder((_, done) => {
      if (mode === 'throw') throw new Error('transport broke');
      if (mode === 'fail') done({ code: ExportResultCode.FAILED, error: new Error('collector said 503') });
      else done({ code: ExportResultCode.SUCCESS });
    });
    const processor = new EncodingSpanProcessor(exporter, {
      maxExportBatchSize: 2,
      scheduledDelayMillis: 60_000,
    });
    const { provider } = hubProvider(processor);
    const tracer = provider.getTracer('switchboard');
    tracer.startSpan('a').end();
    tracer.startSpan('b').end();
    await vi.waitFor(() => expect(problems).toHaveLength(1));
    expect(problems[0]).toMatchObject({
      level: 'error',
      message: expect.stringContaining('collector said 503'),
    });
    mode = 'throw';
    tracer.startSpan('c').end();
    await expect(processor.forceFlush()).resolves.toBeUndefined();
    expect(problems[1]).toMatchObject({
      level: 'error',
      message: expect.stringContaining('transport broke'),
    });
    // The next batches go as before.
    mode = 'ok';
    tracer.startSpan('d').end();
    await processor.forceFlush();
    expect(requests.map((r) => r.count)).toEqual([2, 1, 1]);
    expect(problems).toHaveLength(2);
  });

  it('an export that does not answer within the export timeout is given up (reported) and the next batch goes', async () => {
    diag.setLogger(logger, DiagLogLevel.WARN);
    let answer = false;
    const { exporter, requests } = recorder((_, done) => {
      if (answer) done({ code: ExportResultCode.SUCCESS });
    });
    const processor = new EncodingSpanProcessor(exporter, {
      maxExportBatchSize: 1,
      scheduledDelayMillis: 60_000,
      exportTimeoutMillis: 20,
    });
    const { provider } = hubProvider(processor);
    provider.getTracer('switchboard').startSpan('lost').end();
    await vi.waitFor(() => expect(problems).toHaveLength(1));
    expect(problems[0]!.message).toContain('Timeout');
    answer = true;
    provider.getTracer('switchboard').startSpan('sent').end();
    await processor.forceFlush();
    expect(requests).toHaveLength(2);
  });
});

describe('HubTracer.recordEnded (a finished span without a span object: the queue wait)', () => {
  const WAIT = Object.freeze({ 'messaging.operation.type': 'receive' });

  /** The context of a remote parent (as an envelope carries one), of these flags. */
  const carriedParent = (traceFlags: number, traceState?: ReturnType<typeof createTraceState>) =>
    trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags,
      ...(traceState ? { traceState } : {}),
      isRemote: true,
    });

  /** The provider with the processor itself (not a tee: the tracer finds its `recordEnded`). */
  function direct() {
    const { exporter, requests } = recorder();
    const processor = new EncodingSpanProcessor(exporter, { scheduledDelayMillis: 60_000 });
    const provider = new HubTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'test', 'switchboard.role': 'worker' }),
      sampler: samplerFromEnv({}),
      parentBasedDefaults: true,
      processor,
    });
    const tracer = provider.getTracer('switchboard') as HubTracer;
    const recorded = vi.spyOn(processor, 'recordEnded');
    const ended = vi.spyOn(processor, 'onEnd');
    return { processor, tracer, requests, recorded, ended };
  }

  /** The span `recordEnded` handed the processor, as a span object of the same fields would be. */
  function asSpan(tracer: HubTracer, call: unknown[]): HubSpan {
    const [, , parent, spanId, name, kind, startMs, endMs, attributes] = call as [
      unknown,
      unknown,
      SpanContext,
      string,
      string,
      number,
      number,
      number,
      Record<string, string>,
    ];
    const context: SpanContext = {
      traceId: parent.traceId,
      spanId,
      traceFlags: TraceFlags.SAMPLED,
      traceState: parent.traceState,
    };
    const span = new HubSpan(tracer, name, context, kind, attributes, undefined, startMs, parent, true);
    // Ended by hand: `end()` would hand it to the processor.
    span.endMs = endMs;
    return span;
  }

  it('exports the bytes of the span started and ended with the same fields (a remote parent with a trace state; a local one)', async () => {
    const { processor, tracer, requests, recorded, ended } = direct();
    const remote = carriedParent(1, createTraceState('vendor=abc,other=1'));
    const acceptedAt = Date.now() - 12.25;
    tracer.recordEnded(
      'switchboard.queue.wait',
      { kind: 4, attributes: WAIT, startTime: acceptedAt },
      remote,
    );
    const local = tracer.startSpan('switchboard.turn', { kind: 4 }, remote);
    tracer.recordEnded(
      'switchboard.step',
      { attributes: { n: 1, ok: true } },
      trace.setSpan(ROOT_CONTEXT, local),
    );
    local.end();
    expect(recorded).toHaveBeenCalledTimes(2);
    // No span object reached the processor but the turn.
    expect(ended).toHaveBeenCalledTimes(1);
    const wait = asSpan(tracer, recorded.mock.calls[0]!);
    const step = asSpan(tracer, recorded.mock.calls[1]!);
    expect(wait.startMs).toBe(acceptedAt);
    expect(wait.endMs).toBeGreaterThanOrEqual(acceptedAt);
    expect(wait.spanContext().spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(step.parentSpanContext).toBe(local.spanContext());
    await processor.forceFlush();
    expect(requests).toHaveLength(1);
    expect(requests[0]!.count).toBe(3);
    const spans = [wait, step, local as unknown as ReadableSpan];
    expect(bytes(requests[0]).equals(Buffer.from(encodeTraceRequest(spans)))).toBe(true);
    expect(bytes(requests[0]).equals(reference(spans))).toBe(true);
  });

  it('records nothing under an unsampled parent, and starts a span of its own for a root or a span with links', async () => {
    const { processor, tracer, requests, recorded, ended } = direct();
    const unsampled = carriedParent(0);
    tracer.recordEnded('switchboard.queue.wait', { kind: 4, attributes: WAIT }, unsampled);
    expect(recorded).not.toHaveBeenCalled();
    expect(ended).not.toHaveBeenCalled();
    // A root: its sampler decides, on a span of its own.
    tracer.recordEnded('switchboard.queue.wait', { kind: 4, attributes: WAIT }, ROOT_CONTEXT);
    const root = ended.mock.calls[0]![0];
    expect(root.parentSpanContext).toBeUndefined();
    expect(root.name).toBe('switchboard.queue.wait');
    const sampled = trace.setSpanContext(ROOT_CONTEXT, {
      ...trace.getSpanContext(unsampled)!,
      traceFlags: 1,
    });
    tracer.recordEnded('linked', { links: [{ context: root.spanContext() }] }, sampled);
    expect(ended.mock.calls[1]![0].links).toHaveLength(1);
    expect(recorded).not.toHaveBeenCalled();
    await processor.forceFlush();
    expect(requests[0]!.count).toBe(2);
  });

  it('with a processor that takes only span objects, ends a span of the same fields', () => {
    const { provider, spans } = hubProvider(collector().processor);
    const tracer = provider.getTracer('switchboard') as HubTracer;
    const parent = carriedParent(1);
    const acceptedAt = Date.now() - 5;
    tracer.recordEnded(
      'switchboard.queue.wait',
      { kind: 4, attributes: WAIT, startTime: acceptedAt },
      parent,
    );
    const [wait] = spans() as HubSpan[];
    expect(wait!.name).toBe('switchboard.queue.wait');
    expect(wait!.kind).toBe(4);
    expect(wait!.attributes).toBe(WAIT);
    expect(wait!.startMs).toBe(acceptedAt);
    expect(wait!.parentSpanContext).toEqual(trace.getSpanContext(parent));
  });
});
