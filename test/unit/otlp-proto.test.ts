import { context, propagation, ROOT_CONTEXT, type Span, trace } from '@opentelemetry/api';
import { suppressTracing, W3CTraceContextPropagator } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeTraceRequest } from '../../src/telemetry/otlp-proto.ts';
import { exportContextManager, startSdk } from '../../src/telemetry/sdk.ts';
import { startOtlpReceiver } from '../helpers/otlp-receiver.ts';

/** A provider of its own (not registered): its spans, finished, for the encoders. */
function provider(resource: Record<string, string | number | boolean | string[]>) {
  const exporter = new InMemorySpanExporter();
  const p = new BasicTracerProvider({
    resource: resourceFromAttributes(resource),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  return { p, finished: () => exporter.getFinishedSpans() };
}

/** The OTLP exporter's own serializer: the reference the lean encoder must match byte for byte. */
const reference = (spans: ReadableSpan[]) =>
  Buffer.from(ProtobufTraceSerializer.serializeRequest(spans) ?? []);
const lean = (spans: ReadableSpan[]) => Buffer.from(encodeTraceRequest(spans));

// Minimal wire reader, for checking fields by number (trace.proto) independently of both encoders.
function* fields(buf: Buffer): Generator<{ no: number; wire: number; value: bigint | Buffer }> {
  let at = 0;
  const varint = () => {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = buf[at++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return result;
    }
  };
  while (at < buf.length) {
    const key = Number(varint());
    const wire = key & 7;
    if (wire === 0) yield { no: key >>> 3, wire, value: varint() };
    else if (wire === 1) {
      yield { no: key >>> 3, wire, value: buf.readBigUInt64LE(at) };
      at += 8;
    } else if (wire === 5) {
      yield { no: key >>> 3, wire, value: BigInt(buf.readUInt32LE(at)) };
      at += 4;
    } else {
      const length = Number(varint());
      yield { no: key >>> 3, wire, value: buf.subarray(at, at + length) };
      at += length;
    }
  }
}
const only = (buf: Buffer, no: number) => [...fields(buf)].filter((f) => f.no === no).map((f) => f.value);

describe('OTLP/protobuf encoding of spans (src/telemetry/otlp-proto.ts)', () => {
  afterEach(() => {
    propagation.disable();
  });

  it('writes the bytes the OTLP exporter writes: ids, parents, kinds, times, every attribute type, events, links, status, resource', () => {
    const { p, finished } = provider({
      'service.name': 'switchboard',
      'switchboard.role': 'worker',
      'process.pid': '4242',
      'x.flag': true,
      'x.list': ['a', 'b'],
      'x.n': 7,
    });
    const tracer = p.getTracer('switchboard');
    // A remote parent with a trace state (as a carried traceparent is).
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const remote = propagation.extract(context.active(), {
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'vendor=x,other=y',
    });
    const long = 'x'.repeat(43) + 'é'.repeat(50);
    const root = tracer.startSpan(
      'switchboard.accept',
      {
        kind: 3,
        startTime: [1_765_000_000, 123_456_789],
        attributes: {
          s: 'ascii',
          empty: '',
          accented: 'héllo wörld ✓ 🚀',
          exactly42: 'y'.repeat(42),
          long,
          'long.ascii': 'z'.repeat(300),
          t: true,
          f: false,
          zero: 0,
          int: 42,
          big: 2 ** 40 + 3,
          negative: -5,
          double: 3.25,
          nan: Number.NaN,
          strings: ['a', 'ü', ''],
          numbers: [1, -2, 2.5],
          bools: [true, false],
          'clé.non-ascii': 'v',
        },
      },
      remote,
    );
    root.addEvent('retry', { attempt: 2, reason: 'timeout' }, [1_765_000_001, 5]);
    root.addEvent('plain');
    root.recordException(new Error('it broke: ünïcode'));
    root.setStatus({ code: 2, message: 'failed' });
    root.end([1_765_000_002, 999_999_999]);
    const child = tracer.startSpan(
      'switchboard.turn',
      {
        kind: 4,
        links: [
          { context: root.spanContext() },
          { context: trace.getSpanContext(remote)!, attributes: { why: 'carried', n: 1 } },
        ],
      },
      trace.setSpan(context.active(), root),
    );
    child.setStatus({ code: 1 });
    child.end();
    for (const kind of [0, 1, 2] as const) tracer.startSpan(`kind ${kind}`, { kind }).end();
    // A span past 16 kB (a three-byte length) and one under 128 bytes (a one-byte length).
    tracer.startSpan('big', { attributes: { blob: 'b'.repeat(20_000) } }).end();
    tracer.startSpan('s').end();

    const spans = finished();
    expect(spans).toHaveLength(7);
    expect(lean(spans).equals(reference(spans))).toBe(true);

    // And by field number, independently: the first span's ids, parent, kind, times, flags.
    const [resourceSpans] = only(lean(spans), 1) as Buffer[];
    const [scopeSpans] = only(resourceSpans!, 2) as Buffer[];
    const [first] = only(scopeSpans!, 2) as Buffer[];
    const f = (no: number) => only(first!, no)[0];
    expect((f(1) as Buffer).toString('hex')).toBe('0af7651916cd43dd8448eb211c80319c');
    expect((f(2) as Buffer).toString('hex')).toBe(root.spanContext().spanId);
    expect((f(3) as Buffer).toString()).toBe('vendor=x,other=y');
    expect((f(4) as Buffer).toString('hex')).toBe('b7ad6b7169203331');
    expect((f(5) as Buffer).toString()).toBe('switchboard.accept');
    expect(f(6)).toBe(4n); // PRODUCER, the protocol's numbering
    expect(f(7)).toBe(1_765_000_000_123_456_789n);
    expect(f(8)).toBe(1_765_000_002_999_999_999n);
    expect(only(first!, 9)).toHaveLength(18);
    expect(only(first!, 11)).toHaveLength(3);
    expect(f(16)).toBe(0x301n); // sampled, the parent known to be remote
  });

  it('groups spans by resource and scope as the exporter does, and encodes nothing for no spans', () => {
    const a = provider({ 'service.name': 'a' });
    const b = provider({ 'service.name': 'b' });
    a.p.getTracer('one').startSpan('a1').end();
    b.p.getTracer('one').startSpan('b1').end();
    a.p.getTracer('two', '1.2.3').startSpan('a2').end();
    a.p.getTracer('one').startSpan('a3').end();
    const spans = [a.finished()[0]!, b.finished()[0]!, a.finished()[1]!, a.finished()[2]!];
    expect(lean(spans).equals(reference(spans))).toBe(true);
    expect(only(lean(spans), 1)).toHaveLength(2);
    expect(lean([])).toHaveLength(0);
    // Twice in a row (the writer and the resource's encoding are reused): the same bytes.
    expect(lean(spans).equals(lean(spans))).toBe(true);
  });

  it('many spans in one request (the writer grows), each as the exporter writes it', () => {
    const { p, finished } = provider({ 'service.name': 'switchboard' });
    const tracer = p.getTracer('switchboard');
    for (let i = 0; i < 3_000; i++) {
      const span: Span = tracer.startSpan('switchboard.turn', {
        attributes: {
          'switchboard.envelope.id': `envelope-${i}`,
          n: i,
          [`k.${i % 7}`]: i % 2 === 0,
          state: `s${i % 40}`,
        },
      });
      span.end();
    }
    const spans = finished();
    const encoded = lean(spans);
    expect(encoded.length).toBeGreaterThan(64 * 1024);
    expect(encoded.equals(reference(spans))).toBe(true);
  });

  it('the SDK exports with it over OTLP/HTTP (protobuf), with the OTEL_EXPORTER_OTLP_* headers of the environment it is given', async () => {
    const receiver = await startOtlpReceiver();
    // The hub's environment, not the process's: the library's own reading looks at process.env.
    process.env.OTEL_EXPORTER_OTLP_HEADERS = 'x-process=not-this';
    try {
      const sdk = await startSdk({
        serviceName: 'switchboard',
        attributes: { 'switchboard.role': 'test' },
        env: {
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_EXPORTER_OTLP_HEADERS: 'x-custom=yes,x-both=general',
          OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-both=traces',
          OTEL_EXPORTER_OTLP_TIMEOUT: '5000',
        },
      });
      expect(sdk.protocol).toBe('http/protobuf');
      const tracer = trace.getTracer('switchboard');
      const parent = tracer.startSpan('parent', { attributes: { a: 'b', n: 3 } });
      tracer
        .startSpan(
          'child',
          { links: [{ context: parent.spanContext() }] },
          trace.setSpan(context.active(), parent),
        )
        .end();
      parent.end();
      await sdk.shutdown();
      expect(receiver.requests).toHaveLength(1);
      expect(receiver.requests[0]).toMatchObject({
        path: '/v1/traces',
        contentType: 'application/x-protobuf',
        headers: { 'x-custom': 'yes', 'x-both': 'traces' },
      });
      expect(receiver.requests[0]!.headers['x-process']).toBeUndefined();
      const byName = Object.fromEntries(receiver.spans.map((s) => [s.name, s]));
      expect(byName.parent).toMatchObject({
        traceId: parent.spanContext().traceId,
        spanId: parent.spanContext().spanId,
        parentSpanId: '',
        attributes: { a: 'b', n: 3 },
        resource: { 'service.name': 'switchboard', 'switchboard.role': 'test' },
      });
      expect(byName.child).toMatchObject({
        traceId: parent.spanContext().traceId,
        parentSpanId: parent.spanContext().spanId,
        links: [{ traceId: parent.spanContext().traceId, spanId: parent.spanContext().spanId }],
      });
    } finally {
      delete process.env.OTEL_EXPORTER_OTLP_HEADERS;
      trace.disable();
      context.disable();
      propagation.disable();
      await receiver.close();
    }
  });

  it("the span processor's export (tracing suppressed, nothing active) does not switch AsyncLocalStorage on", async () => {
    const manager = (await exportContextManager()).enable();
    try {
      const als = (manager as unknown as { _asyncLocalStorage: { enabled?: boolean } })._asyncLocalStorage;
      // What BatchSpanProcessor does around each export: runs as it is.
      expect(manager.with(suppressTracing(manager.active()), () => manager.active())).toBe(ROOT_CONTEXT);
      // Node 20–22: the flag that, once set, puts a hook on every promise of the process.
      if ('enabled' in als) expect(als.enabled).toBe(false);
      // A context with a span is made active as before, and so is anything inside it.
      const span = trace.wrapSpanContext({
        traceId: '0af7651916cd43dd8448eb211c80319c',
        spanId: 'b7ad6b7169203331',
        traceFlags: 1,
      });
      const active = trace.setSpan(ROOT_CONTEXT, span);
      const inner = manager.with(active, () => {
        const suppressed = suppressTracing(manager.active());
        return {
          outer: manager.active(),
          inner: manager.with(suppressed, () => manager.active()),
          suppressed,
        };
      });
      expect(inner.outer).toBe(active);
      expect(inner.inner).toBe(inner.suppressed);
    } finally {
      manager.disable();
    }
  });
});
