import { createRequire } from 'node:module';
import type * as Bpe from 'gpt-tokenizer/encoding/o200k_base';
import {
  COMPLETION_REQUEST_TOKEN_OVERHEAD,
  estimateTokensInFunctions,
  MESSAGE_TOKEN_OVERHEAD,
} from 'gpt-tokenizer/functionCalling';
import type { ChatMessage, ToolSpec } from './client.ts';

export type Encoding = 'o200k_base' | 'cl100k_base';

const require = createRequire(import.meta.url);

/**
 * An encoding's BPE tables, loaded the first time something is counted: they take ~50 MB of
 * heap, which a process whose bots use no LLM and no knowledge base never needs.
 */
function loadEncoding(encoding: Encoding): typeof Bpe {
  return require(`gpt-tokenizer/encoding/${encoding}`) as typeof Bpe;
}

/**
 * Counts tokens the way OpenAI's models do (gpt-tokenizer's BPE tables): a message costs its
 * text plus a fixed overhead, a request a few tokens for priming the reply, and tool
 * declarations what their TypeScript-like rendering costs. Other models' tokenizers differ a
 * little; the budget leaves them room through `replyTokens`.
 */
export class TokenCounter {
  private loaded: typeof Bpe | undefined;
  private readonly count: (text: string) => number;

  constructor(readonly encoding: Encoding = 'o200k_base') {
    this.count = (text) => this.bpe.countTokens(text);
  }

  private get bpe(): typeof Bpe {
    this.loaded ??= loadEncoding(this.encoding);
    return this.loaded;
  }

  text(text: string): number {
    return text ? this.count(text) : 0;
  }

  /** The text's tokens: to cut it at several lengths (`prefix`) while encoding it once. */
  encode(text: string): number[] {
    return this.bpe.encode(text);
  }

  /**
   * The text of the first `count` of a text's `tokens`: whole characters only, a character the
   * cut falls inside is left out. gpt-tokenizer decodes through one streaming TextDecoder shared
   * by every call, which keeps the bytes of such a character and would put them at the start of
   * the next decode, whatever it decodes: decoding the rest of the tokens completes the text and
   * leaves the decoder empty.
   */
  prefix(tokens: readonly number[], count: number): string {
    const head = this.bpe.decode(tokens.slice(0, Math.max(0, count)));
    if (count < tokens.length) this.bpe.decode(tokens.slice(Math.max(0, count)));
    return head;
  }

  /** The text cut to its first `maxTokens` tokens (on a character boundary). */
  truncate(text: string, maxTokens: number): string {
    const tokens = this.bpe.encode(text);
    return tokens.length <= maxTokens ? text : this.prefix(tokens, maxTokens);
  }

  message(message: ChatMessage): number {
    let tokens = MESSAGE_TOKEN_OVERHEAD + this.text(message.role) + this.text(message.content ?? '');
    if (message.role === 'assistant')
      for (const call of message.tool_calls ?? [])
        tokens += MESSAGE_TOKEN_OVERHEAD + this.text(call.function.name) + this.text(call.function.arguments);
    if (message.role === 'tool') tokens += this.text(message.tool_call_id);
    return tokens;
  }

  tools(tools: readonly ToolSpec[]): number {
    if (tools.length === 0) return 0;
    return estimateTokensInFunctions(
      tools.map((t) => t.function as unknown as Parameters<typeof estimateTokensInFunctions>[0][number]),
      this.count,
    );
  }

  /** What a whole request costs: its messages, its tools and the reply's priming. */
  request(messages: readonly ChatMessage[], tools: readonly ToolSpec[] = []): number {
    return (
      messages.reduce((sum, m) => sum + this.message(m), 0) +
      this.tools(tools) +
      COMPLETION_REQUEST_TOKEN_OVERHEAD
    );
  }
}

const counters = new Map<Encoding, TokenCounter>();

export function tokenCounter(encoding: Encoding = 'o200k_base'): TokenCounter {
  let counter = counters.get(encoding);
  if (!counter) {
    counter = new TokenCounter(encoding);
    counters.set(encoding, counter);
  }
  return counter;
}
