import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { describe, expect, it } from 'vitest';
import { HubTracerProvider } from '../../src/telemetry/hub-tracer.ts';
import { encodeTraceRequest } from '../../src/telemetry/otlp-proto.ts';
import { samplerFromEnv } from '../../src/telemetry/sdk.ts';
import { CarriedSpanContext, HubSpanContext, IdContext } from '../../src/telemetry/span-ids.ts';

/** An id's bytes as Node reads its hex. */
const bytesOf = (hex: string) => Buffer.from(hex, 'hex');

function put(c: IdContext) {
  const trace = Buffer.alloc(16);
  const span = Buffer.alloc(8);
  c.putTraceId(trace, 0);
  c.putSpanId(span, 0);
  return { trace, span };
}

/** The hub's tracer (default sampler), its finished spans kept in memory. */
function hubTracer() {
  const exporter = new InMemorySpanExporter();
  const provider = new HubTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'test' }),
    sampler: samplerFromEnv({}),
    parentBasedDefaults: true,
    processor: new SimpleSpanProcessor(exporter),
  });
  return { exporter, tracer: provider.getTracer('switchboard') };
}

const reference = (spans: ReadableSpan[]) =>
  Buffer.from(ProtobufTraceSerializer.serializeRequest(spans) ?? []);

describe('span contexts that keep their ids as bytes (for the OTLP encoder)', () => {
  it("put the bytes of their hex (either case, every byte value), and take a same trace's bytes from it", () => {
    for (let n = 0; n < 200; n++) {
      const traceId = Buffer.from(Array.from({ length: 16 }, (_, i) => (n * 37 + i * 11) & 0xff)).toString(
        'hex',
      );
      const spanId = Buffer.from(
        Array.from({ length: 8 }, (_, i) => (n * 53 + i * 29 + 128) & 0xff),
      ).toString('hex');
      const carried = new CarriedSpanContext(traceId, spanId, 1);
      expect(carried.hasWords).toBe(true);
      expect(put(carried)).toEqual({ trace: bytesOf(traceId), span: bytesOf(spanId) });
      const upper = new HubSpanContext(traceId.toUpperCase(), spanId.toUpperCase(), 1, undefined);
      expect(put(upper)).toEqual({ trace: bytesOf(traceId), span: bytesOf(spanId) });
      const child = new HubSpanContext(traceId, 'ffffffffffffffff', 1, undefined, carried);
      expect(put(child)).toEqual({ trace: bytesOf(traceId), span: bytesOf('ffffffffffffffff') });
    }
    // Ids of other lengths are not kept (the encoder reads their hex).
    expect(new CarriedSpanContext('abc', 'def', 1).hasWords).toBe(false);
  });

  it('show only the fields of the API (a spread, keys, JSON and deep equality see no bytes)', () => {
    const carried = new CarriedSpanContext('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', 1);
    const plain = {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: 1,
      isRemote: true,
    };
    expect(carried).toEqual(plain);
    expect({ ...carried }).toEqual(plain);
    expect(Object.keys(carried).sort()).toEqual(Object.keys(plain).sort());
    expect(JSON.parse(JSON.stringify(carried))).toEqual(plain);
    expect(trace.isSpanContextValid(carried)).toBe(true);
  });

  it("spans under them and linked to them are encoded as the OTLP exporter's serializer encodes their hex", () => {
    const { exporter, tracer } = hubTracer();
    const carried = new CarriedSpanContext('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', 1);
    const parent = trace.setSpanContext(ROOT_CONTEXT, carried);
    const drain = tracer.startSpan('drain', { kind: 4, links: [{ context: carried }] });
    const turn = tracer.startSpan('turn', { kind: 4, links: [{ context: drain.spanContext() }] }, parent);
    const child = tracer.startSpan('child', {}, trace.setSpan(ROOT_CONTEXT, turn));
    child.end();
    tracer.startSpan('commit', { links: [{ context: turn.spanContext() }] }).end();
    turn.end();
    drain.end();
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.spanContext() instanceof IdContext)).toEqual([true, true, true, true]);
    expect(turn.spanContext().traceId).toBe(carried.traceId);
    expect(Buffer.from(encodeTraceRequest(spans)).equals(reference(spans))).toBe(true);
    // And the same bytes as of plain contexts (the API's objects: encoded from their hex).
    const plain = spans.map((s) =>
      Object.create(s, {
        spanContext: { value: () => ({ ...s.spanContext() }) },
        parentSpanContext: { value: s.parentSpanContext && { ...s.parentSpanContext } },
        links: { value: s.links.map((l) => ({ ...l, context: { ...l.context } })) },
      }),
    ) as ReadableSpan[];
    expect(plain[1]!.spanContext() instanceof IdContext).toBe(false);
    expect(Buffer.from(encodeTraceRequest(plain)).equals(Buffer.from(encodeTraceRequest(spans)))).toBe(true);
  });

  it('a sampled span linked to unsampled contexts is encoded as the serializer encodes them', () => {
    const { exporter, tracer } = hubTracer();
    const unsampled = new CarriedSpanContext('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', 0);
    // Under it, the default (parent-based) sampler records nothing: a span of its own is unsampled too.
    const under = tracer.startSpan('under', {}, trace.setSpanContext(ROOT_CONTEXT, unsampled));
    expect(under.isRecording()).toBe(false);
    under.end();
    // A root that links to both (a batch's commit where a ratio sampler kept some turns only).
    tracer.startSpan('commit', { links: [{ context: unsampled }, { context: under.spanContext() }] }).end();
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['commit']);
    expect(spans[0]!.links.map((l) => l.context.traceFlags)).toEqual([0, 0]);
    expect(Buffer.from(encodeTraceRequest(spans)).equals(reference(spans))).toBe(true);
  });

  it('keep the bytes of the ids the tracer makes, through refills of its random pool (roots and children)', () => {
    const { exporter, tracer } = hubTracer();
    // 8 KiB of random bytes a refill: a root takes 24, a child 8; 1,000 of each cross it often.
    for (let i = 0; i < 1_000; i++) {
      const root = tracer.startSpan(`root ${i}`);
      tracer.startSpan(`child ${i}`, {}, trace.setSpan(ROOT_CONTEXT, root)).end();
      root.end();
    }
    const spans = exporter.getFinishedSpans();
    for (const s of spans) {
      expect(put(s.spanContext() as IdContext)).toEqual({
        trace: bytesOf(s.spanContext().traceId),
        span: bytesOf(s.spanContext().spanId),
      });
    }
    expect(new Set(spans.map((s) => s.spanContext().spanId)).size).toBe(2_000);
    expect(Buffer.from(encodeTraceRequest(spans)).equals(reference(spans))).toBe(true);
  });
});
