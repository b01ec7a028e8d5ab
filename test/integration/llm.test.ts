import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TurnChunk } from '../../src/bus/bus.ts';
import { SECTION } from '../../src/llm/context.ts';
import { MAX_TOOL_CALLS_PER_ROUND } from '../../src/llm/service.ts';
import { SUMMARY_INSTRUCTIONS } from '../../src/llm/summary.ts';
import { tokenCounter } from '../../src/llm/tokens.ts';
import { listMessages } from '../../src/store/messages.ts';
import { createSession, loadSnapshot } from '../../src/store/sessions.ts';
import { tempDir } from '../helpers/database.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { FakeOpenAi, lastUserText, type RecordedRequest } from '../helpers/openai-server.ts';
import { until } from '../helpers/until.ts';

const KEY_VARIABLE = 'SB_TEST_LLM_KEY';
const SHOP_PROMPT = 'You are the assistant of a kettle shop.';
const counter = tokenCounter('o200k_base');

async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(root, name);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
  }
}

/** What the stock endpoint answers for a product named `catalogue…`: ~12 KB of ordinary JSON. */
function catalogue(product: string): unknown[] {
  return Array.from({ length: 150 }, (_, i) => ({
    sku: `${product}-${i}`,
    name: `Kettle model ${i}`,
    litres: 1 + (i % 4) / 2,
    in_stock: i % 7,
  }));
}

const isSummary = (r: RecordedRequest) => r.body.messages[0]?.content === SUMMARY_INSTRUCTIONS;
const systemOf = (r: RecordedRequest) => r.body.messages[0]!.content ?? '';

describe('LLM replies through a real hub (PostgreSQL, in-process queue)', () => {
  const fake = new FakeOpenAi();
  let stockServer: Server;
  const stockRequests: unknown[] = [];
  let running: RunningHub;
  let api: ReturnType<typeof apiClient>;
  let configDir: string;

  beforeAll(async () => {
    await fake.start();
    stockServer = createServer((req, res) => {
      const body: Buffer[] = [];
      req.on('data', (c: Buffer) => body.push(c));
      req.on('end', () => {
        const parsed = JSON.parse(Buffer.concat(body).toString()) as { product?: unknown };
        stockRequests.push({ auth: req.headers.authorization, body: parsed });
        const product = String(parsed.product);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(product.startsWith('catalogue') ? catalogue(product) : { in_stock: 3 }));
      });
    });
    await new Promise<void>((r) => stockServer.listen(0, '127.0.0.1', r));
    const stockUrl = `http://127.0.0.1:${(stockServer.address() as AddressInfo).port}/stock`;
    process.env[KEY_VARIABLE] = 'sk-from-the-environment';
    process.env.SB_TEST_STOCK_TOKEN = 'Bearer stock-secret';

    configDir = await tempDir('sbt-llm-config-');
    const llm = (extra: Record<string, unknown> = {}) => ({
      baseUrl: fake.url,
      model: 'fake-model',
      apiKeyEnv: KEY_VARIABLE,
      maxRetries: 2,
      ...extra,
    });
    await writeFiles(path.join(configDir, 'bots'), {
      // No LLM: the fallback stays the default reply.
      'plain/bot.json': JSON.stringify({ defaultReply: 'No idea, sorry.' }),
      'plain/start.bas': 'TALK "Hello from plain."\n',
      'asker/message.bas': 'x = LLM "anything"\nTALK x\n',
      'shop/bot.json': JSON.stringify({
        defaultReply: 'Nothing to say.',
        llm: llm({
          systemPrompt: SHOP_PROMPT,
          personality: 'Warm and brief.',
          knowledge: { maxChunks: 2 },
          tools: [
            {
              name: 'order_status',
              description: 'Where an order is',
              parameters: { type: 'object', properties: { order: { type: 'string' } }, required: ['order'] },
              script: 'order_status.bas',
            },
            {
              name: 'stock',
              description: 'How many of a product are in stock',
              parameters: {
                type: 'object',
                properties: { product: { type: 'string' } },
                required: ['product'],
              },
              http: { url: stockUrl, headersFromEnv: { authorization: 'SB_TEST_STOCK_TOKEN' } },
            },
          ],
        }),
      }),
      'shop/start.bas': [
        'SET CONTEXT "plan" AS "Premium customer since 2020"',
        'USE KB "faq"',
        'USE TOOL "order_status"',
        'USE TOOL "stock"',
        'TALK "Welcome to the kettle shop."',
        '',
      ].join('\n'),
      'shop/tools/order_status.bas':
        'SET last_order = order\nTALK "Order " + order + " left the warehouse on 2024-05-02."\n',
      'shop/kb/faq/shipping.md':
        '# Shipping\n\nParcels to Canada take ten days by courier. We ship within two working days.\n',
      'shop/kb/faq/refunds.md':
        '# Refunds\n\nUnused kettles may be returned within 30 days for a full refund.\n',
      // A small budget, so that history is cut and summarised after a few messages.
      'tight/bot.json': JSON.stringify({
        llm: llm({
          systemPrompt: 'Be brief.',
          tokenBudget: 500,
          replyTokens: 100,
          summaryThreshold: 4,
          summaryTokens: 60,
        }),
      }),
      'tight/start.bas': 'REM nothing to say first\n',
      // A small budget and a tool: a round of calls can outgrow the budget even with every result cut.
      'cramped/bot.json': JSON.stringify({
        llm: llm({
          systemPrompt: 'Be brief.',
          tokenBudget: 600,
          replyTokens: 100,
          tools: [
            {
              name: 'stock',
              description: 'How many of a product are in stock',
              parameters: { type: 'object', properties: { product: { type: 'string' } } },
              http: { url: stockUrl },
            },
          ],
        }),
      }),
      'cramped/start.bas': 'USE TOOL "stock"\n',
      'scripted/bot.json': JSON.stringify({ llm: llm() }),
      'scripted/message.bas': 'answer = LLM "Answer briefly: " + message\nTALK "[" + answer + "]"\n',
      'typed/bot.json': JSON.stringify({ llm: llm({ systemPrompt: 'You are typed.' }) }),
      'typed/handler.ts': [
        'export default {',
        '  async onMessage(ctx) {',
        "    if (ctx.text === 'quiet') { ctx.talk('asked: ' + (await ctx.llm.ask('Say yes'))); return; }",
        '    await ctx.llm.reply();',
        '  },',
        '};',
        '',
      ].join('\n'),
    });
    running = await startTestHub({ configDir, queueConcurrency: 16 });
    api = apiClient(running.url);
  });

  afterAll(async () => {
    await running?.stop();
    await fake.stop();
    await new Promise((r) => stockServer?.close(r));
    await fs.rm(configDir, { recursive: true, force: true });
    delete process.env[KEY_VARIABLE];
    delete process.env.SB_TEST_STOCK_TOKEN;
  });

  beforeEach(() => {
    fake.handle((r) => ({ text: `echo: ${lastUserText(r)}` }));
  });

  const texts = (res: { json: { replies: { text: string }[] } }) => res.json.replies.map((r) => r.text);

  it('without an LLM configured, the fallback is the default reply and a script asking one fails clearly', async () => {
    const before = fake.requests.length;
    const s = await api.createSession('plain');
    const res = await api.chat(s.token, 'What is the meaning of life?');
    expect(res.status).toBe(200);
    expect(texts(res)).toEqual(['No idea, sorry.']);
    const history = await listMessages(running.hub.db, s.session_id, { limit: 10 });
    expect(history.map((m) => m.content)).toContain('Hello from plain.');

    const asker = await api.createSession('asker');
    const asked = await api.chat(asker.token, 'question');
    expect(texts(asked)).toEqual(['Sorry, something went wrong on my side. Please try again.']);
    const { rows } = await running.hub.db.query<{ data: { message: string } }>(
      "SELECT data FROM session_events WHERE session_id = $1 AND type = 'dialog.error'",
      [asker.session_id],
    );
    expect(rows.map((r) => r.data.message)).toEqual(['no LLM is configured for this bot']);
    expect(fake.requests.length).toBe(before);
  });

  it('assembles the layers in order within the budget, with the knowledge chunk about the question only', async () => {
    const s = await api.createSession('shop');
    const first = await api.chat(s.token, 'Hi, I bought a kettle last week.');
    expect(texts(first)).toEqual(['echo: Hi, I bought a kettle last week.']);
    const res = await api.chat(s.token, 'How long does shipping to Canada take?');
    expect(texts(res)).toEqual(['echo: How long does shipping to Canada take?']);

    const sent = fake.requests.at(-1)!;
    expect(sent.headers.authorization).toBe('Bearer sk-from-the-environment');
    expect(sent.body.model).toBe('fake-model');
    expect(sent.body.max_tokens).toBe(512);
    const system = systemOf(sent);
    const at = (text: string) => system.indexOf(text);
    expect(at(SHOP_PROMPT)).toBe(0);
    expect(at('Warm and brief.')).toBeGreaterThan(0);
    expect(at('## Knowledge')).toBeGreaterThan(at('Warm and brief.'));
    expect(at('[source: shipping.md]\n# Shipping\n\nParcels to Canada take ten days')).toBeGreaterThan(
      at('## Knowledge'),
    );
    expect(system).not.toContain('refunds.md');
    expect(system).not.toContain('Unused kettles');
    expect(at(`${SECTION.context}\n- plan: Premium customer since 2020`)).toBeGreaterThan(
      at('[source: shipping.md]'),
    );
    expect(system).not.toContain(SECTION.summary);
    expect(sent.body.tools!.map((t) => t.function.name)).toEqual(['order_status', 'stock']);
    expect(sent.body.messages.slice(1)).toEqual([
      { role: 'assistant', content: 'Welcome to the kettle shop.' },
      { role: 'user', content: 'Hi, I bought a kettle last week.' },
      { role: 'assistant', content: 'echo: Hi, I bought a kettle last week.' },
      { role: 'user', content: 'How long does shipping to Canada take?' },
    ]);
    const tokens = counter.request(sent.body.messages as never, sent.body.tools as never);
    expect(tokens).toBeLessThanOrEqual(4096 - 512);

    // A question about the other subject gets the other chunk.
    await api.chat(s.token, 'Can I return an unused kettle for a refund?');
    const refund = systemOf(fake.requests.at(-1)!);
    expect(refund).toContain('[source: refunds.md]');
    expect(refund).not.toContain('Parcels to Canada');
  });

  it('runs the tools the model calls, stores their results as tool messages, and sends them back for the answer', async () => {
    fake.handle((r) => {
      const last = r.body.messages.at(-1)!;
      if (last.role === 'user')
        return {
          toolCalls: [
            { id: 'call_a', name: 'order_status', arguments: { order: 'A-17' } },
            { id: 'call_b', name: 'stock', arguments: { product: 'kettle' } },
          ],
        };
      const results = r.body.messages.filter((m) => m.role === 'tool').map((m) => m.content);
      return { text: `Done: ${results.join(' | ')}` };
    });
    const s = await api.createSession('shop');
    const before = fake.requests.length;
    const res = await api.chat(s.token, 'Where is my order A-17, and do you have kettles?');
    const answer = 'Done: Order A-17 left the warehouse on 2024-05-02. | {"in_stock":3}';
    expect(texts(res)).toEqual([answer]);

    const [call, followUp] = fake.requests.slice(before);
    expect(call!.body.tool_choice).toBe('auto');
    expect(followUp!.body.messages.slice(-4)).toEqual([
      { role: 'user', content: 'Where is my order A-17, and do you have kettles?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_a',
            type: 'function',
            function: { name: 'order_status', arguments: '{"order":"A-17"}' },
          },
          { id: 'call_b', type: 'function', function: { name: 'stock', arguments: '{"product":"kettle"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_a', content: 'Order A-17 left the warehouse on 2024-05-02.' },
      { role: 'tool', tool_call_id: 'call_b', content: '{"in_stock":3}' },
    ]);
    expect(stockRequests.at(-1)).toEqual({ auth: 'Bearer stock-secret', body: { product: 'kettle' } });

    const history = await listMessages(running.hub.db, s.session_id, { limit: 50 });
    expect(history.map((m) => [m.role, m.content])).toEqual([
      ['system', 'session started'],
      ['assistant', 'Welcome to the kettle shop.'],
      ['user', 'Where is my order A-17, and do you have kettles?'],
      ['tool', 'Order A-17 left the warehouse on 2024-05-02.'],
      ['tool', '{"in_stock":3}'],
      ['assistant', answer],
    ]);
    expect(history[3]!.payload).toEqual({
      tool: 'order_status',
      callId: 'call_a',
      arguments: '{"order":"A-17"}',
    });
    expect(history[3]!.deliveryStatus).toBe('received');
    // The tool script's SET is part of the turn.
    const snapshot = await loadSnapshot(running.hub.db, s.session_id);
    expect(snapshot!.state.variables.last_order).toBe('A-17');

    // The next question sees the earlier exchange, tool results included, as the model made it.
    fake.handle((r) => ({
      text: `seen ${r.body.messages.filter((m) => m.role === 'tool').length} tool results`,
    }));
    expect(texts(await api.chat(s.token, 'Thanks!'))).toEqual(['seen 2 tool results']);
  });

  it("the person's history never shows tool rows: GET /api/session/messages (every page) and the chat replies", async () => {
    fake.handle((r) =>
      r.body.messages.at(-1)!.role === 'user'
        ? { toolCalls: [{ id: 'call_p', name: 'stock', arguments: { product: 'kettle' } }] }
        : { text: 'We have three.' },
    );
    const s = await api.createSession('shop');
    const res = await api.chat(s.token, 'Kettles in stock?');
    expect(res.json.replies.map((r: { role: string; text: string }) => [r.role, r.text])).toEqual([
      ['assistant', 'We have three.'],
    ]);
    // The raw tool result is in the store...
    const all = await listMessages(running.hub.db, s.session_id, { limit: 50 });
    expect(all.map((m) => m.role)).toContain('tool');

    // ...and nowhere the person reads their conversation.
    const shown = [
      ['system', 'session started'],
      ['assistant', 'Welcome to the kettle shop.'],
      ['user', 'Kettles in stock?'],
      ['assistant', 'We have three.'],
    ];
    const history = await api.history(s.token, '?limit=50');
    expect(history.status).toBe(200);
    expect(history.json.messages.map((m: { role: string; text: string }) => [m.role, m.text])).toEqual(shown);
    const newest = await api.history(s.token, `?before=${all.at(-1)!.seq + 1}&limit=2`);
    expect(newest.json.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant']);
    // Paged one row at a time, the pages count only what the person sees.
    const paged: string[] = [];
    for (let after = 0, i = 0; i < 10; i++) {
      const page = await api.history(s.token, `?after=${after}&limit=1`);
      if (page.json.messages.length === 0) break;
      paged.push(...page.json.messages.map((m: { role: string }) => m.role));
      after = page.json.next_after;
    }
    expect(paged).toEqual(shown.map(([role]) => role));

    // A resend of the same message reads its replies from the history through the same reader.
    const again = await api.chat(s.token, 'Kettles in stock?', { message_id: 'same' });
    const dup = await api.chat(s.token, 'Kettles in stock?', { message_id: 'same' });
    expect(dup.json.duplicate).toBe(true);
    expect(dup.json.replies.map((r: { role: string }) => r.role)).toEqual(['assistant']);
    expect(dup.json.replies.map((r: { text: string }) => r.text)).toEqual(texts(again));

    // An agent's note stays private; an agent's message is for the person (rows as handoff writes them).
    const last = (await listMessages(running.hub.db, s.session_id, { beforeSeq: 1e9, limit: 1 }))[0]!.seq;
    await running.hub.db.query(
      `INSERT INTO messages (session_id, seq, role, content, delivery_status, payload)
       VALUES ($1, $2, 'note', 'internal: refund approved', 'received', '{}'),
              ($1, $3, 'agent', 'Hello, this is Ana.', 'sent', '{"agentId": "ana"}')`,
      [s.session_id, last + 1, last + 2],
    );
    await running.hub.db.query('UPDATE sessions SET last_seq = $2 WHERE id = $1', [s.session_id, last + 2]);
    const tail = await api.history(s.token, `?after=${last}`);
    expect(tail.json.messages.map((m: { role: string; text: string }) => [m.role, m.text])).toEqual([
      ['agent', 'Hello, this is Ana.'],
    ]);
  });

  it('a tool call with arguments outside the schema goes back to the model as a tool error, and the tool never runs', async () => {
    fake.handle((r) => {
      const last = r.body.messages.at(-1)!;
      if (last.role === 'user')
        return {
          toolCalls: [
            { id: 'call_x', name: 'stock', arguments: { product: 'kettle', warehouse: 'all', debug: true } },
            { id: 'call_y', name: 'order_status', arguments: { order: 'C-3', last_order: 'forged' } },
          ],
        };
      return { text: 'Sorry, I could not look that up.' };
    });
    const s = await api.createSession('shop');
    const stockCalls = stockRequests.length;
    const before = fake.requests.length;
    const res = await api.chat(s.token, 'Stock and order C-3?');
    expect(texts(res)).toEqual(['Sorry, I could not look that up.']);
    expect(stockRequests.length).toBe(stockCalls);
    const followUp = fake.requests[before + 1]!;
    expect(followUp.body.messages.slice(-2)).toEqual([
      {
        role: 'tool',
        tool_call_id: 'call_x',
        content:
          'error: invalid arguments: warehouse: not a parameter of this tool; debug: not a parameter of this tool',
      },
      {
        role: 'tool',
        tool_call_id: 'call_y',
        content: 'error: invalid arguments: last_order: not a parameter of this tool',
      },
    ]);
    // The model was shown the closed schema.
    expect(followUp.body.tools!.find((t) => t.function.name === 'stock')!.function.parameters).toMatchObject({
      additionalProperties: false,
    });
    expect((await loadSnapshot(running.hub.db, s.session_id))!.state.variables.last_order).toBeUndefined();
  });

  it('answers after two ordinary lookups too large for the budget together: the results are cut to fit, not the answer', async () => {
    const answered = 'Both catalogues have kettles in stock.';
    fake.handle((r) =>
      r.body.messages.at(-1)!.role === 'user'
        ? {
            toolCalls: [
              { id: 'call_c1', name: 'stock', arguments: { product: 'catalogue-north' } },
              { id: 'call_c2', name: 'stock', arguments: { product: 'catalogue-south' } },
            ],
          }
        : { text: answered },
    );
    const s = await api.createSession('shop');
    const before = fake.requests.length;
    const res = await api.chat(s.token, 'What do both warehouses have?');
    expect(texts(res).at(-1)).toBe(answered);
    expect(fake.requests.length - before).toBe(2);

    const stored = (await listMessages(running.hub.db, s.session_id, { limit: 50 })).filter(
      (m) => m.role === 'tool',
    );
    expect(stored).toHaveLength(2);
    const sent = fake.requests.at(-1)!.body.messages.filter((m) => m.role === 'tool');
    expect(sent.map((m) => m.tool_call_id)).toEqual(['call_c1', 'call_c2']);
    for (const [i, m] of sent.entries()) {
      // Each result is the start of what the tool returned, and says it was cut.
      expect(m.content).toMatch(/\[cut to fit the prompt: the first \d+ of \d+ tokens of this result\]$/);
      expect(stored[i]!.content.startsWith(m.content!.slice(0, 100))).toBe(true);
      expect(m.content!.length).toBeLessThan(stored[i]!.content.length);
    }
    // Together the two stored results are more than the whole budget (4096 - 512).
    expect(stored.reduce((sum, m) => sum + counter.text(m.content), 0)).toBeGreaterThan(4096 - 512);
  });

  it('makes one last call without tools when the calls and results cannot fit even cut, instead of failing', async () => {
    // Every round asks for as many lookups as run (well within replyTokens); they pile up until
    // even their calls and cut results are more than the budget.
    fake.handle((r) =>
      r.body.tools
        ? {
            toolCalls: Array.from({ length: MAX_TOOL_CALLS_PER_ROUND }, (_, i) => ({
              name: 'stock',
              arguments: { product: `${'kettle model '.repeat(6)}${i}` },
            })),
          }
        : { text: 'I could not look that up just now.' },
    );
    const s = await api.createSession('cramped');
    const before = fake.requests.length;
    const res = await api.chat(s.token, 'How many of each?');
    expect(texts(res)).toEqual(['I could not look that up just now.']);
    const requests = fake.requests.slice(before);
    const last = requests.at(-1)!;
    // Before: rounds with the tool offered (fewer than maxToolRounds allows)…
    expect(requests.length).toBeGreaterThanOrEqual(2);
    expect(requests.length).toBeLessThan(4 + 1);
    expect(
      requests.slice(0, -1).every((r) => r.body.tools?.length === 1 && r.body.tool_choice === 'auto'),
    ).toBe(true);
    // …then the last: no tools offered, no tool exchange, and the model is told why.
    expect(last.body.tools).toBeUndefined();
    expect(last.body.messages.some((m) => m.role === 'tool' || m.tool_calls)).toBe(false);
    expect(systemOf(last)).toContain(SECTION.toolsLeftOut);
    expect(last.body.messages.at(-1)).toEqual({ role: 'user', content: 'How many of each?' });
  });

  it('runs at most MAX_TOOL_CALLS_PER_ROUND calls of one round, and tells the model the others were not run', async () => {
    const asked = MAX_TOOL_CALLS_PER_ROUND + 3;
    fake.handle((r) =>
      r.body.messages.at(-1)!.role === 'user'
        ? {
            toolCalls: Array.from({ length: asked }, (_, i) => ({
              id: `call_m${i}`,
              name: 'stock',
              arguments: { product: `kettle-${i}` },
            })),
          }
        : { text: 'Counted.' },
    );
    const s = await api.createSession('shop');
    const stockBefore = stockRequests.length;
    const res = await api.chat(s.token, 'Check every kettle');
    expect(texts(res).at(-1)).toBe('Counted.');
    expect(stockRequests.length - stockBefore).toBe(MAX_TOOL_CALLS_PER_ROUND);
    const sent = fake.requests.at(-1)!.body.messages.filter((m) => m.role === 'tool');
    expect(sent).toHaveLength(asked);
    expect(sent.slice(MAX_TOOL_CALLS_PER_ROUND).map((m) => m.content)).toEqual(
      Array(asked - MAX_TOOL_CALLS_PER_ROUND).fill(
        `error: not run: at most ${MAX_TOOL_CALLS_PER_ROUND} tool calls are run per round`,
      ),
    );
    const stored = (await listMessages(running.hub.db, s.session_id, { limit: 50 })).filter(
      (m) => m.role === 'tool',
    );
    expect(stored).toHaveLength(MAX_TOOL_CALLS_PER_ROUND);
  });

  it('bounds tool rounds: after maxToolRounds the model must answer in words', async () => {
    fake.handle((r) =>
      r.body.tool_choice === 'none'
        ? { text: 'Giving up on tools.' }
        : { toolCalls: [{ name: 'order_status', arguments: { order: 'B-2' } }] },
    );
    const s = await api.createSession('shop');
    const before = fake.requests.length;
    const res = await api.chat(s.token, 'Loop forever please');
    expect(texts(res).at(-1)).toBe('Giving up on tools.');
    expect(fake.requests.length - before).toBe(5); // maxToolRounds (4) rounds with tools, then one without
    const tools = (await listMessages(running.hub.db, s.session_id, { limit: 50 })).filter(
      (m) => m.role === 'tool',
    );
    expect(tools).toHaveLength(4);
  });

  it('streams to a web session as turn.chunk events, in order, adding up to the committed reply', async () => {
    const text = 'Our kettles boil a litre in three minutes, and they are quiet too.';
    fake.handle(() => ({ text }));
    const { snapshot } = await createSession(running.hub.db, { bot: 'shop', channel: 'web' });
    const sessionId = snapshot.session.id;
    const events: { type: string }[] = [];
    const unsubscribe = await running.hub.bus.subscribe(`session:${sessionId}`, (m) =>
      events.push(m as { type: string }),
    );
    try {
      const envelopeId = `web:${randomUUID()}`;
      await running.hub.ingress.accept({
        id: envelopeId,
        channel: 'web',
        bot: 'shop',
        from: { id: sessionId },
        text: 'Are your kettles fast?',
        receivedAt: new Date().toISOString(),
      });
      await until(
        async () => events.filter((e) => e.type === 'turn.completed').length,
        (n) => n === 1,
      );
      const chunks = events.filter((e): e is TurnChunk => e.type === 'turn.chunk');
      expect(chunks.length).toBeGreaterThan(5);
      expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
      expect(chunks.every((c) => c.sessionId === sessionId && c.envelopeId === envelopeId)).toBe(true);
      // Every chunk comes before the turn is announced.
      expect(events.findIndex((e) => e.type === 'turn.completed')).toBeGreaterThan(
        events.findLastIndex((e) => e.type === 'turn.chunk'),
      );
      const replies = (await listMessages(running.hub.db, sessionId, { limit: 50 })).filter(
        (m) => m.role === 'assistant',
      );
      expect(replies.at(-1)!.content).toBe(chunks.map((c) => c.text).join(''));
      expect(replies.at(-1)!.content).toBe(text);
      expect(fake.requests.at(-1)!.body.stream).toBe(true);
    } finally {
      await unsubscribe();
    }
  });

  it('other channels get the finished reply only: no stream, no chunks', async () => {
    const s = await api.createSession('shop');
    const events: { type: string }[] = [];
    const unsubscribe = await running.hub.bus.subscribe(`session:${s.session_id}`, (m) =>
      events.push(m as { type: string }),
    );
    try {
      await api.chat(s.token, 'Hello');
      expect(fake.requests.at(-1)!.body.stream).toBeUndefined();
      expect(events.some((e) => e.type === 'turn.chunk')).toBe(false);
    } finally {
      await unsubscribe();
    }
  });

  it('retries 429 and answers; a model that stays down gets the apology', async () => {
    fake.handle((r, i) =>
      i === failAt ? { status: 429, headers: { 'retry-after': '0' } } : { text: `echo: ${lastUserText(r)}` },
    );
    let failAt = fake.requests.length;
    const s = await api.createSession('scripted');
    const res = await api.chat(s.token, 'hello');
    expect(texts(res)).toEqual(['[echo: Answer briefly: hello]']);
    expect(fake.requests.length - failAt).toBe(2);

    failAt = -1;
    fake.handle(() => ({ status: 503 }));
    const down = await api.chat(s.token, 'anyone there?');
    expect(texts(down)).toEqual(['Sorry, something went wrong on my side. Please try again.']);
  });

  it('TypeScript bots use ctx.llm: reply streams and talks, ask only returns', async () => {
    const s = await api.createSession('typed');
    expect(texts(await api.chat(s.token, 'hi there'))).toEqual(['echo: hi there']);
    expect(systemOf(fake.requests.at(-1)!)).toBe('You are typed.');
    expect(texts(await api.chat(s.token, 'quiet'))).toEqual(['asked: echo: Say yes']);
  });

  it('cuts the oldest history to fit the budget, and summarises it once it grows, keeping the summary', async () => {
    let summaries = 0;
    fake.handle((r) => {
      if (isSummary(r)) {
        summaries++;
        return { text: `SUMMARY-${summaries}` };
      }
      return { text: `ok ${lastUserText(r)}` };
    });
    const s = await api.createSession('tight');
    const before = fake.requests.length;
    const sentence = (i: number) =>
      `m${i}: please remember that my favourite colour number ${i} is a shade of blue and green and teal`;
    const seqOf = new Map<string, number>();
    for (let i = 1; i <= 16; i++) {
      await api.chat(s.token, sentence(i));
      for (const m of await listMessages(running.hub.db, s.session_id, { limit: 200 }))
        seqOf.set(m.content, m.seq);
    }
    const requests = fake.requests.slice(before);
    const replies = requests.filter((r) => !isSummary(r));
    const summaryRequests = requests.filter(isSummary);
    expect(replies).toHaveLength(16);

    // Every reply request fits the budget and holds the newest history, contiguous, oldest first.
    for (const [n, r] of replies.entries()) {
      expect(counter.request(r.body.messages as never)).toBeLessThanOrEqual(400);
      const history = r.body.messages.slice(1, -1).map((m) => seqOf.get(m.content ?? '')!);
      expect(history.every((seq, i) => i === 0 || seq === history[i - 1]! + 1)).toBe(true);
      if (n > 0) expect(history.at(-1)).toBe(seqOf.get(sentence(n))! + 1); // the previous reply
    }
    // Early on everything fits; later the oldest messages are cut.
    expect(replies[2]!.body.messages).toHaveLength(1 + 4 + 1);
    const late = replies.at(-1)!.body.messages;
    expect(late.some((m) => m.content === sentence(1))).toBe(false);

    // Summaries: written when enough messages left the prompt, not every turn, each folding in the last.
    expect(summaryRequests.length).toBeGreaterThanOrEqual(2);
    expect(summaryRequests.length).toBeLessThan(8);
    const firstSummary = summaryRequests[0]!.body.messages[1]!.content!;
    expect(firstSummary.startsWith('Messages:\nPerson: m1:')).toBe(true);
    for (const [k, r] of summaryRequests.entries())
      if (k > 0)
        expect(
          r.body.messages[1]!.content!.startsWith(`Previous summary:\nSUMMARY-${k}\n\nMessages:\n`),
        ).toBe(true);

    // The session keeps the latest summary; the prompt carries it and only history after it.
    const snapshot = await loadSnapshot(running.hub.db, s.session_id);
    const kept = snapshot!.state.summary!;
    expect(kept.text).toBe(`SUMMARY-${summaryRequests.length}`);
    const last = replies.at(-1)!;
    expect(systemOf(last)).toBe(`Be brief.\n\n${SECTION.summary}\nSUMMARY-${summaryRequests.length}`);
    const lastHistory = last.body.messages.slice(1, -1).map((m) => seqOf.get(m.content ?? '')!);
    expect(Math.min(...lastHistory)).toBeGreaterThan(kept.throughSeq);
    // Once written, a summary is reused: the request after a summarising turn asks for none.
    const afterFirst = requests.indexOf(summaryRequests[0]!);
    expect(isSummary(requests[afterFirst + 2]!)).toBe(false);
    expect(systemOf(requests[afterFirst + 2]!)).toContain('SUMMARY-1');
  });
});
