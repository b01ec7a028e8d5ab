import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { z } from 'zod';
import type { Logger } from '../logger.ts';
import { tracingEnabled } from '../telemetry/tracing.ts';
import { truncateUtf16 } from '../text.ts';
import { chatSpan } from './llm-spans.ts';

/** First retry waits up to this long (full jitter), doubling each attempt up to RETRY_CAP_MS. */
export const RETRY_BASE_MS = 500;
export const RETRY_CAP_MS = 20_000;
/** A Retry-After longer than this is not waited for: the request fails. */
export const MAX_RETRY_AFTER_MS = 60_000;
/** Most characters of an error body kept in an error message. */
const ERROR_BODY_CHARS = 500;
/** Most bytes of an error body read: the message needs its start, never a body without end. */
const ERROR_BODY_MAX_BYTES = 64 * 1024;
/**
 * Without `maxDurationMs`, one request may take this many `timeoutMs` in all (retries and the
 * waits between them included): 5 minutes with the default 60 s.
 */
export const DURATION_IN_TIMEOUTS = 5;
/**
 * Most characters of an answer (its text plus its tool calls' names and arguments) per token of
 * `max_tokens`. Real text takes about 4; a server that goes on past this ignores `max_tokens`,
 * and is not read any further.
 */
export const MAX_ANSWER_CHARS_PER_TOKEN = 16;
/** The answer's character limit when a request sets no `max_tokens`. */
export const MAX_ANSWER_CHARS_WITHOUT_MAX_TOKENS = 256 * 1024;
/** A non-streamed completion's JSON may take this much besides its text (ids, usage, logprobs, …). */
const COMPLETION_OVERHEAD_BYTES = 64 * 1024;
/** Most bytes one character of an answer can take in a completion's JSON (`\uXXXX`). */
const MAX_JSON_BYTES_PER_CHAR = 6;

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** A message of the OpenAI chat completions protocol. */
export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] }
  | { role: 'tool'; content: string; tool_call_id: string };

export interface ToolSpec {
  type: 'function';
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

export interface ChatRequest {
  messages: ChatMessage[];
  tools?: ToolSpec[];
  /** `none`: the model must answer in words (the last tool round). */
  toolChoice?: 'auto' | 'none';
  maxTokens?: number;
  temperature?: number;
  /** Pictures (data URLs) that go with the latest user message, for a model that sees images. */
  images?: string[];
}

/** The messages as sent: the latest user message carries the images as content parts. */
function withImages(messages: ChatMessage[], images: string[] | undefined): unknown[] {
  if (!images?.length) return messages;
  let last = -1;
  messages.forEach((m, i) => {
    if (m.role === 'user') last = i;
  });
  return messages.map((m, i) =>
    i === last
      ? {
          role: 'user',
          content: [
            { type: 'text', text: m.content ?? '' },
            ...images.map((url) => ({ type: 'image_url', image_url: { url } })),
          ],
        }
      : m,
  );
}

export interface ChatResult {
  content: string;
  toolCalls: ToolCall[];
  finishReason: string | null;
  /** Requests it took (1 + retries). */
  attempts: number;
  /** What the server says about the answer, where it says it (not in a stream). */
  response?: { id?: string; model?: string; inputTokens?: number; outputTokens?: number };
}

export interface LlmClientOptions {
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** Longest wait for the response to start, and between two streamed events. */
  timeoutMs: number;
  /**
   * Longest one request may take in all, from sending it to its last streamed part, retries and
   * the waits between them included (default DURATION_IN_TIMEOUTS × timeoutMs).
   */
  maxDurationMs?: number;
  maxRetries: number;
  retryBaseMs?: number;
  retryCapMs?: number;
  logger?: Logger;
}

/** Every failure of the client is one of these; `retryable` says whether trying again may help. */
export class LlmError extends Error {
  override name = 'LlmError';
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The API answered with an error status. */
export class LlmHttpError extends LlmError {
  override name = 'LlmHttpError';
  constructor(
    readonly status: number,
    message: string,
    /** The API's own error code or type (`rate_limit_exceeded`, `invalid_api_key`, …). */
    readonly code: string | undefined,
    /** What Retry-After (or retry-after-ms) asked for. */
    readonly retryAfterMs: number | undefined,
  ) {
    super(`LLM API answered ${status}: ${message}`, status === 429 || status >= 500);
  }
}

/** No response (or no next streamed event) within the timeout. */
export class LlmTimeoutError extends LlmError {
  override name = 'LlmTimeoutError';
  constructor(timeoutMs: number) {
    super(`the LLM API did not answer within ${timeoutMs} ms`, true);
  }
}

/** The whole request (its retries included) took longer than `maxDurationMs`. */
export class LlmDeadlineError extends LlmError {
  override name = 'LlmDeadlineError';
  constructor(maxDurationMs: number) {
    super(`the LLM API's answer did not finish within ${maxDurationMs} ms (maxDurationMs)`, false);
  }
}

/** The answer went on past what `max_tokens` allows: the server ignores it, and is no longer read. */
export class LlmAnswerTooLongError extends LlmError {
  override name = 'LlmAnswerTooLongError';
  constructor(limit: string, maxTokens: number | undefined) {
    super(
      `the LLM API's answer went past ${limit}${maxTokens === undefined ? '' : ` (max_tokens ${maxTokens})`}: it was not read further`,
      false,
    );
  }
}

/** The API could not be reached (refused, reset, DNS). */
export class LlmConnectionError extends LlmError {
  override name = 'LlmConnectionError';
  constructor(cause: unknown) {
    super(`the LLM API could not be reached: ${(cause as Error)?.message ?? String(cause)}`, true, { cause });
  }
}

/** The API answered 200 with something that is not a chat completion. */
export class LlmResponseError extends LlmError {
  override name = 'LlmResponseError';
  constructor(message: string) {
    super(`the LLM API's answer was not understood: ${message}`, false);
  }
}

const ToolCallSchema = z.object({
  id: z.string(),
  type: z.literal('function').default('function'),
  function: z.object({ name: z.string(), arguments: z.string().default('') }),
});

const CompletionSchema = z.object({
  id: z.string().optional(),
  model: z.string().optional(),
  usage: z
    .object({ prompt_tokens: z.number().optional(), completion_tokens: z.number().optional() })
    .nullable()
    .optional(),
  choices: z
    .array(
      z.object({
        message: z.object({
          content: z.string().nullable().optional(),
          tool_calls: z.array(ToolCallSchema).nullable().optional(),
        }),
        finish_reason: z.string().nullable().optional(),
      }),
    )
    .min(1),
});

const ChunkSchema = z.object({
  choices: z
    .array(
      z.object({
        delta: z
          .object({
            content: z.string().nullable().optional(),
            tool_calls: z
              .array(
                z.object({
                  index: z.number().int().min(0).optional(),
                  id: z.string().optional(),
                  function: z
                    .object({ name: z.string().optional(), arguments: z.string().optional() })
                    .optional(),
                }),
              )
              .nullable()
              .optional(),
          })
          .default({}),
        finish_reason: z.string().nullable().optional(),
      }),
    )
    .default([]),
  error: z.object({ message: z.string() }).optional(),
});

const ErrorBodySchema = z.object({
  error: z.union([
    z.object({ message: z.string().optional(), code: z.unknown().optional(), type: z.string().optional() }),
    z.string(),
  ]),
});

/** Milliseconds from `retry-after-ms` (OpenAI), or `Retry-After` in seconds or as an HTTP date. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') !== null && Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers.get('retry-after');
  if (value === null) return undefined;
  const seconds = Number(value);
  if (value.trim() !== '' && Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function httpError(status: number, headers: Headers, body: string): LlmHttpError {
  let message = truncateUtf16(body, ERROR_BODY_CHARS) || `HTTP ${status}`;
  let code: string | undefined;
  try {
    const parsed = ErrorBodySchema.safeParse(JSON.parse(body));
    if (parsed.success) {
      const e = parsed.data.error;
      if (typeof e === 'string') message = e;
      else {
        message = e.message ?? message;
        code = e.code !== undefined && e.code !== null ? String(e.code) : e.type;
      }
    }
  } catch {
    // Not JSON: the text itself is the message.
  }
  return new LlmHttpError(status, message, code, retryAfterMs(headers));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Most characters an answer may have: text, tool names and arguments together. */
export function maxAnswerChars(maxTokens: number | undefined): number {
  return maxTokens === undefined
    ? MAX_ANSWER_CHARS_WITHOUT_MAX_TOKENS
    : maxTokens * MAX_ANSWER_CHARS_PER_TOKEN;
}

/** What a request may take: when it must be over, and how long its answer may be. */
interface AttemptLimits {
  /** Date.now() by which the request must be over. */
  deadline: number;
  maxDurationMs: number;
  maxTokens: number | undefined;
  maxChars: number;
}

/**
 * At most `maxBytes` of a body; `over` says there was more, which is never downloaded. A body
 * without end (a server that keeps writing) is cut there instead of read into memory.
 */
async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): Promise<{ bytes: Buffer; over: boolean }> {
  if (!body) return { bytes: Buffer.alloc(0), over: false };
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { bytes: Buffer.concat(parts, size), over: false };
      if (size + value.byteLength > maxBytes) {
        parts.push(value.subarray(0, maxBytes - size));
        return { bytes: Buffer.concat(parts, maxBytes), over: true };
      }
      parts.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** The characters an answer takes: its text and its tool calls' names and arguments. */
function answerChars(content: string, calls: readonly { function: { name: string; arguments: string } }[]) {
  return calls.reduce((sum, c) => sum + c.function.name.length + c.function.arguments.length, content.length);
}

/**
 * A client for OpenAI-compatible chat completion APIs (`POST <baseUrl>/chat/completions`), over
 * fetch. Streams with server-sent events when asked to, retries 429, 5xx, timeouts and refused
 * connections with exponential backoff (honouring Retry-After), and fails with a typed LlmError.
 * A stream that already handed out text is never retried: what was shown cannot be taken back.
 */
export class LlmClient {
  private readonly url: string;

  constructor(private readonly o: LlmClientOptions) {
    this.url = `${o.baseUrl.replace(/\/+$/, '')}/chat/completions`;
  }

  get model(): string {
    return this.o.model;
  }

  /**
   * One completion. With `onDelta`, the answer is streamed and each new piece of text handed to it.
   * With tracing on, a GenAI client span (`chat <model>`) covers it, retries included.
   */
  complete(request: ChatRequest, options: { onDelta?: (text: string) => void } = {}): Promise<ChatResult> {
    if (!tracingEnabled()) return this.completeUntraced(request, options);
    return chatSpan(this.url, this.o.model, request, Boolean(options.onDelta), () =>
      this.completeUntraced(request, options),
    );
  }

  private async completeUntraced(
    request: ChatRequest,
    options: { onDelta?: (text: string) => void },
  ): Promise<ChatResult> {
    const body = JSON.stringify({
      model: this.o.model,
      messages: withImages(request.messages, request.images),
      ...(request.tools?.length ? { tools: request.tools, tool_choice: request.toolChoice ?? 'auto' } : {}),
      ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {}),
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
      ...(options.onDelta ? { stream: true } : {}),
    });
    const maxDurationMs = this.o.maxDurationMs ?? DURATION_IN_TIMEOUTS * this.o.timeoutMs;
    const limits: AttemptLimits = {
      deadline: Date.now() + maxDurationMs,
      maxDurationMs,
      maxTokens: request.maxTokens,
      maxChars: maxAnswerChars(request.maxTokens),
    };
    for (let attempt = 1; ; attempt++) {
      const progress = { streamed: false };
      try {
        return { ...(await this.attempt(body, options.onDelta, progress, limits)), attempts: attempt };
      } catch (err) {
        const error = err instanceof LlmError ? err : new LlmResponseError((err as Error).message);
        if (!error.retryable || progress.streamed || attempt > this.o.maxRetries) throw error;
        const backoff = Math.min(
          this.o.retryCapMs ?? RETRY_CAP_MS,
          (this.o.retryBaseMs ?? RETRY_BASE_MS) * 2 ** (attempt - 1),
        );
        const asked = error instanceof LlmHttpError ? error.retryAfterMs : undefined;
        if (asked !== undefined && asked > MAX_RETRY_AFTER_MS) throw error;
        const delayMs = Math.round(asked ?? Math.random() * backoff);
        // A retry that could not start before the deadline would only fail with it.
        if (Date.now() + delayMs >= limits.deadline) throw error;
        this.o.logger?.warn({
          event: 'llm.retry',
          model: this.o.model,
          attempt,
          status: error instanceof LlmHttpError ? error.status : undefined,
          err: error.message,
          delayMs,
        });
        await sleep(delayMs);
      }
    }
  }

  private async attempt(
    body: string,
    onDelta: ((text: string) => void) | undefined,
    progress: { streamed: boolean },
    limits: AttemptLimits,
  ): Promise<Omit<ChatResult, 'attempts'>> {
    const { timeoutMs } = this.o;
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    /** (Re)starts the wait for the response, or for the next streamed event. */
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(new LlmTimeoutError(timeoutMs)), timeoutMs);
    };
    // However the server keeps the request alive, it is over at the deadline.
    const deadline = setTimeout(
      () => controller.abort(new LlmDeadlineError(limits.maxDurationMs)),
      Math.max(0, limits.deadline - Date.now()),
    );
    /** Whether the request was ended here (timeout, deadline): that, not the abort, is the error. */
    const endedHere = () => controller.signal.reason instanceof LlmError;
    arm();
    try {
      let res: Response;
      try {
        res = await fetch(this.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: onDelta ? 'text/event-stream' : 'application/json',
            ...(this.o.apiKey ? { authorization: `Bearer ${this.o.apiKey}` } : {}),
          },
          body,
          signal: controller.signal,
        });
      } catch (err) {
        throw endedHere() ? controller.signal.reason : new LlmConnectionError(err);
      }
      try {
        if (!res.ok) {
          const { bytes } = await readCapped(res.body, ERROR_BODY_MAX_BYTES);
          throw httpError(res.status, res.headers, new TextDecoder().decode(bytes));
        }
        const type = res.headers.get('content-type') ?? '';
        if (onDelta && type.includes('text/event-stream') && res.body)
          return await readStream(res.body, onDelta, progress, arm, limits);
        const maxBytes = COMPLETION_OVERHEAD_BYTES + limits.maxChars * MAX_JSON_BYTES_PER_CHAR;
        const read = await readCapped(res.body, maxBytes);
        if (read.over) throw new LlmAnswerTooLongError(`${maxBytes} bytes`, limits.maxTokens);
        let json: unknown;
        try {
          json = JSON.parse(read.bytes.toString('utf8'));
        } catch {
          json = undefined;
        }
        const parsed = CompletionSchema.safeParse(json);
        if (!parsed.success) throw new LlmResponseError('no choices in the completion');
        const choice = parsed.data.choices[0]!;
        const content = choice.message.content ?? '';
        if (answerChars(content, choice.message.tool_calls ?? []) > limits.maxChars)
          throw new LlmAnswerTooLongError(`${limits.maxChars} characters`, limits.maxTokens);
        // A server that ignored `stream: true` still answers: the whole text is one piece.
        if (onDelta && content) {
          progress.streamed = true;
          onDelta(content);
        }
        const { id, model, usage } = parsed.data;
        return {
          content,
          toolCalls: choice.message.tool_calls ?? [],
          finishReason: choice.finish_reason ?? null,
          response: {
            ...(id ? { id } : {}),
            ...(model ? { model } : {}),
            ...(usage?.prompt_tokens !== undefined ? { inputTokens: usage.prompt_tokens } : {}),
            ...(usage?.completion_tokens !== undefined ? { outputTokens: usage.completion_tokens } : {}),
          },
        };
      } catch (err) {
        if (endedHere()) throw controller.signal.reason;
        throw err;
      }
    } finally {
      clearTimeout(timer);
      clearTimeout(deadline);
    }
  }
}

/**
 * Reads an SSE stream of chat completion chunks, handing out text and gathering tool calls.
 * `alive` is called for each event that carries data: a comment (`: keep-alive`) does not
 * count as progress. An answer longer than `limits.maxChars` ends the read.
 */
async function readStream(
  body: ReadableStream<Uint8Array>,
  onDelta: (text: string) => void,
  progress: { streamed: boolean },
  alive: () => void,
  limits: AttemptLimits,
): Promise<Omit<ChatResult, 'attempts'>> {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let content = '';
  /** Characters of the answer so far: text, tool names and arguments. */
  let chars = 0;
  const grow = (n: number) => {
    chars += n;
    if (chars > limits.maxChars)
      throw new LlmAnswerTooLongError(`${limits.maxChars} characters`, limits.maxTokens);
  };
  let finishReason: string | null = null;
  let done = false;
  const calls: { id: string; name: string; args: string }[] = [];
  const take = (event: EventSourceMessage) => {
    if (event.data.trim() === '[DONE]') {
      done = true;
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(event.data);
    } catch {
      throw new LlmResponseError(`a streamed event is not JSON: ${truncateUtf16(event.data, 100)}`);
    }
    const parsed = ChunkSchema.safeParse(json);
    if (!parsed.success) throw new LlmResponseError('a streamed event is not a chat completion chunk');
    if (parsed.data.error) throw new LlmResponseError(parsed.data.error.message);
    const choice = parsed.data.choices[0];
    if (!choice) return;
    const text = choice.delta.content;
    if (text) {
      grow(text.length);
      content += text;
      progress.streamed = true;
      onDelta(text);
    }
    for (const part of choice.delta.tool_calls ?? []) {
      const index = part.index ?? 0;
      const slot = calls[index] ?? { id: '', name: '', args: '' };
      calls[index] = slot;
      if (part.id) slot.id = part.id;
      grow((part.function?.name?.length ?? 0) + (part.function?.arguments?.length ?? 0));
      if (part.function?.name) slot.name += part.function.name;
      if (part.function?.arguments) slot.args += part.function.arguments;
    }
    if (choice.finish_reason) finishReason = choice.finish_reason;
  };
  try {
    while (!done) {
      const { done: ended, value } = await reader.read();
      if (ended) break;
      parser.feed(decoder.decode(value, { stream: true }));
      const batch = events.splice(0);
      if (batch.length > 0) alive();
      for (const event of batch) if (!done) take(event);
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  if (!done && finishReason === null) throw new LlmResponseError('the stream ended before the answer did');
  return {
    content,
    toolCalls: calls
      .filter((c) => c !== undefined)
      .map((c, i) => ({
        id: c.id || `call_${i}`,
        type: 'function' as const,
        function: { name: c.name, arguments: c.args },
      })),
    finishReason,
  };
}
