import type { ChatMessage, ChatRequest } from './client.ts';
import type { HistoryItem } from './context.ts';
import type { TokenCounter } from './tokens.ts';

export const SUMMARY_INSTRUCTIONS =
  'You keep the running summary of a conversation between a person and an assistant, for the ' +
  'assistant to read later instead of the messages themselves. Merge the previous summary (if any) ' +
  'with the messages given: keep facts about the person, what they asked for, what was decided or ' +
  'promised, tool results that still matter, and open questions. Be brief and factual. Write the ' +
  'summary only, in the language of the conversation.';

function line(message: ChatMessage): string | undefined {
  switch (message.role) {
    case 'user':
      return `Person: ${message.content}`;
    case 'assistant':
      if (message.tool_calls?.length)
        return message.tool_calls
          .map((c) => `Assistant called ${c.function.name}(${c.function.arguments})`)
          .join('\n');
      return message.content ? `Assistant: ${message.content}` : undefined;
    case 'tool':
      return `Tool result: ${message.content}`;
    default:
      return undefined;
  }
}

/**
 * The request that asks the model to fold `items` (oldest first) into the summary. The
 * transcript is fitted into `budget`: when it is too long its oldest lines go first (they are
 * the least likely to matter, and the previous summary already covers what came before them).
 */
export function summaryRequest(
  previous: string | null,
  items: readonly HistoryItem[],
  counter: TokenCounter,
  budget: number,
  summaryTokens: number,
): ChatRequest {
  const lines = items.flatMap((item) => item.messages.map(line).filter((l): l is string => l !== undefined));
  const head = previous ? `Previous summary:\n${previous}\n\n` : '';
  const system: ChatMessage = { role: 'system', content: SUMMARY_INSTRUCTIONS };
  const build = (kept: string[]): ChatMessage[] => [
    system,
    { role: 'user', content: `${head}Messages:\n${kept.join('\n')}` },
  ];
  // Estimate from line sizes first, then check exactly: recounting the whole transcript per line would be quadratic.
  let total = counter.request(build(lines));
  let start = 0;
  while (start < lines.length - 1 && total > budget) total -= counter.text(lines[start++]!) + 1;
  let kept = lines.slice(start);
  while (kept.length > 1 && counter.request(build(kept)) > budget) kept = kept.slice(1);
  const messages = build(kept);
  if (counter.request(messages) > budget) {
    const last = messages[1]!;
    const room = budget - counter.request([system, { role: 'user', content: '' }]);
    messages[1] = { role: 'user', content: counter.truncate(last.content ?? '', Math.max(0, room)) };
  }
  return { messages, maxTokens: summaryTokens, temperature: 0 };
}
