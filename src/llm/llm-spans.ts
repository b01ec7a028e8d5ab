import { inSpan, SpanKind, SpanStatusCode, traceContent } from '../telemetry/tracing.ts';
import type { ChatRequest, ChatResult, ToolCall } from './client.ts';

/**
 * Spans of the LLM's work, after the OpenTelemetry GenAI semantic conventions: a client span per
 * chat completion (`chat <model>`), an internal span per tool call (`execute_tool <name>`).
 * Prompts, answers and tool arguments go in only with `SWITCHBOARD_TRACE_CONTENT=true`.
 */
export function chatSpan(
  url: string,
  model: string,
  request: ChatRequest,
  stream: boolean,
  fn: () => Promise<ChatResult>,
): Promise<ChatResult> {
  const server = new URL(url);
  const content = traceContent();
  return inSpan(
    `chat ${model}`,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': 'openai',
        'gen_ai.request.model': model,
        'server.address': server.hostname,
        'server.port': Number(server.port || (server.protocol === 'https:' ? 443 : 80)),
        'switchboard.llm.stream': stream,
        ...(request.maxTokens !== undefined ? { 'gen_ai.request.max_tokens': request.maxTokens } : {}),
        ...(request.temperature !== undefined ? { 'gen_ai.request.temperature': request.temperature } : {}),
        ...(request.tools?.length ? { 'switchboard.llm.tools': request.tools.length } : {}),
        ...(content ? { 'gen_ai.input.messages': JSON.stringify(request.messages) } : {}),
      },
    },
    async (span) => {
      const result = await fn();
      if (span) {
        if (result.finishReason) span.setAttribute('gen_ai.response.finish_reasons', [result.finishReason]);
        const r = result.response;
        if (r?.id) span.setAttribute('gen_ai.response.id', r.id);
        if (r?.model) span.setAttribute('gen_ai.response.model', r.model);
        if (r?.inputTokens !== undefined) span.setAttribute('gen_ai.usage.input_tokens', r.inputTokens);
        if (r?.outputTokens !== undefined) span.setAttribute('gen_ai.usage.output_tokens', r.outputTokens);
        span.setAttribute('switchboard.llm.attempts', result.attempts);
        if (content)
          span.setAttribute(
            'gen_ai.output.messages',
            JSON.stringify([
              {
                role: 'assistant',
                content: result.content,
                ...(result.toolCalls.length ? { tool_calls: result.toolCalls } : {}),
              },
            ]),
          );
      }
      return result;
    },
  );
}

/** A tool the model called, run by the hub. */
export function toolSpan<T extends { ok: boolean; content: string }>(
  call: ToolCall,
  fn: () => Promise<T>,
): Promise<T> {
  const content = traceContent();
  return inSpan(
    `execute_tool ${call.function.name}`,
    {
      attributes: {
        'gen_ai.operation.name': 'execute_tool',
        'gen_ai.tool.name': call.function.name,
        'gen_ai.tool.call.id': call.id,
        'gen_ai.tool.type': 'function',
        ...(content ? { 'gen_ai.tool.call.arguments': call.function.arguments } : {}),
      },
    },
    async (span) => {
      const outcome = await fn();
      if (span) {
        span.setAttribute('switchboard.tool.ok', outcome.ok);
        if (!outcome.ok) span.setStatus({ code: SpanStatusCode.ERROR, message: 'the tool failed' });
        if (content) span.setAttribute('gen_ai.tool.call.result', outcome.content);
      }
      return outcome;
    },
  );
}
