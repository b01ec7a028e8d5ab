import type { ChatMessage } from './client.ts';
import type { TokenCounter } from './tokens.ts';

/** What a tool result cut to fit the prompt ends with, so that the model knows it is not whole. */
export function cutNotice(kept: number, total: number): string {
  return kept === 0
    ? `[left out to fit the prompt: this result had ${total} tokens]`
    : `\n… [cut to fit the prompt: the first ${kept} of ${total} tokens of this result]`;
}

/** How one message of the exchange went into the prompt. */
export interface ExchangeItem {
  /** The tool calls' names (the model's message), or the tool's name (a result). */
  item: string;
  tokens: number;
  /** Tokens of the result before it was cut; absent when it goes whole. */
  cutFrom?: number;
}

export interface FittedExchange {
  messages: ChatMessage[];
  /** What the messages cost, each counted as `TokenCounter.message` counts it. */
  tokens: number;
  items: ExchangeItem[];
}

/** The tool's name for each call id the model's messages hold. */
function toolNames(pending: readonly ChatMessage[]): Map<string, string> {
  const names = new Map<string, string>();
  for (const m of pending)
    if (m.role === 'assistant') for (const c of m.tool_calls ?? []) names.set(c.id, c.function.name);
  return names;
}

/**
 * This answer's tool calls and results (the model's messages asking, the tools' answers), fitted
 * to a number of tokens. The calls go as they are; results are cut from the largest down — every
 * result longer than some length is cut to that length, the longest that makes the whole fit —
 * and each cut one says so (`cutNotice`). `least` is what the exchange costs with every result cut
 * to its notice alone: below that it cannot be fitted.
 */
export class ToolExchange {
  private readonly names: Map<string, string>;
  /** Each result's tokens (undefined for the model's own messages). */
  private readonly encoded: (number[] | undefined)[];
  /** What each message costs without its content. */
  private readonly bare: number[];
  private readonly whole: number[];
  readonly least: number;
  readonly full: number;

  constructor(
    private readonly pending: readonly ChatMessage[],
    private readonly counter: TokenCounter,
  ) {
    this.names = toolNames(pending);
    this.encoded = pending.map((m) => (m.role === 'tool' ? counter.encode(m.content) : undefined));
    this.bare = pending.map((m) => (m.role === 'tool' ? counter.message({ ...m, content: '' }) : 0));
    this.whole = pending.map((m) => counter.message(m));
    this.full = this.whole.reduce((a, b) => a + b, 0);
    this.least = this.build(0).tokens;
  }

  get empty(): boolean {
    return this.pending.length === 0;
  }

  /** The exchange within `limit` tokens (at least `least`: below it every result is its notice). */
  fit(limit: number): FittedExchange {
    if (this.full <= limit) return this.build(Number.POSITIVE_INFINITY);
    const longest = Math.max(0, ...this.encoded.map((t) => t?.length ?? 0));
    // Estimates first (a cut result costs its bare message, its kept tokens and its notice), then
    // the real count: decoding a cut and counting it again can differ by a token or two.
    let target = limit;
    for (let tries = 0; tries < 5; tries++) {
      let low = 0;
      let high = longest;
      while (low < high) {
        const mid = Math.ceil((low + high) / 2);
        if (this.estimate(mid) <= target) low = mid;
        else high = mid - 1;
      }
      const built = this.build(low);
      if (built.tokens <= limit) return built;
      target -= built.tokens - limit;
    }
    return this.build(0);
  }

  /** What the exchange would cost with every result longer than `keep` tokens cut to `keep`. */
  private estimate(keep: number): number {
    return this.pending.reduce((sum, _m, i) => {
      const tokens = this.encoded[i];
      if (!tokens || tokens.length <= keep) return sum + this.whole[i]!;
      const cut = this.bare[i]! + keep + this.counter.text(cutNotice(keep, tokens.length));
      return sum + Math.min(this.whole[i]!, cut);
    }, 0);
  }

  private build(keep: number): FittedExchange {
    const messages: ChatMessage[] = [];
    const items: ExchangeItem[] = [];
    let total = 0;
    for (const [i, m] of this.pending.entries()) {
      const tokens = this.encoded[i];
      let message = m;
      let cost = this.whole[i]!;
      let cutFrom: number | undefined;
      if (m.role === 'tool' && tokens && tokens.length > keep) {
        const cut: ChatMessage = {
          ...m,
          content: this.counter.prefix(tokens, keep) + cutNotice(keep, tokens.length),
        };
        const cutCost = this.counter.message(cut);
        if (cutCost < cost) {
          message = cut;
          cost = cutCost;
          cutFrom = tokens.length;
        }
      }
      messages.push(message);
      total += cost;
      items.push({
        item:
          m.role === 'tool'
            ? (this.names.get(m.tool_call_id) ?? m.tool_call_id)
            : m.role === 'assistant'
              ? (m.tool_calls ?? []).map((c) => c.function.name).join(', ')
              : m.role,
        tokens: cost,
        ...(cutFrom !== undefined ? { cutFrom } : {}),
      });
    }
    return { messages, tokens: total, items };
  }
}
