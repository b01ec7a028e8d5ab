import type { Logger } from '../logger.ts';
import type { ChatMessage, ToolSpec } from './client.ts';
import type { TokenCounter } from './tokens.ts';
import { ToolExchange } from './tool-exchange.ts';

/**
 * The share of what is left after the system layer and the message that this answer's tool
 * calls and results may take: larger results are cut to fit it (the model is told), and the
 * rest stays for the other layers — the session's tools above all, so that the model keeps them.
 */
export const TOOL_EXCHANGE_SHARE = 0.75;

/** A chunk of a knowledge base that matched the person's message, best first. */
export interface KnowledgeChunk {
  kb: string;
  /** The document's path inside its knowledge base: what the model is told to cite. */
  source: string;
  text: string;
}

/** One stored history row as chat messages (a tool row is the model's call and its result). */
export interface HistoryItem {
  seq: number;
  messages: ChatMessage[];
}

export interface ContextInput {
  /** The bot's prompt and personality. */
  system: string;
  summary: string | null;
  knowledge: readonly KnowledgeChunk[];
  /** `SET CONTEXT` strings. */
  context: Readonly<Record<string, string>>;
  tools: readonly ToolSpec[];
  /** Earlier history, oldest first. */
  history: readonly HistoryItem[];
  /** Most history items kept. */
  historyLimit: number;
  /** The current message. */
  message: string;
  /**
   * This answer's tool calls and results so far: they follow the message, within their share of
   * the budget (TOOL_EXCHANGE_SHARE; the largest results cut to fit).
   */
  pending: readonly ChatMessage[];
  /** Most tokens the request may take (the model's context less what is kept for the reply). */
  budget: number;
  /**
   * What each picture going with the current message costs (`llm.vision`; see image-tokens.ts),
   * in order. They come right after the message: kept while they fit, the rest left out.
   */
  images?: readonly number[];
  knowledgeMaxChunks: number;
  knowledgeMaxTokens: number;
}

export type PartName =
  | 'system'
  | 'summary'
  | 'knowledge'
  | 'context'
  | 'tools'
  | 'history'
  | 'message'
  | 'images'
  | 'pending';

/** Why a part of the context was kept or cut, and what it cost. */
export interface ContextPart {
  part: PartName;
  kept: boolean;
  tokens: number;
  reason: string;
  /** What the part is: a source, a context name, a tool name, a history seq. */
  item?: string | number;
}

export interface AssembledContext {
  messages: ChatMessage[];
  tools: ToolSpec[];
  /** What the request costs, counted exactly as `tokens.request` does. */
  tokens: number;
  budget: number;
  parts: ContextPart[];
  /** History items left out (not the summary's), oldest first: what a new summary would cover. */
  dropped: HistoryItem[];
  /** How many of `images` fit (the first ones): only these go with the request. */
  imagesKept: number;
  /**
   * This answer's tool exchange did not fit even with every result cut: it is left out, the
   * request offers no tools, and the model is told to answer without them (its last call).
   */
  withoutTools: boolean;
}

/** The system layer alone does not fit the budget. */
export class ContextBudgetError extends Error {
  override name = 'ContextBudgetError';
}

export const SECTION = {
  summary: '## Summary of the earlier conversation',
  knowledge:
    '## Knowledge\nExcerpts from the knowledge bases. Use them when they answer the question and name the source you used.',
  context: '## Context',
  toolsLeftOut:
    '## Tools\nThe results of the tools called for this answer do not fit in the prompt and are left out. Answer without them, and say so if the question needed them.',
} as const;

/**
 * Assembles the prompt, in this order: the system layer (the bot's prompt and personality),
 * the summary of older history, knowledge (the best chunks, with their sources), the user's
 * context, the tools, then as much history as fits (newest first, in the order it was said),
 * then the current message and this answer's tool exchanges. The first four go into one
 * system message, section after section; tools travel as the request's `tools`.
 *
 * Everything is counted with the real tokenizer against `budget`. The system layer and the
 * current message always go (the message is shortened if it alone would not fit); then this
 * answer's tool exchange, within TOOL_EXCHANGE_SHARE of what is left (its largest results cut
 * to fit, each saying so); each later layer is kept when it fits in what is left, else cut;
 * history fills the rest, newest first, and once one message does not fit, every older one is
 * left out too. An exchange that does not fit even with every result cut is left out, with the
 * tools: the model is told to answer without them (`withoutTools`). Every part gets a line in
 * `parts` saying what it cost and why it was kept or cut.
 */
export function assembleContext(input: ContextInput, counter: TokenCounter): AssembledContext {
  const parts: ContextPart[] = [];
  const { budget } = input;
  let layers: SystemLayers = {
    base: input.system.trim(),
    summary: null,
    knowledge: [],
    context: [],
    notice: null,
  };
  parts.push({
    part: 'system',
    kept: true,
    tokens: counter.message({ role: 'system', content: layers.base }),
    reason: 'always sent',
  });

  let current: ChatMessage = { role: 'user', content: input.message };
  let pending: ChatMessage[] = [];
  let tools: ToolSpec[] = [];
  /** The pictures kept so far: they are in every cost, as the text is. */
  let imageTokens = 0;
  const cost = (l: SystemLayers, t: readonly ToolSpec[]) =>
    counter.request([{ role: 'system', content: renderSystem(l) }, current, ...pending], t) + imageTokens;

  const emptyMessage = counter.message({ role: 'user', content: '' });
  const messageTokens = counter.message(current);
  /** The system layer, an empty message and the reply's priming: what every request costs. */
  const fixed = (l: SystemLayers) =>
    counter.request([
      { role: 'system', content: renderSystem(l) },
      { role: 'user', content: '' },
    ]);
  if (fixed(layers) >= budget)
    throw new ContextBudgetError(
      `the system layer needs ${fixed(layers) - emptyMessage} of ${budget} tokens: shorten systemPrompt or personality, or raise tokenBudget`,
    );

  const exchange = new ToolExchange(input.pending, counter);
  const withoutTools = !exchange.empty && fixed(layers) + exchange.least >= budget;
  if (withoutTools) {
    const told = { ...layers, notice: SECTION.toolsLeftOut };
    if (fixed(told) < budget) layers = told;
  }

  const room = budget - fixed(layers) - (withoutTools ? 0 : exchange.least) + emptyMessage;
  if (messageTokens > room) {
    current = { role: 'user', content: counter.truncate(input.message, room - emptyMessage) };
    parts.push({
      part: 'message',
      kept: true,
      tokens: counter.message(current),
      reason: `shortened from ${messageTokens} tokens to fit the budget`,
    });
  } else parts.push({ part: 'message', kept: true, tokens: messageTokens, reason: 'always sent' });

  if (withoutTools) {
    for (const item of exchange.fit(exchange.full).items)
      parts.push({
        part: 'pending',
        item: item.item,
        kept: false,
        tokens: item.tokens,
        reason: 'over budget even with every tool result cut: the answer goes without tools',
      });
  } else if (!exchange.empty) {
    const left = budget - cost(layers, tools);
    const fitted = exchange.fit(Math.max(exchange.least, Math.floor(left * TOOL_EXCHANGE_SHARE)));
    pending = fitted.messages;
    for (const item of fitted.items)
      parts.push({
        part: 'pending',
        item: item.item,
        kept: true,
        tokens: item.tokens,
        reason:
          item.cutFrom !== undefined
            ? `tool result shortened from ${item.cutFrom} tokens to fit the tool results' share of the budget`
            : "this answer's tool calls and results",
      });
  }

  let imagesKept = 0;
  for (const [i, tokens] of (input.images ?? []).entries()) {
    const ok = imagesKept === i && cost(layers, tools) + tokens <= budget;
    parts.push({
      part: 'images',
      item: i + 1,
      kept: ok,
      tokens,
      reason: ok ? 'goes with the message' : 'over budget',
    });
    if (!ok) continue;
    imageTokens += tokens;
    imagesKept++;
  }

  let used = cost(layers, tools);
  /** Takes the changed layers when the whole request still fits; returns what they cost. */
  const tryLayers = (next: SystemLayers, limit = budget - used): { ok: boolean; tokens: number } => {
    const tokens = cost(next, tools) - used;
    if (tokens > limit || used + tokens > budget) return { ok: false, tokens };
    layers = next;
    used += tokens;
    return { ok: true, tokens };
  };

  if (input.summary) {
    const r = tryLayers({ ...layers, summary: input.summary.trim() });
    parts.push({ part: 'summary', kept: r.ok, tokens: r.tokens, reason: r.ok ? 'fits' : 'over budget' });
  }

  let knowledgeUsed = 0;
  for (const chunk of input.knowledge) {
    const item = `${chunk.kb}/${chunk.source}`;
    const text = `[source: ${chunk.source}]\n${chunk.text.trim()}`;
    if (layers.knowledge.length >= input.knowledgeMaxChunks) {
      parts.push({
        part: 'knowledge',
        item,
        kept: false,
        tokens: counter.text(text),
        reason: 'beyond knowledge.maxChunks',
      });
      continue;
    }
    const next = { ...layers, knowledge: [...layers.knowledge, text] };
    const r = tryLayers(next, input.knowledgeMaxTokens - knowledgeUsed);
    const overShare = !r.ok && used + r.tokens <= budget;
    parts.push({
      part: 'knowledge',
      item,
      kept: r.ok,
      tokens: r.tokens,
      reason: r.ok ? 'matches the message' : overShare ? 'over knowledge.maxTokens' : 'over budget',
    });
    if (r.ok) knowledgeUsed += r.tokens;
  }

  for (const [name, value] of Object.entries(input.context)) {
    const r = tryLayers({ ...layers, context: [...layers.context, `- ${name}: ${value}`] });
    parts.push({
      part: 'context',
      item: name,
      kept: r.ok,
      tokens: r.tokens,
      reason: r.ok ? 'fits' : 'over budget',
    });
  }

  for (const tool of input.tools) {
    if (withoutTools) {
      parts.push({
        part: 'tools',
        item: tool.function.name,
        kept: false,
        tokens: 0,
        reason: "left out: this answer's tool results did not fit",
      });
      continue;
    }
    const tokens = cost(layers, [...tools, tool]) - used;
    const ok = used + tokens <= budget;
    parts.push({
      part: 'tools',
      item: tool.function.name,
      kept: ok,
      tokens,
      reason: ok ? 'in USE TOOL' : 'over budget',
    });
    if (ok) {
      tools = [...tools, tool];
      used += tokens;
    }
  }

  const kept: HistoryItem[] = [];
  const dropped: HistoryItem[] = [];
  let closed = false;
  for (let i = input.history.length - 1; i >= 0; i--) {
    const item = input.history[i]!;
    const tokens = item.messages.reduce((sum, m) => sum + counter.message(m), 0);
    let reason: string | undefined;
    if (closed) reason = 'older than a message that was cut';
    else if (kept.length >= input.historyLimit) reason = 'beyond historyLimit';
    else if (used + tokens > budget) reason = 'over budget';
    if (reason) {
      closed = true;
      dropped.unshift(item);
      parts.push({ part: 'history', item: item.seq, kept: false, tokens, reason });
      continue;
    }
    used += tokens;
    kept.unshift(item);
    parts.push({ part: 'history', item: item.seq, kept: true, tokens, reason: 'fits, newest first' });
  }

  const messages: ChatMessage[] = [
    { role: 'system', content: renderSystem(layers) },
    ...kept.flatMap((h) => h.messages),
    current,
    ...pending,
  ];
  return {
    messages,
    tools,
    tokens: counter.request(messages, tools) + imageTokens,
    budget,
    parts,
    dropped,
    imagesKept,
    withoutTools,
  };
}

interface SystemLayers {
  base: string;
  summary: string | null;
  knowledge: string[];
  context: string[];
  /** Said last: that this answer's tool results were left out. */
  notice: string | null;
}

/** The system message: the bot's own prompt, then a section per layer that has something. */
function renderSystem(l: SystemLayers): string {
  const sections = [l.base];
  if (l.summary) sections.push(`${SECTION.summary}\n${l.summary}`);
  if (l.knowledge.length > 0) sections.push(`${SECTION.knowledge}\n\n${l.knowledge.join('\n\n')}`);
  if (l.context.length > 0) sections.push(`${SECTION.context}\n${l.context.join('\n')}`);
  if (l.notice) sections.push(l.notice);
  return sections.filter((s) => s !== '').join('\n\n');
}

/** One DEBUG line per part (`llm.context_part`) and one for the whole (`llm.context`). */
export function logContext(logger: Logger, assembled: AssembledContext, purpose: string): void {
  if (!logger.isLevelEnabled('debug')) return;
  for (const p of assembled.parts) logger.debug({ event: 'llm.context_part', purpose, ...p });
  logger.debug({
    event: 'llm.context',
    purpose,
    tokens: assembled.tokens,
    budget: assembled.budget,
    messages: assembled.messages.length,
    tools: assembled.tools.map((t) => t.function.name),
    historyKept: assembled.parts.filter((p) => p.part === 'history' && p.kept).length,
    historyDropped: assembled.dropped.length,
  });
}
