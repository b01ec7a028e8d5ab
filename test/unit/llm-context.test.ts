import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { chunkDocument } from '../../src/kb/chunk.ts';
import { anyWordQuery } from '../../src/kb/store.ts';
import type { ChatMessage, ToolSpec } from '../../src/llm/client.ts';
import {
  assembleContext,
  ContextBudgetError,
  type ContextInput,
  type HistoryItem,
  logContext,
  SECTION,
  TOOL_EXCHANGE_SHARE,
} from '../../src/llm/context.ts';
import { historyItems } from '../../src/llm/service.ts';
import { SUMMARY_INSTRUCTIONS, summaryRequest } from '../../src/llm/summary.ts';
import { tokenCounter } from '../../src/llm/tokens.ts';
import { MAX_TOOL_RESULT_CHARS } from '../../src/llm/tools.ts';
import { hasInvalidText } from '../../src/text.ts';

const counter = tokenCounter('o200k_base');

const tool: ToolSpec = {
  type: 'function',
  function: {
    name: 'order_status',
    description: 'Looks up where an order is',
    parameters: { type: 'object', properties: { order: { type: 'string' } }, required: ['order'] },
  },
};

/** `n` alternating user/assistant messages, seq 1..n, each a recognisable sentence. */
function conversation(n: number): HistoryItem[] {
  return Array.from({ length: n }, (_, i) => ({
    seq: i + 1,
    messages: [
      {
        role: i % 2 === 0 ? 'user' : 'assistant',
        content: `message number ${i + 1} talks about the weather in town number ${i + 1} today`,
      } as ChatMessage,
    ],
  }));
}

/** A tool result as a lookup returns it: a catalogue in JSON, clipped as the tools clip it. */
function catalogue(seed: number): string {
  const items = Array.from({ length: 400 }, (_, i) => ({
    sku: `K-${seed}-${i}`,
    name: `Kettle model ${i} (${seed})`,
    litres: 1 + (i % 5) / 2,
    in_stock: (i * seed) % 9,
    price_eur: 20 + i,
  }));
  return JSON.stringify(items).slice(0, MAX_TOOL_RESULT_CHARS);
}

/** One round of tool calls (the model's message) and the results, `call_<i>` each. */
function toolRound(results: string[], name = 'order_status', round = 0): ChatMessage[] {
  const ids = results.map((_, i) => `call_${round}_${i}`);
  return [
    {
      role: 'assistant',
      content: null,
      tool_calls: ids.map((id, i) => ({
        id,
        type: 'function' as const,
        function: { name, arguments: JSON.stringify({ order: `A${round}-${i}` }) },
      })),
    },
    ...results.map((content, i): ChatMessage => ({ role: 'tool', tool_call_id: ids[i]!, content })),
  ];
}

function input(overrides: Partial<ContextInput> = {}): ContextInput {
  return {
    system: 'You are Kettle Support. Be brief.',
    summary: 'The person bought a kettle in March.',
    knowledge: [
      { kb: 'faq', source: 'shipping.md', text: '## Shipping\n\nWe ship in 3 days.' },
      { kb: 'faq', source: 'warranty.pdf', text: 'Two years of warranty.' },
    ],
    context: { plan: 'Premium customer since 2020', language: 'English' },
    tools: [tool],
    history: conversation(10),
    historyLimit: 50,
    message: 'When will my order arrive?',
    pending: [],
    budget: 4000,
    knowledgeMaxChunks: 4,
    knowledgeMaxTokens: 1000,
    ...overrides,
  };
}

describe('context assembly', () => {
  it('puts the layers in order: system, summary, knowledge, context, tools, history, message', () => {
    const a = assembleContext(input(), counter);
    const system = a.messages[0]!;
    expect(system.role).toBe('system');
    const text = system.content!;
    const at = (s: string) => text.indexOf(s);
    expect(at('You are Kettle Support.')).toBe(0);
    expect(at(SECTION.summary)).toBeGreaterThan(0);
    expect(at('The person bought a kettle')).toBeGreaterThan(at(SECTION.summary));
    expect(at(SECTION.knowledge.split('\n')[0]!)).toBeGreaterThan(at('The person bought a kettle'));
    expect(at('[source: shipping.md]')).toBeGreaterThan(at(SECTION.knowledge.split('\n')[0]!));
    expect(at('[source: warranty.pdf]')).toBeGreaterThan(at('[source: shipping.md]'));
    expect(
      at(`${SECTION.context}\n- plan: Premium customer since 2020\n- language: English`),
    ).toBeGreaterThan(at('Two years of warranty.'));
    expect(a.tools).toEqual([tool]);
    expect(a.messages.slice(1, -1).map((m) => m.content)).toEqual(
      conversation(10).map((h) => h.messages[0]!.content),
    );
    expect(a.messages.at(-1)).toEqual({ role: 'user', content: 'When will my order arrive?' });
    expect(a.tokens).toBe(counter.request(a.messages, a.tools));
    expect(a.tokens).toBeLessThanOrEqual(4000);
    expect(a.dropped).toEqual([]);
    expect(a.parts.map((p) => p.part)).toEqual([
      'system',
      'message',
      'summary',
      'knowledge',
      'knowledge',
      'context',
      'context',
      'tools',
      ...Array(10).fill('history'),
    ]);
  });

  it('fills the budget with the newest history and cuts everything older than the first that does not fit', () => {
    const full = assembleContext(input({ history: conversation(40) }), counter);
    const budget = full.tokens - 150;
    const a = assembleContext(input({ history: conversation(40), budget }), counter);
    expect(a.tokens).toBeLessThanOrEqual(budget);
    const keptSeqs = a.parts.filter((p) => p.part === 'history' && p.kept).map((p) => p.item as number);
    expect(keptSeqs.length).toBeGreaterThan(20);
    expect(keptSeqs.length).toBeLessThan(40);
    // Newest first, contiguous, up to seq 40.
    expect(keptSeqs).toEqual(Array.from({ length: keptSeqs.length }, (_, i) => 40 - i));
    const cut = a.parts.filter((p) => p.part === 'history' && !p.kept);
    expect(cut[0]!.reason).toBe('over budget');
    expect(cut.slice(1).every((p) => p.reason === 'older than a message that was cut')).toBe(true);
    expect(a.dropped.map((d) => d.seq)).toEqual(
      Array.from({ length: 40 - keptSeqs.length }, (_, i) => i + 1),
    );
    // Every other layer is still there.
    expect(a.messages[0]!.content).toContain('[source: warranty.pdf]');
    expect(a.tools).toHaveLength(1);
  });

  it('keeps at most historyLimit messages', () => {
    const a = assembleContext(input({ history: conversation(30), historyLimit: 8 }), counter);
    expect(a.messages).toHaveLength(1 + 8 + 1);
    expect(a.messages[1]!.content).toContain('message number 23 ');
    expect(a.parts.find((p) => p.part === 'history' && !p.kept)).toMatchObject({
      item: 22,
      reason: 'beyond historyLimit',
    });
    expect(a.dropped).toHaveLength(22);
  });

  it('cuts knowledge beyond maxChunks and maxTokens, and says so', () => {
    const chunks = Array.from({ length: 5 }, (_, i) => ({
      kb: 'faq',
      source: `doc${i}.md`,
      text: `Paragraph ${i} ${'about kettles and tea '.repeat(10)}`,
    }));
    const a = assembleContext(
      input({ knowledge: chunks, knowledgeMaxChunks: 3, knowledgeMaxTokens: 10_000 }),
      counter,
    );
    const k = a.parts.filter((p) => p.part === 'knowledge');
    expect(k.map((p) => p.kept)).toEqual([true, true, true, false, false]);
    expect(k[3]!.reason).toBe('beyond knowledge.maxChunks');
    const b = assembleContext(
      input({ knowledge: chunks, knowledgeMaxChunks: 5, knowledgeMaxTokens: 130 }),
      counter,
    );
    const kb = b.parts.filter((p) => p.part === 'knowledge');
    expect(kb[0]!.kept).toBe(true);
    expect(kb.some((p) => !p.kept && p.reason === 'over knowledge.maxTokens')).toBe(true);
    expect(b.messages[0]!.content).not.toContain('doc4.md');
  });

  it('drops the summary, knowledge and context that do not fit a small budget, but never the system layer or the message', () => {
    const small = counter.request([
      { role: 'system', content: 'You are Kettle Support. Be brief.' },
      { role: 'user', content: 'When will my order arrive?' },
    ]);
    const a = assembleContext(input({ budget: small + 5 }), counter);
    expect(a.tokens).toBeLessThanOrEqual(small + 5);
    expect(a.messages).toEqual([
      { role: 'system', content: 'You are Kettle Support. Be brief.' },
      { role: 'user', content: 'When will my order arrive?' },
    ]);
    for (const part of ['summary', 'knowledge', 'context', 'tools', 'history'])
      expect(
        a.parts
          .filter((p) => p.part === part)
          .every((p) => !p.kept && /over budget|older than/.test(p.reason)),
      ).toBe(true);
  });

  it('shortens a message that alone would not fit, and refuses a system layer that cannot', () => {
    const long = 'please '.repeat(3000);
    const a = assembleContext(input({ message: long, budget: 600, history: [] }), counter);
    expect(a.tokens).toBeLessThanOrEqual(600);
    expect(a.parts.find((p) => p.part === 'message')!.reason).toMatch(/^shortened from \d+ tokens/);
    expect(() => assembleContext(input({ system: 'word '.repeat(800), budget: 300 }), counter)).toThrow(
      ContextBudgetError,
    );
  });

  it("always sends this answer's tool exchange after the message, and fits the rest around it", () => {
    const pending: ChatMessage[] = [
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'c1', type: 'function', function: { name: 'order_status', arguments: '{"order":"A1"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'c1', content: 'Order A1 shipped on Monday.' },
    ];
    const without = assembleContext(input({ history: conversation(40) }), counter);
    const a = assembleContext(input({ history: conversation(40), pending, budget: without.tokens }), counter);
    expect(a.messages.slice(-3)).toEqual([
      { role: 'user', content: 'When will my order arrive?' },
      ...pending,
    ]);
    expect(a.tokens).toBeLessThanOrEqual(without.tokens);
    expect(a.dropped.length).toBeGreaterThan(without.dropped.length);
  });

  it("gives this answer's tool results a share of the budget: the largest are cut to fit, and say so", () => {
    // Two ordinary lookups in one round and a third, short one in the next: more than the budget.
    const pending = [
      ...toolRound([catalogue(1), catalogue(2)]),
      ...toolRound(['Order A1 shipped on Monday.'], 'order_status', 1),
    ];
    const budget = 4096 - 512;
    expect(pending.reduce((sum, m) => sum + counter.message(m), 0)).toBeGreaterThan(budget);
    const a = assembleContext(input({ pending, budget }), counter);
    expect(a.withoutTools).toBe(false);
    expect(a.tokens).toBeLessThanOrEqual(budget);

    const sent = a.messages.slice(-pending.length);
    expect(sent.map((m) => m.role)).toEqual(pending.map((m) => m.role));
    // The calls go as they are; the short result whole; both large ones cut, each saying so.
    expect(sent[0]).toEqual(pending[0]);
    expect(sent[3]).toEqual(pending[3]);
    expect(sent[5]).toEqual(pending[5]);
    for (const i of [1, 2]) {
      const content = sent[i]!.content!;
      expect(content).toMatch(/\[cut to fit the prompt: the first \d+ of \d+ tokens of this result\]$/);
      expect(pending[i]!.content!.startsWith(content.slice(0, 200))).toBe(true);
    }
    // Within the share of what the system layer and the message leave.
    const exchangeTokens = sent.reduce((sum, m) => sum + counter.message(m), 0);
    const withoutExchange = assembleContext(
      input({ budget, history: [], knowledge: [], context: {}, summary: null, tools: [] }),
      counter,
    );
    expect(exchangeTokens).toBeLessThanOrEqual(
      Math.ceil((budget - withoutExchange.tokens) * TOOL_EXCHANGE_SHARE),
    );
    // The session's tool stays offered, so that the model can go on.
    expect(a.tools).toEqual([tool]);

    // What is logged is what was sent.
    const logged = a.parts.filter((p) => p.part === 'pending');
    expect(logged.map((p) => p.tokens)).toEqual(sent.map((m) => counter.message(m)));
    expect(logged.every((p) => p.kept)).toBe(true);
    expect(logged.filter((p) => /^tool result shortened from \d+ tokens/.test(p.reason))).toHaveLength(2);
    expect(logged.map((p) => p.item)).toEqual([
      'order_status, order_status',
      'order_status',
      'order_status',
      'order_status',
      'order_status',
    ]);
  });

  it('leaves out an exchange that does not fit even cut, with the tools, and tells the model', () => {
    const calls = Array.from({ length: 40 }, () => 'Order shipped.');
    const pending = toolRound(calls);
    const budget = 600;
    const a = assembleContext(input({ pending, budget }), counter);
    expect(a.withoutTools).toBe(true);
    expect(a.tokens).toBeLessThanOrEqual(budget);
    expect(a.tools).toEqual([]);
    expect(a.messages.at(-1)).toEqual({ role: 'user', content: 'When will my order arrive?' });
    expect(a.messages.some((m) => m.role === 'tool' || (m.role === 'assistant' && m.tool_calls))).toBe(false);
    expect(a.messages[0]!.content).toContain(SECTION.toolsLeftOut);
    const logged = a.parts.filter((p) => p.part === 'pending');
    expect(logged).toHaveLength(pending.length);
    expect(
      logged.every((p) => !p.kept && p.reason.startsWith('over budget even with every tool result cut')),
    ).toBe(true);
    expect(a.parts.find((p) => p.part === 'tools')).toMatchObject({ kept: false, item: 'order_status' });
  });

  it('logs every part with its reason at DEBUG, one event name per line', () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'debug' },
      new Writable({
        write(chunk, _enc, done) {
          for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
          done();
        },
      }),
    );
    const a = assembleContext(input({ history: conversation(12), historyLimit: 4 }), counter);
    logContext(logger, a, 'reply');
    const parts = lines.filter((l) => l.event === 'llm.context_part');
    expect(parts).toHaveLength(a.parts.length);
    expect(parts.find((l) => l.part === 'history' && l.kept === false)).toMatchObject({
      reason: 'beyond historyLimit',
      item: 8,
    });
    expect(lines.find((l) => l.event === 'llm.context')).toMatchObject({
      tokens: a.tokens,
      historyDropped: 8,
    });
    expect(lines.every((l) => typeof l.event === 'string')).toBe(true);
  });
});

describe('history rows as chat messages', () => {
  it('turns a tool row into the call and its result, and leaves status rows out', () => {
    const items = historyItems([
      { seq: 1, role: 'system', content: 'session started', payload: {} },
      { seq: 2, role: 'user', content: 'Where is A1?', payload: {} },
      {
        seq: 3,
        role: 'tool',
        content: 'shipped',
        payload: { tool: 'order_status', callId: 'call_9', arguments: '{"order":"A1"}' },
      },
      { seq: 4, role: 'assistant', content: 'It shipped.', payload: {} },
    ]);
    expect(items.map((i) => i.seq)).toEqual([2, 3, 4]);
    expect(items[1]!.messages).toEqual([
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_9', type: 'function', function: { name: 'order_status', arguments: '{"order":"A1"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_9', content: 'shipped' },
    ]);
  });
});

describe('summary request', () => {
  it('folds the previous summary and the messages in, and fits the budget by leaving the oldest lines out', () => {
    const r = summaryRequest('Earlier: bought a kettle.', conversation(200), counter, 700, 100);
    expect(r.messages[0]).toEqual({ role: 'system', content: SUMMARY_INSTRUCTIONS });
    const user = r.messages[1]!.content!;
    expect(user.startsWith('Previous summary:\nEarlier: bought a kettle.\n\nMessages:\n')).toBe(true);
    expect(user).toContain('message number 200 ');
    expect(user).not.toContain('message number 1 ');
    expect(counter.request(r.messages)).toBeLessThanOrEqual(700);
    expect(r.maxTokens).toBe(100);
  });
});

describe('knowledge chunks and queries', () => {
  it('cuts documents at headings and size, each chunk carrying its heading', () => {
    const doc = `# Shop\n\nWelcome.\n\n## Shipping\n\n${'We ship worldwide within five days. '.repeat(30)}\n\n## Refunds\n\nRefunds take 14 days.`;
    const chunks = chunkDocument(doc, 60, counter);
    expect(chunks.every((c) => c.tokens <= 60)).toBe(true);
    expect(chunks[0]!.content).toBe('# Shop\n\nWelcome.');
    const shipping = chunks.filter((c) => c.content.includes('worldwide'));
    expect(shipping.length).toBeGreaterThan(1);
    expect(shipping.every((c) => c.content.startsWith('## Shipping\n\n'))).toBe(true);
    expect(chunks.at(-1)!.content).toBe('## Refunds\n\nRefunds take 14 days.');
    expect(chunkDocument('   \n\n ', 60, counter)).toEqual([]);
  });

  it('cuts text inside a character cleanly, and the next cut is not disturbed by the first', () => {
    const parrots = '🦜'.repeat(100); // three tokens each: a cut at 32 falls inside the eleventh
    for (let i = 0; i < 3; i++) expect(counter.truncate(parrots, 32)).toBe('🦜'.repeat(10));
    expect(counter.truncate('plain words here', 2)).toBe('plain words');
  });

  it('cuts a run without spaces on character boundaries: the chunks put together are the text', () => {
    for (const text of ['🦜'.repeat(700), `x${'𓀁'.repeat(500)}`, '€'.repeat(900)]) {
      const chunks = chunkDocument(text, 32, counter);
      expect(chunks.length).toBeGreaterThan(1);
      expect(chunks.map((c) => c.content).join('')).toBe(text);
      expect(chunks.every((c) => !hasInvalidText(c.content) && !c.content.includes('\uFFFD'))).toBe(true);
      expect(chunks.every((c) => c.tokens <= 32)).toBe(true);
    }
  });

  it('asks for any of the words, with nothing the query syntax could misread', () => {
    expect(anyWordQuery('How long does shipping to Canada take?')).toBe(
      'How or long or does or shipping or to or Canada or take',
    );
    expect(anyWordQuery('"quoted" -not OR (x) & y | z')).toBe('quoted or not or x or y or z');
    expect(anyWordQuery('?!')).toBe('');
  });
});
