import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  InMemorySpanExporter,
  NodeTracerProvider,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/engine/group-commit.ts';
import { type Envelope, parseEnvelope } from '../../src/envelope.ts';
import { createIngress, type IngressOptions } from '../../src/ingress.ts';
import { LlmClient } from '../../src/llm/client.ts';
import { toolSpan } from '../../src/llm/llm-spans.ts';
import { createLogger } from '../../src/logger.ts';
import type { Db } from '../../src/store/db.ts';
import type { TurnWrite } from '../../src/store/turns.ts';
import { drainSpan, turnSpan } from '../../src/telemetry/envelope-spans.ts';
import {
  batchConfig,
  DEFAULT_BSP,
  registerTracer,
  samplerFromEnv,
  traceEnv,
} from '../../src/telemetry/sdk.ts';
import {
  activeSpan,
  currentTrace,
  EnvelopeTraceSchema,
  enableTracing,
  inLazySpan,
  inSpan,
  startSpan,
  startTracing,
  traceContext,
  tracingRequested,
  withSpanIn,
} from '../../src/telemetry/tracing.ts';
import { FakeOpenAi } from '../helpers/openai-server.ts';

/** A database that commits every turn of a batch, counting its statements. */
function countingDb(): Db & { statements: number } {
  const db = {
    kind: 'postgres',
    statements: 0,
    query: async (_sql: string, params: unknown[]) => {
      db.statements++;
      const rows = JSON.parse(String(params[0])) as { i: number }[];
      return { rows: rows.map((r) => ({ i: r.i })), rowCount: rows.length };
    },
  };
  return db as unknown as Db & { statements: number };
}

/** A turn's write of one message, to session `sessionId`. */
const write = (sessionId: string): TurnWrite => ({
  sessionId,
  at: new Date(),
  bot: 'default',
  channel: 'api',
  expectedVersion: 1,
  state: {
    variables: {},
    context: {},
    kbs: [],
    tools: [],
    suggestions: [],
  } as unknown as TurnWrite['state'],
  inbound: { seq: 1, role: 'user', content: 'hi', envelopeId: `api:${sessionId}`, payload: {} },
  replies: [],
  lastSeq: 1,
  messageCountDelta: 1,
  replyTo: null,
  expiresAt: null,
  memory: [],
  events: [],
});

/** An ingress whose queue is `enqueue`, and nothing else of a hub. */
function ingressOver(enqueue: (e: Envelope) => Promise<'accepted'>) {
  return createIngress({
    queue: { enqueue },
    metrics: { messagesIn: { inc: () => undefined }, duplicatesIn: { inc: () => undefined } },
    logger: createLogger('silent'),
    bots: { rules: () => ({ messagesPerMinute: 100, maxFileBytes: 1_000_000 }) },
    rateLimiter: { hit: async () => ({ allowed: true }) },
  } as unknown as IngressOptions);
}

/** A person's message on the API channel, as the ingress takes it. */
const apiInput = (id: string) => ({
  id,
  channel: 'api',
  bot: 'default',
  from: { id: 'person-ingress' },
  text: 'hello',
  receivedAt: new Date().toISOString(),
});

/**
 * The span helpers against an in-memory exporter, with the hub's tracer (what `startTracing`
 * registers) and with the SDK's (what an application embedding the hub might register); the OTLP
 * path is tested end to end in test/e2e/tracing.test.ts.
 */
describe.each([
  {
    tracer: "the hub's tracer",
    register: (exporter: InMemorySpanExporter) =>
      registerTracer({
        resource: resourceFromAttributes({ 'service.name': 'test' }),
        sampler: samplerFromEnv({}),
        processor: new SimpleSpanProcessor(exporter),
      }),
  },
  {
    tracer: "the SDK's tracer",
    // An AsyncLocalStorage context manager, the W3C propagator, the SDK's tracer.
    register: async (exporter: InMemorySpanExporter) =>
      new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register(),
  },
])('tracing spans (in-memory exporter, $tracer)', ({ register }) => {
  const exporter = new InMemorySpanExporter();
  const llm = new FakeOpenAi();
  const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);

  beforeAll(async () => {
    await register(exporter);
    await enableTracing(true);
    await llm.start();
  });
  afterAll(async () => {
    await enableTracing(false);
    await llm.stop();
    // The next suite registers its own.
    const api = await import('@opentelemetry/api');
    api.trace.disable();
    api.context.disable();
    api.propagation.disable();
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
    await drainSpan('lane', envelopes.length, async (job) => {
      expect(job).toBeDefined();
      for (const e of envelopes) await turnSpan(e, async () => 'committed', job);
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

  it("a queue job's span names its lane by a pseudonym, never the person's phone number or address in it", async () => {
    const lanes = ['default|whatsapp|+4915111111111', 'default|email|ana@example.com#<root-1@example.com>'];
    const drain = (lane: string) => drainSpan(lane, 2, async (job) => expect(job).toBeDefined());
    await drain(lanes[0]!);
    await drain(lanes[0]!);
    await drain(lanes[1]!);
    const drains = spans('switchboard.queue.drain');
    expect(drains).toHaveLength(3);
    const exported = JSON.stringify(drains.map((d) => d.attributes));
    for (const needle of ['+4915111111111', '4915111111111', 'ana@example.com', 'root-1@example.com'])
      expect(exported).not.toContain(needle);
    for (const d of drains) {
      expect(d.attributes).not.toHaveProperty('switchboard.lane');
      expect(d.attributes['switchboard.lane.hash']).toMatch(/^[A-Za-z0-9_-]{22}$/);
    }
    // The same lane has the same pseudonym (a lane's jobs can be grouped), another lane another one.
    const [a, again, other] = drains.map((d) => d.attributes['switchboard.lane.hash']);
    expect(again).toBe(a);
    expect(other).not.toBe(a);
  });

  it('the queue wait starts when the envelope was accepted: epoch milliseconds as the ingress writes it, or an ISO date queued by an older version', async () => {
    const accepted = Date.UTC(2026, 11, 6, 10, 0, 0, 250);
    const queued = { newer: accepted, older: new Date(accepted).toISOString(), none: undefined };
    const envelopes = Object.entries(queued).map(([name, acceptedAt], i) =>
      parseEnvelope({
        id: `api:wait-${name}`,
        channel: 'api',
        bot: 'default',
        from: { id: `person-wait-${name}` },
        text: 'hello',
        receivedAt: new Date().toISOString(),
        trace: {
          traceparent: `00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333${i}-01`,
          ...(acceptedAt === undefined ? {} : { acceptedAt }),
        },
      }),
    );
    for (const e of envelopes) await turnSpan(e, async () => 'committed');
    const waits = spans('switchboard.queue.wait');
    expect(waits.map((w) => w.parentSpanContext?.spanId)).toEqual(['b7ad6b7169203330', 'b7ad6b7169203331']);
    for (const w of waits) expect(w.startTime).toEqual([Math.floor(accepted / 1000), 250_000_000]);
    expect(spans('switchboard.turn')).toHaveLength(3);
    // Read without the schema in the worker: what is not a time starts no wait.
    const odd = { ...envelopes[0]!, trace: { ...envelopes[0]!.trace!, acceptedAt: 'yesterday' } };
    await turnSpan(odd, async () => 'committed');
    expect(spans('switchboard.queue.wait')).toHaveLength(2);
    // The schema (the ingress's door) takes both forms and nothing else.
    const trace = (acceptedAt: unknown) =>
      EnvelopeTraceSchema.safeParse({ traceparent: envelopes[0]!.trace!.traceparent, acceptedAt }).success;
    expect([
      trace(accepted),
      trace(queued.older),
      trace(-1),
      trace('yesterday'),
      trace('2026-12-06'),
    ]).toEqual([true, true, false, false, false]);
  });

  it("the ingress queues the accept's trace with its time as epoch milliseconds, on the envelope it parsed", async () => {
    const queued: Envelope[] = [];
    const ingress = ingressOver(async (e) => {
      queued.push(e);
      return 'accepted';
    });
    const input = apiInput('api:ingress-1');
    const before = Date.now();
    await ingress.accept(input);
    const [accept] = spans('switchboard.accept');
    const { traceId, spanId } = accept!.spanContext();
    expect(queued[0]!.trace).toEqual({
      traceparent: `00-${traceId}-${spanId}-01`,
      acceptedAt: expect.any(Number),
    });
    expect(queued[0]!.trace!.acceptedAt).toBeGreaterThanOrEqual(before);
    expect(queued[0]!.trace!.acceptedAt).toBeLessThanOrEqual(Date.now());
    expect(accept!.attributes['switchboard.accept.status']).toBe('accepted');
    expect('trace' in input).toBe(false);
  });

  it('an accept that fails ends its span failed, by the time the caller hears of it: a queue away, an invalid envelope', async () => {
    const ingress = ingressOver(async () => {
      throw new Error('queue away');
    });
    const input = apiInput('api:ingress-2');
    const failed = (error: unknown) => {
      const [accept] = spans('switchboard.accept');
      exporter.reset();
      return {
        error: (error as Error).name,
        ended: accept?.ended,
        status: accept?.status,
        events: accept?.events.map((e) => [e.name, e.attributes?.['exception.message']]),
        statusAttribute: accept?.attributes['switchboard.accept.status'],
      };
    };
    expect(await ingress.accept(input).catch(failed)).toEqual({
      error: 'Error',
      ended: true,
      status: { code: 2, message: 'queue away' },
      events: [['exception', 'queue away']],
      statusAttribute: undefined,
    });
    expect(await ingress.accept({ ...input, channel: 'no such channel!' }).catch(failed)).toMatchObject({
      error: 'InvalidEnvelopeError',
      ended: true,
      status: { code: 2 },
      statusAttribute: undefined,
    });
  });

  it("a context the helpers make reads as the API's: its span, and values set on it and deleted from it", async () => {
    const { context, createContextKey, ROOT_CONTEXT, trace } = await import('@opentelemetry/api');
    const key = createContextKey('test value');
    const other = createContextKey('test other');
    const parent = ROOT_CONTEXT.setValue(other, 'kept');
    const span = startSpan('held', {})!;
    const ctx = withSpanIn(parent, span);
    expect(trace.getSpan(ctx)).toBe(span);
    expect(ctx.getValue(other)).toBe('kept');
    const set = ctx.setValue(key, 1);
    expect([set.getValue(key), ctx.getValue(key), trace.getSpan(set)]).toEqual([1, undefined, span]);
    const deleted = set.deleteValue(key);
    expect([deleted.getValue(key), set.getValue(key), trace.getSpan(deleted)]).toEqual([undefined, 1, span]);
    expect(trace.getSpan(trace.deleteSpan(ctx))).toBeUndefined();
    expect(trace.getSpan(ctx)).toBe(span);
    // Made active, it is what the API's context manager hands back.
    context.with(ctx, () => expect(trace.getActiveSpan()).toBe(span));
    span.end();
  });

  it("a turn hands its context down rather than making it active: the commit it hands it to is the turn's child", async () => {
    const envelope = parseEnvelope({
      id: 'api:handed',
      channel: 'api',
      bot: 'default',
      from: { id: 'person-handed' },
      text: 'hello',
      receivedAt: new Date().toISOString(),
    });
    const committer = new GroupCommitter(countingDb(), createLogger('silent'));
    let active: unknown = 'not looked at';
    await turnSpan(envelope, async (trace) => {
      // Nothing is active (AsyncLocalStorage stays off in a worker): the turn's context is handed down.
      active = activeSpan();
      return committer.commit(write('session-handed'), undefined, trace);
    });
    expect(active).toBeUndefined();
    const [turn] = spans('switchboard.turn');
    const [commit] = spans('switchboard.commit');
    expect(commit!.parentSpanContext?.spanId).toBe(turn!.spanContext().spanId);
    expect(turn!.attributes['switchboard.turn.outcome']).toBe('committed');
  });

  it('a dialog is a span only when it does traced work: made at its start, parent of that work, failed with it', async () => {
    await inSpan('turn quiet', {}, () =>
      inLazySpan('switchboard.dialog', {}, async () => 'walked its script'),
    );
    expect(spans('switchboard.dialog')).toEqual([]);

    const client = new LlmClient({ baseUrl: llm.url, model: 'gpt-test', timeoutMs: 5_000, maxRetries: 0 });
    const request = { messages: [{ role: 'user' as const, content: 'hi' }], maxTokens: 10 };
    let dialogStarted = 0;
    await inSpan('turn busy', {}, async (turnSpan) =>
      inLazySpan('switchboard.dialog', { attributes: { 'switchboard.bot': 'default' } }, async () => {
        dialogStarted = Date.now();
        // A span the dialog's code reads is still the turn's: the dialog's is not made for it.
        expect(activeSpan()).toBe(turnSpan);
        await new Promise((resolve) => setImmediate(resolve));
        await client.complete(request);
        await client.complete(request);
      }),
    );
    const [turn] = spans('turn busy');
    const dialogs = spans('switchboard.dialog');
    expect(dialogs).toHaveLength(1);
    const dialog = dialogs[0]!;
    expect(dialog.parentSpanContext?.spanId).toBe(turn!.spanContext().spanId);
    expect(dialog.attributes).toMatchObject({ 'switchboard.bot': 'default' });
    // It starts when the dialog did, not when its first child did.
    expect(dialog.startTime[0] * 1000 + dialog.startTime[1] / 1e6).toBeLessThanOrEqual(dialogStarted);
    const chats = spans('chat gpt-test');
    expect(chats.map((c) => c.parentSpanContext?.spanId)).toEqual([
      dialog.spanContext().spanId,
      dialog.spanContext().spanId,
    ]);

    exporter.reset();
    await expect(
      inSpan('turn failing', {}, () =>
        inLazySpan('switchboard.dialog', {}, async () => {
          await client.complete(request);
          throw new Error('the bot broke');
        }),
      ),
    ).rejects.toThrow('the bot broke');
    expect(spans('switchboard.dialog').map((d) => [d.status.code, d.status.message])).toEqual([
      [2, 'the bot broke'],
    ]);
  });

  it('the group commit is one span per statement: a turn alone is its parent, several turns and held turns are links', async () => {
    const db = countingDb();
    const committer = new GroupCommitter(db, createLogger('silent'));
    const statements = () => db.statements;
    // Two turns hand their writes in during one tick: one statement, one span, linked to both.
    const results = await Promise.all(
      ['a', 'b'].map((id) => inSpan(`turn ${id}`, {}, () => committer.commit(write(`session-${id}`)))),
    );
    expect(results).toEqual(['committed', 'committed']);
    expect(statements()).toBe(1);
    const turns = [spans('turn a')[0]!, spans('turn b')[0]!];
    const [together, ...more] = spans('switchboard.commit');
    expect(more).toEqual([]);
    expect(together!.attributes['switchboard.commit.turns']).toBe(2);
    expect(together!.parentSpanContext).toBeUndefined();
    expect(together!.links.map((l) => l.context.spanId)).toEqual(turns.map((t) => t.spanContext().spanId));

    exporter.reset();
    await inSpan('turn c', {}, () => committer.commit(write('session-c')));
    const [alone] = spans('switchboard.commit');
    expect(alone!.parentSpanContext?.spanId).toBe(spans('turn c')[0]!.spanContext().spanId);
    expect(alone!.attributes['switchboard.commit.turns']).toBe(1);
    expect(alone!.links).toEqual([]);

    // A write of turns held before the committing one (src/engine/engine.ts): the commit is the
    // committing turn's child, linked to each held turn's span, alone or with other sessions.
    exporter.reset();
    const heldTurn = (id: string) =>
      inSpan(`turn ${id}`, {}, async (span) => ({ context: span!.spanContext() }));
    const held = [await heldTurn('d1'), await heldTurn('d2')];
    const chained = (sessionId: string): TurnWrite => {
      const w = write(sessionId);
      return {
        ...w,
        chained: [
          { at: w.at, inbound: w.inbound, replies: [] },
          { at: w.at, inbound: w.inbound, replies: [] },
        ],
      };
    };
    await inSpan('turn d3', {}, () => committer.commit(chained('session-d'), held));
    const [heldAlone] = spans('switchboard.commit');
    expect(heldAlone!.parentSpanContext?.spanId).toBe(spans('turn d3')[0]!.spanContext().spanId);
    expect(heldAlone!.attributes['switchboard.commit.turns']).toBe(3);
    expect(heldAlone!.links.map((l) => l.context.spanId)).toEqual(held.map((l) => l.context.spanId));

    exporter.reset();
    const heldE = [await heldTurn('e1')];
    await Promise.all([
      inSpan('turn e2', {}, () => committer.commit(chained('session-e'), heldE)),
      inSpan('turn f', {}, () => committer.commit(write('session-f'))),
    ]);
    const [grouped, ...others] = spans('switchboard.commit');
    expect(others).toEqual([]);
    expect(grouped!.parentSpanContext).toBeUndefined();
    expect(grouped!.attributes['switchboard.commit.turns']).toBe(4);
    expect(grouped!.links.map((l) => l.context.spanId)).toEqual([
      spans('turn e2')[0]!.spanContext().spanId,
      heldE[0]!.context.spanId,
      spans('turn f')[0]!.spanContext().spanId,
    ]);
  });

  it('the sampler and the batch sizes follow the standard variables; unset, the larger batch defaults', () => {
    expect(samplerFromEnv({}).toString()).toBe(
      'ParentBased{root=AlwaysOnSampler, remoteParentSampled=AlwaysOnSampler, remoteParentNotSampled=AlwaysOffSampler, localParentSampled=AlwaysOnSampler, localParentNotSampled=AlwaysOffSampler}',
    );
    expect(
      samplerFromEnv({
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.25',
      }).toString(),
    ).toMatch(/^ParentBased\{root=TraceIdRatioBased\{0\.25\}/);
    expect(
      samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' }).toString(),
    ).toBe('TraceIdRatioBased{0.1}');
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'always_off' }).toString()).toBe('AlwaysOffSampler');
    expect(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(/OTEL_TRACES_SAMPLER/);
    expect(() =>
      samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }),
    ).toThrow(/OTEL_TRACES_SAMPLER_ARG/);

    expect(batchConfig({})).toEqual({ ...DEFAULT_BSP });
    expect(DEFAULT_BSP.maxQueueSize).toBeGreaterThan(2048);
    expect(
      batchConfig({
        OTEL_BSP_MAX_QUEUE_SIZE: '1000',
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '200',
        OTEL_BSP_SCHEDULE_DELAY: '100',
        OTEL_BSP_EXPORT_TIMEOUT: '5000',
      }),
    ).toEqual({
      maxQueueSize: 1000,
      maxExportBatchSize: 200,
      scheduledDelayMillis: 100,
      exportTimeoutMillis: 5000,
    });
    // A queue set smaller than the default batch: batches no larger than the queue.
    expect(batchConfig({ OTEL_BSP_MAX_QUEUE_SIZE: '100' })).toEqual({
      maxQueueSize: 100,
      maxExportBatchSize: 100,
      scheduledDelayMillis: DEFAULT_BSP.scheduledDelayMillis,
    });
    expect(() => batchConfig({ OTEL_BSP_MAX_QUEUE_SIZE: 'lots' })).toThrow(
      'OTEL_BSP_MAX_QUEUE_SIZE: a positive number, not lots',
    );
    expect(() => batchConfig({ OTEL_BSP_SCHEDULE_DELAY: '-5' })).toThrow(
      'OTEL_BSP_SCHEDULE_DELAY: a positive number, not -5',
    );
    // Each refusal names its variable and what was wrong with it.
    expect(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(
      'OTEL_TRACES_SAMPLER: one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio, not sometimes',
    );
    expect(() =>
      samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'half' }),
    ).toThrow('OTEL_TRACES_SAMPLER_ARG: a ratio from 0 to 1, not half');
    expect(() => traceEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(
      'OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf and http/json are supported, not grpc',
    );
    // Blank is unset, as the specification says.
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: ' ' }).toString()).toMatch(
      /^ParentBased\{root=AlwaysOnSampler/,
    );
    expect(batchConfig({ OTEL_BSP_MAX_QUEUE_SIZE: '' })).toEqual({ ...DEFAULT_BSP });
  });

  it('the trace an envelope carries is what the W3C propagator injects: traceparent and trace state', async () => {
    const { context, defaultTextMapGetter, ROOT_CONTEXT, trace, TraceFlags } = await import(
      '@opentelemetry/api'
    );
    const { W3CTraceContextPropagator, TraceState } = await import('@opentelemetry/core');
    const w3c = new W3CTraceContextPropagator();
    const injected = (ctx: Parameters<typeof w3c.inject>[0]) => {
      const carrier: Record<string, string> = {};
      w3c.inject(ctx, carrier, { set: (c, k, v) => Object.assign(c, { [k]: v }) });
      return carrier;
    };
    await inSpan('sampled', {}, async () => {
      expect(currentTrace()).toEqual(injected(context.active()));
      expect(currentTrace()!.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    });
    const remote = trace.setSpanContext(context.active(), {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: TraceFlags.NONE,
      traceState: new TraceState('vendor=x,other=y'),
      isRemote: true,
    });
    expect(currentTrace(remote)).toEqual({
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00',
      tracestate: 'vendor=x,other=y',
    });
    expect(currentTrace(remote)).toEqual(injected(remote));
    // No span, or an invalid one: nothing carried (the propagator injects nothing either).
    expect(currentTrace(context.active())).toBeUndefined();
    const invalid = trace.setSpanContext(
      context.active(),
      trace.wrapSpanContext({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 }).spanContext(),
    );
    expect(currentTrace(invalid)).toBeUndefined();
    expect(injected(invalid)).toEqual({});

    // Read back as the propagator extracts it: the hub's own form, and others it hands to the propagator.
    const extracted = (carrier: Record<string, string>) =>
      trace.getSpanContext(w3c.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter));
    const carriers: Record<string, string>[] = [
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00' },
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03' },
      { traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01' },
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01' },
      { traceparent: 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
      { traceparent: '01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later' },
      { traceparent: '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01' },
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'vendor=x' },
    ];
    for (const carried of carriers) {
      const ours = trace.getSpanContext(traceContext(carried)!);
      const theirs = extracted(carried);
      expect({ ...ours, traceState: ours?.traceState?.serialize() }, carried.traceparent).toEqual({
        ...theirs,
        traceState: theirs?.traceState?.serialize(),
      });
    }
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
