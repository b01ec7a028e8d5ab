import {
  InMemorySpanExporter,
  NodeTracerProvider,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseEnvelope } from '../../src/envelope.ts';
import { LlmClient } from '../../src/llm/client.ts';
import { toolSpan } from '../../src/llm/llm-spans.ts';
import { createLogger } from '../../src/logger.ts';
import { drainSpan, turnSpan } from '../../src/telemetry/envelope-spans.ts';
import {
  currentTrace,
  enableTracing,
  inSpan,
  startTracing,
  tracingRequested,
} from '../../src/telemetry/tracing.ts';
import { FakeOpenAi } from '../helpers/openai-server.ts';

/** The span helpers against an in-memory SDK (the OTLP path is tested end to end in test/e2e/tracing.test.ts). */
describe('tracing spans (in-memory SDK)', () => {
  const exporter = new InMemorySpanExporter();
  const llm = new FakeOpenAi();
  const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);

  beforeAll(async () => {
    // What the SDK module registers: an AsyncLocalStorage context manager, the W3C propagator.
    new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();
    await enableTracing(true);
    await llm.start();
  });
  afterAll(async () => {
    await enableTracing(false);
    await llm.stop();
  });
  afterEach(() => {
    exporter.reset();
    delete process.env.SWITCHBOARD_TRACE_CONTENT;
  });

  it('is asked for only by the standard OTLP variables, and stays unloaded without them', async () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' })).toBe(
      true,
    );
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x', OTEL_SDK_DISABLED: 'true' })).toBe(
      false,
    );
    expect(await startTracing({ role: 'all', env: {} })).toMatchObject({ on: false });
  });

  it('an LLM request is a GenAI client span, without the prompt unless SWITCHBOARD_TRACE_CONTENT=true', async () => {
    const client = new LlmClient({ baseUrl: llm.url, model: 'gpt-test', timeoutMs: 5_000, maxRetries: 0 });
    const request = { messages: [{ role: 'user' as const, content: 'my secret question' }], maxTokens: 50 };
    await client.complete(request);
    const [chat] = spans('chat gpt-test');
    expect(chat?.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-test',
      'gen_ai.request.max_tokens': 50,
      'gen_ai.response.finish_reasons': ['stop'],
      'gen_ai.usage.input_tokens': 1,
      'gen_ai.usage.output_tokens': 1,
      'server.address': '127.0.0.1',
    });
    expect(JSON.stringify(chat?.attributes)).not.toContain('secret');

    exporter.reset();
    process.env.SWITCHBOARD_TRACE_CONTENT = 'true';
    await client.complete(request);
    const [withContent] = spans('chat gpt-test');
    expect(String(withContent?.attributes['gen_ai.input.messages'])).toContain('my secret question');
    expect(String(withContent?.attributes['gen_ai.output.messages'])).toContain('echo: my secret question');
  });

  it('a tool call is an execute_tool span; a failed tool marks it failed', async () => {
    const call = {
      id: 'call_1',
      type: 'function' as const,
      function: { name: 'lookup', arguments: '{"q":"x"}' },
    };
    await toolSpan(call, async () => ({ ok: false, content: 'no such order' }));
    const [span] = spans('execute_tool lookup');
    expect(span?.attributes).toMatchObject({
      'gen_ai.operation.name': 'execute_tool',
      'gen_ai.tool.name': 'lookup',
      'gen_ai.tool.call.id': 'call_1',
      'switchboard.tool.ok': false,
    });
    expect(span?.attributes['gen_ai.tool.call.arguments']).toBeUndefined();
    expect(span?.status.code).toBe(2);
  });

  it('a queue job serving two envelopes links to both traces; each turn continues its own and links to the job', async () => {
    const carried = await Promise.all(
      ['a', 'b'].map((id) =>
        inSpan(`accept ${id}`, {}, async () => ({
          ...currentTrace()!,
          acceptedAt: new Date().toISOString(),
        })),
      ),
    );
    const envelopes = carried.map((t, i) =>
      parseEnvelope({
        id: `api:${i}`,
        channel: 'api',
        bot: 'default',
        from: { id: `person-${i}` },
        text: 'hello',
        receivedAt: new Date().toISOString(),
        trace: t,
      }),
    );
    await drainSpan('lane', envelopes, async () => {
      for (const e of envelopes) await turnSpan(e, async () => 'committed');
    });
    const [drain] = spans('switchboard.queue.drain');
    const accepts = [spans('accept a')[0]!, spans('accept b')[0]!];
    expect(drain?.links.map((l) => l.context.spanId)).toEqual(accepts.map((a) => a.spanContext().spanId));
    const turns = spans('switchboard.turn');
    expect(turns).toHaveLength(2);
    for (const [i, turn] of turns.entries()) {
      expect(turn.spanContext().traceId).toBe(accepts[i]!.spanContext().traceId);
      expect(turn.parentSpanContext?.spanId).toBe(accepts[i]!.spanContext().spanId);
      expect(turn.links.map((l) => l.context.spanId)).toEqual([drain!.spanContext().spanId]);
      expect(turn.attributes['switchboard.turn.outcome']).toBe('committed');
    }
    expect(spans('switchboard.queue.wait')).toHaveLength(2);
  });

  it('a log line written inside a span carries its trace_id and span_id', async () => {
    const lines: string[] = [];
    const logger = createLogger('info', {}, { write: (line: string) => void lines.push(line) });
    await inSpan('work', {}, async (span) => {
      logger.info({ event: 'inside' });
      const { traceId, spanId } = span!.spanContext();
      expect(JSON.parse(lines[0]!)).toMatchObject({ event: 'inside', trace_id: traceId, span_id: spanId });
    });
    logger.info({ event: 'outside' });
    expect(JSON.parse(lines[1]!).trace_id).toBeUndefined();
  });
});
