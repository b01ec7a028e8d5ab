import { context, propagation, trace } from '@opentelemetry/api';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inSpan, startTracing } from '../../src/telemetry/tracing.ts';
import { type OtlpReceiver, startOtlpReceiver } from '../helpers/otlp-receiver.ts';
import { until } from '../helpers/until.ts';

/**
 * Tracing's warm-up (src/telemetry/warm-up.ts): `startTracing` runs the role's per-message
 * tracing path on synthetic messages before it resolves, into a tracer whose spans are encoded and
 * thrown away; the collector (a local OTLP receiver) gets none of them, and the hub's own spans
 * afterwards as ever.
 */
describe('tracing warm-up', () => {
  let otlp: OtlpReceiver;
  let stop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
  });
  afterEach(async () => {
    await stop?.();
    stop = undefined;
    // Each test registers the API's globals anew.
    trace.disable();
    context.disable();
    propagation.disable();
    otlp.spans.length = 0;
    otlp.requests.length = 0;
  });
  afterAll(() => otlp?.close());

  const env = (more: Record<string, string> = {}) => ({
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
    OTEL_BSP_SCHEDULE_DELAY: '50',
    ...more,
  });

  it("a worker warms its turns' path before it starts: every span encoded and thrown away, none sent; its own spans are", async () => {
    const problems: string[] = [];
    const tracing = await startTracing({
      role: 'worker',
      env: env({ SWITCHBOARD_TRACE_WARMUP: '200' }),
      onProblem: (_level, message) => problems.push(message),
    });
    stop = tracing.shutdown;
    // Chunks of 1, 2, 3 and 4 envelopes, twenty times: per ten messages, 10 accepts, 10 queue
    // waits, 10 turns, 3 queue jobs (of 2 envelopes or more) and 4 commits.
    expect(tracing.warmUp).toMatchObject({ messages: 200, spans: 740 });
    expect(tracing.warmUp!.ms).toBeGreaterThanOrEqual(0);
    expect(problems).toEqual([]);
    expect(otlp.requests).toEqual([]);

    await inSpan('switchboard.after-warm-up', {}, async () => undefined);
    await until(
      () => otlp.spans.length,
      (n) => n > 0,
    );
    await tracing.shutdown();
    expect(otlp.spans.map((s) => s.name)).toEqual(['switchboard.after-warm-up']);
    expect(otlp.spans[0]!.resource['switchboard.role']).toBe('worker');
  });

  it('a gateway warms its accepts only', async () => {
    const tracing = await startTracing({ role: 'gateway', env: env({ SWITCHBOARD_TRACE_WARMUP: '50' }) });
    stop = tracing.shutdown;
    expect(tracing.warmUp).toMatchObject({ messages: 50, spans: 50 });
    await tracing.shutdown();
    expect(otlp.requests).toEqual([]);
  });

  it('warms 4,000 messages unless SWITCHBOARD_TRACE_WARMUP says otherwise: 0 switches it off', async () => {
    const byDefault = await startTracing({ role: 'gateway', env: env() });
    stop = byDefault.shutdown;
    expect(byDefault.warmUp).toMatchObject({ messages: 4_000, spans: 4_000 });
    await byDefault.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();

    const off = await startTracing({ role: 'worker', env: env({ SWITCHBOARD_TRACE_WARMUP: '0' }) });
    stop = off.shutdown;
    expect(off.on).toBe(true);
    expect(off.warmUp).toBeUndefined();
  });

  it('is refused at the start with anything but a whole number of messages', async () => {
    for (const value of ['many', '-1', '2.5', '100001'])
      await expect(
        startTracing({ role: 'worker', env: env({ SWITCHBOARD_TRACE_WARMUP: value }) }),
      ).rejects.toThrow(
        `SWITCHBOARD_TRACE_WARMUP: a whole number of messages from 0 (no warm-up) to 100000, not ${value}`,
      );
  });

  it('http/json (the SDK batch processor) is not warmed', async () => {
    const tracing = await startTracing({
      role: 'worker',
      env: env({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }),
    });
    stop = tracing.shutdown;
    expect(tracing.on).toBe(true);
    expect(tracing.warmUp).toBeUndefined();
  });
});
