import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  LlmAnswerTooLongError,
  LlmClient,
  type LlmClientOptions,
  LlmConnectionError,
  LlmDeadlineError,
  LlmHttpError,
  LlmResponseError,
  LlmTimeoutError,
  MAX_ANSWER_CHARS_PER_TOKEN,
  retryAfterMs,
} from '../../src/llm/client.ts';
import { LlmSettingsSchema } from '../../src/llm/settings.ts';
import { chunkEvent, endless, FakeOpenAi, lastUserText } from '../helpers/openai-server.ts';

/** A test that, without its bound, would wait forever: it must be over well before this. */
const BOUNDED_TEST_MS = 15_000;

describe('LLM client against an OpenAI-compatible server', () => {
  const fake = new FakeOpenAi();
  const client = (o: Partial<LlmClientOptions> = {}) =>
    new LlmClient({
      baseUrl: fake.url,
      model: 'test-model',
      timeoutMs: 5_000,
      maxRetries: 3,
      retryBaseMs: 10,
      ...o,
    });
  const ask = [{ role: 'user' as const, content: 'Hello there' }];

  beforeAll(() => fake.start());
  afterAll(() => fake.stop());
  beforeEach(() => {
    fake.requests.length = 0;
    fake.handle((r) => ({ text: `echo: ${lastUserText(r)}` }));
  });

  it('sends the model, messages, limits and key, and reads a completion', async () => {
    const result = await client({ apiKey: 'sk-test' }).complete({
      messages: ask,
      maxTokens: 64,
      temperature: 0.2,
    });
    expect(result).toMatchObject({
      content: 'echo: Hello there',
      toolCalls: [],
      finishReason: 'stop',
      attempts: 1,
    });
    const [r] = fake.requests;
    expect(r!.body).toEqual({ model: 'test-model', messages: ask, max_tokens: 64, temperature: 0.2 });
    expect(r!.headers.authorization).toBe('Bearer sk-test');
  });

  it('streams: pieces in order, whose concatenation is the answer', async () => {
    fake.handle(() => ({ text: 'One two three, four five.' }));
    const pieces: string[] = [];
    const result = await client().complete({ messages: ask }, { onDelta: (t) => pieces.push(t) });
    expect(fake.requests[0]!.body.stream).toBe(true);
    expect(pieces.length).toBeGreaterThan(3);
    expect(pieces.join('')).toBe('One two three, four five.');
    expect(result.content).toBe('One two three, four five.');
  });

  it('gathers tool calls, streamed in parts or whole', async () => {
    fake.handle(() => ({
      toolCalls: [{ name: 'order_status', arguments: { order: 'A-17', verbose: true }, id: 'call_1' }],
    }));
    const tools = [
      {
        type: 'function' as const,
        function: { name: 'order_status', description: 'd', parameters: { type: 'object', properties: {} } },
      },
    ];
    for (const onDelta of [undefined, () => undefined]) {
      const result = await client().complete({ messages: ask, tools }, { onDelta });
      expect(result.finishReason).toBe('tool_calls');
      expect(result.toolCalls).toEqual([
        {
          id: 'call_1',
          type: 'function',
          function: { name: 'order_status', arguments: '{"order":"A-17","verbose":true}' },
        },
      ]);
    }
    expect(fake.requests[0]!.body.tools).toEqual(tools);
    expect(fake.requests[0]!.body.tool_choice).toBe('auto');
  });

  it('retries 429 after what Retry-After asks, then succeeds', async () => {
    fake.handle((_r, i) =>
      i === 0
        ? {
            status: 429,
            headers: { 'retry-after': '0' },
            body: { error: { message: 'slow down', code: 'rate_limit_exceeded' } },
          }
        : { text: 'fine' },
    );
    const result = await client().complete({ messages: ask });
    expect(result).toMatchObject({ content: 'fine', attempts: 2 });
    expect(fake.requests).toHaveLength(2);
  });

  it('retries 5xx with backoff, streaming too, and gives up after maxRetries', async () => {
    fake.handle((_r, i) => (i < 2 ? { status: 503 } : { text: 'back' }));
    const pieces: string[] = [];
    expect(await client().complete({ messages: ask }, { onDelta: (t) => pieces.push(t) })).toMatchObject({
      content: 'back',
      attempts: 3,
    });
    expect(pieces.join('')).toBe('back');

    fake.requests.length = 0;
    fake.handle(() => ({ status: 500, body: { error: { message: 'boom', type: 'server_error' } } }));
    const err = await client({ maxRetries: 2 })
      .complete({ messages: ask })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LlmHttpError);
    expect(err).toMatchObject({ status: 500, code: 'server_error', retryable: true });
    expect((err as Error).message).toContain('boom');
    expect(fake.requests).toHaveLength(3);
  });

  it('does not retry what cannot get better (401, 400)', async () => {
    fake.handle(() => ({
      status: 401,
      body: { error: { message: 'Incorrect API key provided', code: 'invalid_api_key' } },
    }));
    const err = await client()
      .complete({ messages: ask })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      name: 'LlmHttpError',
      status: 401,
      code: 'invalid_api_key',
      retryable: false,
    });
    expect(fake.requests).toHaveLength(1);
  });

  it('times out a server that does not answer, and retries it', async () => {
    // The server answers only once the test is done with it: never within the client's timeout.
    let answer = () => {};
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    fake.handle(async () => {
      await answered;
      return { text: 'too late' };
    });
    try {
      const err = await client({ timeoutMs: 100, maxRetries: 1 })
        .complete({ messages: ask })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LlmTimeoutError);
      expect(fake.requests).toHaveLength(2);
    } finally {
      answer();
    }
  });

  it('says so when nothing listens, and when the answer is not a completion', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const refused = await client({ baseUrl: `http://127.0.0.1:${port}/v1`, maxRetries: 1 })
      .complete({ messages: ask })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LlmConnectionError);

    fake.handle(() => ({ status: 200, body: { hello: 'world' } }));
    const odd = await client()
      .complete({ messages: ask })
      .catch((e: unknown) => e);
    expect(odd).toBeInstanceOf(LlmResponseError);
    expect(fake.requests).toHaveLength(1);
  });

  it('times out a stream that sends only keep-alive comments: they are not progress', {
    timeout: BOUNDED_TEST_MS,
  }, async () => {
    fake.handle(() => endless(200, 'text/event-stream', () => ': keep-alive\n\n', 20));
    const pieces: string[] = [];
    const err = await client({ timeoutMs: 300, maxDurationMs: 10_000, maxRetries: 0 })
      .complete({ messages: ask }, { onDelta: (t) => pieces.push(t) })
      .catch((e: unknown) => e);
    // The idle timeout, well before the deadline: the comments never re-armed it.
    expect(err).toBeInstanceOf(LlmTimeoutError);
    expect(pieces).toEqual([]);
  });

  it('ends a stream of events without text at maxDurationMs, retries included, and does not retry it', {
    timeout: BOUNDED_TEST_MS,
  }, async () => {
    fake.handle(() => endless(200, 'text/event-stream', () => chunkEvent({}), 20));
    const err = await client({ timeoutMs: 1_000, maxDurationMs: 1_500, maxRetries: 3 })
      .complete({ messages: ask }, { onDelta: () => undefined })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LlmDeadlineError);
    expect((err as Error).message).toContain('1500 ms');
    expect(fake.requests).toHaveLength(1);

    // Retries stop at the deadline too: a server that asks to wait 400 ms after each 503.
    fake.requests.length = 0;
    fake.handle(() => ({ status: 503, headers: { 'retry-after-ms': '400' } }));
    const down = await client({ timeoutMs: 1_000, maxDurationMs: 1_500, maxRetries: 10 })
      .complete({ messages: ask })
      .catch((e: unknown) => e);
    expect(down).toMatchObject({ name: 'LlmHttpError', status: 503 });
    expect(fake.requests.length).toBeLessThanOrEqual(4);
  });

  it('stops reading a stream that goes on past what max_tokens allows', {
    timeout: BOUNDED_TEST_MS,
  }, async () => {
    fake.handle(() => endless(200, 'text/event-stream', () => chunkEvent({ content: 'x'.repeat(50) })));
    let handedOut = 0;
    const err = await client({ maxRetries: 3 })
      .complete({ messages: ask, maxTokens: 10 }, { onDelta: (t) => (handedOut += t.length) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LlmAnswerTooLongError);
    expect((err as Error).message).toContain('max_tokens 10');
    expect(handedOut).toBeGreaterThan(0);
    expect(handedOut).toBeLessThanOrEqual(10 * MAX_ANSWER_CHARS_PER_TOKEN);
    expect(fake.requests).toHaveLength(1);

    // Tool call arguments count as well.
    fake.handle(() =>
      endless(200, 'text/event-stream', () =>
        chunkEvent({ tool_calls: [{ index: 0, id: 'c', function: { arguments: 'a'.repeat(50) } }] }),
      ),
    );
    const args = await client()
      .complete({ messages: ask, maxTokens: 10 }, { onDelta: () => undefined })
      .catch((e: unknown) => e);
    expect(args).toBeInstanceOf(LlmAnswerTooLongError);
  });

  it('reads a completion or an error body only up to a bound', { timeout: BOUNDED_TEST_MS }, async () => {
    // A completion far longer than max_tokens allows.
    fake.handle(() => ({
      status: 200,
      body: { choices: [{ message: { content: 'y'.repeat(100_000) }, finish_reason: 'stop' }] },
    }));
    const long = await client()
      .complete({ messages: ask, maxTokens: 10 })
      .catch((e: unknown) => e);
    expect(long).toBeInstanceOf(LlmAnswerTooLongError);

    // A completion body without end: cut at its byte bound, not read until the timeout.
    fake.handle(() => endless(200, 'application/json', () => ' '.repeat(16 * 1024)));
    const endlessJson = await client({ timeoutMs: 10_000, maxRetries: 0 })
      .complete({ messages: ask, maxTokens: 10 })
      .catch((e: unknown) => e);
    expect(endlessJson).toBeInstanceOf(LlmAnswerTooLongError);

    // An error status whose body never ends: its start is the message.
    fake.handle(() => endless(500, 'text/plain', () => 'overloaded '.repeat(1000)));
    const err = await client({ timeoutMs: 10_000, maxRetries: 0 })
      .complete({ messages: ask })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LlmHttpError);
    expect(err).toMatchObject({ status: 500 });
    expect((err as Error).message).toMatch(/^LLM API answered 500: overloaded overloaded/);
  });

  it('takes maxDurationMs from bot.json, at least timeoutMs', () => {
    const base = { baseUrl: 'http://127.0.0.1:1/v1', model: 'm', timeoutMs: 1_000 };
    expect(LlmSettingsSchema.parse({ ...base, maxDurationMs: 5_000 })).toMatchObject({
      maxDurationMs: 5_000,
    });
    expect(LlmSettingsSchema.parse(base)).not.toHaveProperty('maxDurationMs');
    const short = LlmSettingsSchema.safeParse({ ...base, maxDurationMs: 500 });
    expect(short.success).toBe(false);
    expect(short.error?.issues[0]?.message).toBe('maxDurationMs must be at least timeoutMs');
  });

  it('reads Retry-After in seconds, as a date, and retry-after-ms', () => {
    const now = Date.parse('2024-05-01T12:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after': '3' }), now)).toBe(3000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Wed, 01 May 2024 12:00:05 GMT' }), now)).toBe(5000);
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '250', 'retry-after': '1' }), now)).toBe(250);
    expect(retryAfterMs(new Headers({}), now)).toBeUndefined();
  });
});
