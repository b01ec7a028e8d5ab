import { ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { describe, expect, it, vi } from 'vitest';
import { HubTracerProvider, hrTimeOf } from '../../src/telemetry/hub-tracer.ts';
import { encodeTraceRequest } from '../../src/telemetry/otlp-proto.ts';
import { samplerFromEnv } from '../../src/telemetry/sdk.ts';
import { CarriedSpanContext } from '../../src/telemetry/span-ids.ts';

/** A tracer of its own (not registered globally) with an in-memory exporter. */
function tracerWith(env: NodeJS.ProcessEnv = {}, sampler = samplerFromEnv(env)) {
  const exporter = new InMemorySpanExporter();
  const provider = new HubTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'test' }),
    sampler,
    parentBasedDefaults: true,
    processor: new SimpleSpanProcessor(exporter),
  });
  return { tracer: provider.getTracer('switchboard'), exporter };
}

/** The tracer with the hub's `startSpan`, whose last argument says the options' objects are the span's own. */
const owning = (tracer: ReturnType<typeof tracerWith>['tracer']) =>
  tracer as unknown as {
    startSpan(name: string, options: object, context: undefined, own: boolean): Span;
  };

const remoteParent = (sampled: boolean) =>
  trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: sampled ? 1 : 0,
    isRemote: true,
  });

describe("the hub's tracer", () => {
  it('a root span has fresh valid ids; a child keeps its trace and names its parent', () => {
    const { tracer, exporter } = tracerWith();
    const root = tracer.startSpan('root', { kind: SpanKind.PRODUCER, attributes: { a: 1 } }, ROOT_CONTEXT);
    const child = tracer.startSpan('child', {}, trace.setSpan(ROOT_CONTEXT, root));
    child.end();
    root.end();
    const [c, r] = exporter.getFinishedSpans() as [ReadableSpan, ReadableSpan];
    expect(r.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(r.spanContext().spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(trace.isSpanContextValid(r.spanContext())).toBe(true);
    expect(r.parentSpanContext).toBeUndefined();
    expect(r.kind).toBe(SpanKind.PRODUCER);
    expect(r.attributes).toEqual({ a: 1 });
    expect(c.spanContext().traceId).toBe(r.spanContext().traceId);
    expect(c.spanContext().spanId).not.toBe(r.spanContext().spanId);
    expect(c.parentSpanContext?.spanId).toBe(r.spanContext().spanId);
    expect(c.instrumentationScope.name).toBe('switchboard');
    expect(c.resource.attributes['service.name']).toBe('test');
    // Ids differ from span to span (a pool of random bytes, never handed out twice).
    const ids = new Set(Array.from({ length: 2_000 }, () => tracer.startSpan('x').spanContext().spanId));
    expect(ids.size).toBe(2_000);
  });

  it('follows a remote parent: sampled, a recording child; not sampled, a non-recording one that carries the context', () => {
    const { tracer, exporter } = tracerWith();
    const sampled = tracer.startSpan('in', {}, remoteParent(true));
    expect(sampled.isRecording()).toBe(true);
    expect(sampled.spanContext().traceFlags).toBe(1);
    sampled.end();
    const unsampled = tracer.startSpan('out', {}, remoteParent(false));
    expect(unsampled.isRecording()).toBe(false);
    expect(unsampled.spanContext()).toMatchObject({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      traceFlags: 0,
    });
    unsampled.end();
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['in']);
    expect(exporter.getFinishedSpans()[0]!.parentSpanContext).toMatchObject({
      spanId: 'b7ad6b7169203331',
      isRemote: true,
    });
  });

  it('a remote parent is its parent while its ids are valid; one with invalid ids is none (the span is a root)', () => {
    const { tracer, exporter } = tracerWith();
    const parent = remoteParent(true);
    for (const name of ['wait', 'turn']) tracer.startSpan(name, {}, parent).end();
    const zeros = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '0'.repeat(32),
      spanId: 'b7ad6b7169203331',
      traceFlags: 1,
      isRemote: true,
    });
    tracer.startSpan('orphan', {}, zeros).end();
    const [wait, turn, orphan] = exporter.getFinishedSpans() as [ReadableSpan, ReadableSpan, ReadableSpan];
    for (const s of [wait, turn]) {
      expect(s.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
      expect(s.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    }
    expect(orphan.parentSpanContext).toBeUndefined();
    expect(orphan.spanContext().traceId).not.toBe('0'.repeat(32));
    expect(trace.isSpanContextValid(orphan.spanContext())).toBe(true);
  });

  it('a carried context the hub read (CarriedSpanContext) is a valid parent without its ids checked again; another is checked', () => {
    const { tracer, exporter } = tracerWith();
    const valid = vi.spyOn(trace, 'isSpanContextValid');
    try {
      const carried = new CarriedSpanContext('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', 1);
      const parent = trace.setSpanContext(ROOT_CONTEXT, carried);
      for (const name of ['wait', 'turn']) tracer.startSpan(name, {}, parent).end();
      expect(valid).not.toHaveBeenCalled();
      tracer.startSpan('other', {}, remoteParent(true)).end();
      expect(valid).toHaveBeenCalledTimes(1);
      const [wait, turn] = exporter.getFinishedSpans() as [ReadableSpan, ReadableSpan];
      for (const s of [wait, turn]) {
        expect(s.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
        expect(s.parentSpanContext).toBe(carried);
      }
      // The fields of the propagator's context.
      expect({ ...carried }).toEqual({
        traceId: '0af7651916cd43dd8448eb211c80319c',
        spanId: 'b7ad6b7169203331',
        traceFlags: 1,
        isRemote: true,
      });
    } finally {
      valid.mockRestore();
    }
  });

  it('asks the standard sampler for roots: always_off records none, a ratio of 0 none, parentbased_always_off none at the root', () => {
    for (const env of [
      { OTEL_TRACES_SAMPLER: 'always_off' },
      { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' },
      { OTEL_TRACES_SAMPLER: 'parentbased_always_off' },
    ]) {
      const { tracer, exporter } = tracerWith(env);
      const span = tracer.startSpan('root', {}, ROOT_CONTEXT);
      expect(span.isRecording()).toBe(false);
      span.end();
      expect(exporter.getFinishedSpans()).toEqual([]);
    }
    // always_on ignores an unsampled parent; parent-based follows it.
    expect(
      tracerWith({ OTEL_TRACES_SAMPLER: 'always_on' })
        .tracer.startSpan('x', {}, remoteParent(false))
        .isRecording(),
    ).toBe(true);
    const { tracer } = tracerWith({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.5' });
    const recorded = Array.from({ length: 2_000 }, () =>
      tracer.startSpan('r', {}, ROOT_CONTEXT).isRecording(),
    );
    const share = recorded.filter(Boolean).length / recorded.length;
    expect(share).toBeGreaterThan(0.4);
    expect(share).toBeLessThan(0.6);
  });

  it('records a root without asking the sampler when it records every root (parentbased_always_on, always_on); asks any other', () => {
    for (const [env, asked] of [
      [{}, false],
      [{ OTEL_TRACES_SAMPLER: 'always_on' }, false],
      [{ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '1' }, true],
      [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1' }, true],
    ] as const) {
      const sampler = samplerFromEnv(env);
      const shouldSample = vi.spyOn(sampler, 'shouldSample');
      const { tracer, exporter } = tracerWith(env, sampler);
      const root = tracer.startSpan('root', {}, ROOT_CONTEXT);
      expect(root.isRecording(), JSON.stringify(env)).toBe(true);
      expect(root.spanContext().traceFlags).toBe(1);
      expect(shouldSample.mock.calls.length > 0, JSON.stringify(env)).toBe(asked);
      root.end();
      expect(exporter.getFinishedSpans()[0]!.spanContext().traceState).toBeUndefined();
    }
  });

  it('attributes, status, events, links and names as the SDK keeps them; nothing changes once ended', () => {
    const { tracer, exporter } = tracerWith();
    const shared = Object.freeze({ 'messaging.operation.type': 'receive' });
    const link = { context: { traceId: '1'.repeat(32), spanId: '2'.repeat(16), traceFlags: 1 } };
    const span = tracer.startSpan('GET', { attributes: shared, links: [link], startTime: new Date(1_000) });
    span.setAttribute('http.response.status_code', 200);
    span.setAttribute('ignored', undefined as never);
    span.setStatus({ code: SpanStatusCode.OK, message: 'not kept' });
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'too late: OK is final' });
    span.updateName('GET /x');
    span.recordException(Object.assign(new Error('it broke'), { name: 'TypeError' }));
    span.end([2, 500_000]);
    span.setAttribute('after', 1);
    span.end(3_000);
    const [s] = exporter.getFinishedSpans() as [ReadableSpan];
    expect(shared).toEqual({ 'messaging.operation.type': 'receive' });
    expect(s.attributes).toEqual({ 'messaging.operation.type': 'receive', 'http.response.status_code': 200 });
    expect(s.status).toEqual({ code: SpanStatusCode.OK });
    expect(s.name).toBe('GET /x');
    expect(s.links).toEqual([link]);
    expect(s.events[0]).toMatchObject({
      name: 'exception',
      attributes: { 'exception.type': 'TypeError', 'exception.message': 'it broke' },
    });
    expect(s.startTime).toEqual([1, 0]);
    expect(s.endTime).toEqual([2, 500_000]);
    expect(s.duration).toEqual([1, 500_000]);
    expect(s.ended).toBe(true);
  });

  it("keeps the attributes object it is handed as its own when told so (the hub's helpers), never a frozen one", () => {
    const { tracer, exporter } = tracerWith();
    const hub = owning(tracer);
    const made = { 'switchboard.channel': 'api' };
    hub.startSpan('owned', { attributes: made }, undefined, true).setAttribute('later', 1).end();
    const frozen = Object.freeze({ 'switchboard.channel': 'api' });
    hub.startSpan('frozen', { attributes: frozen }, undefined, true).setAttribute('later', 1).end();
    const [owned, copied] = exporter.getFinishedSpans() as [ReadableSpan, ReadableSpan];
    expect(owned.attributes).toBe(made);
    expect(made).toEqual({ 'switchboard.channel': 'api', later: 1 });
    expect(copied.attributes).toEqual({ 'switchboard.channel': 'api', later: 1 });
    expect(frozen).toEqual({ 'switchboard.channel': 'api' });
  });

  it('keeps a frozen links array several spans share (the turns of a drained chunk), and copies it before adding to it', () => {
    const { tracer, exporter } = tracerWith();
    const hub = owning(tracer);
    const drain = tracer.startSpan('drain');
    const shared = Object.freeze([Object.freeze({ context: drain.spanContext() })]);
    hub.startSpan('turn 1', { links: shared }, undefined, true).end();
    const other = tracer.startSpan('other');
    hub
      .startSpan('turn 2', { links: shared }, undefined, true)
      .addLink({ context: other.spanContext() })
      .end();
    const [one, two] = exporter.getFinishedSpans() as [ReadableSpan, ReadableSpan];
    expect(one.links).toBe(shared);
    expect(two.links).not.toBe(shared);
    expect(two.links.map((l) => l.context.spanId)).toEqual([
      drain.spanContext().spanId,
      other.spanContext().spanId,
    ]);
    expect(shared).toHaveLength(1);
  });

  it('a span without events, links or a status until given one shares nothing when it is given one', () => {
    const { tracer, exporter } = tracerWith();
    const link = { context: { traceId: '1'.repeat(32), spanId: '2'.repeat(16), traceFlags: 1 } };
    const [a, b, c] = ['a', 'b', 'c'].map((name) => tracer.startSpan(name, {}, ROOT_CONTEXT));
    a!.addLink(link);
    a!.addEvent('happened');
    a!.setStatus({ code: SpanStatusCode.ERROR, message: 'failed' });
    b!.addLinks([link, link]);
    for (const span of [a, b, c]) span!.end();
    const [x, y, z] = exporter.getFinishedSpans() as [ReadableSpan, ReadableSpan, ReadableSpan];
    expect([x.links, y.links, z.links]).toEqual([[link], [link, link], []]);
    expect([x.events.map((e) => e.name), y.events, z.events]).toEqual([['happened'], [], []]);
    expect([x.status, y.status, z.status]).toEqual([
      { code: SpanStatusCode.ERROR, message: 'failed' },
      { code: SpanStatusCode.UNSET },
      { code: SpanStatusCode.UNSET },
    ]);
    // Links handed to a span it owns (the hub's helpers make them for it) are kept; others copied.
    const hub = owning(tracer);
    const made = [link];
    const owned = hub.startSpan('owned', { links: made }, undefined, true) as unknown as ReadableSpan;
    const given = [link];
    const copied = tracer.startSpan('copied', { links: given }) as unknown as ReadableSpan;
    (copied as unknown as Span).addLink(link);
    expect([owned.links === made, given]).toEqual([true, [link]]);
  });

  it('times: epoch milliseconds to HrTime, and the same OTLP bytes as from HrTime', () => {
    expect(hrTimeOf(1_733_456_789_123.5)).toEqual([1_733_456_789, 123_500_000]);
    // A double keeps about a quarter of a microsecond at today's dates.
    expect(hrTimeOf(1_733_456_789_123.456)[1]).toBeCloseTo(123_456_000, -3);
    expect(hrTimeOf(999.9999999)).toEqual([1, 0]);
    const { tracer, exporter } = tracerWith();
    const span = tracer.startSpan('timed', { startTime: 1_733_456_789_123.25 });
    span.end(1_733_456_789_124.75);
    const [s] = exporter.getFinishedSpans() as [ReadableSpan];
    // The same span with its times as HrTime (what the SDK's spans give the encoder).
    const asSdk = Object.assign(Object.create(Object.getPrototypeOf(s)), s, {
      startMs: undefined,
      endMs: undefined,
    }) as ReadableSpan;
    Object.defineProperties(asSdk, {
      startTime: { value: s.startTime },
      endTime: { value: s.endTime },
    });
    expect(s.startTime).toEqual([1_733_456_789, 123_250_000]);
    expect(Buffer.from(encodeTraceRequest([s]))).toEqual(Buffer.from(encodeTraceRequest([asSdk])));
  });
});
