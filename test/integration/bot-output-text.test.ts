import fs from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnvelopeInput } from '../../src/envelope.ts';
import { MAX_TOOL_RESULT_CHARS } from '../../src/llm/tools.ts';
import { getBotMemory } from '../../src/store/memory.ts';
import { listMessages } from '../../src/store/messages.ts';
import { findOpenSnapshotByKey } from '../../src/store/sessions.ts';
import { tempDir } from '../helpers/database.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { FakeOpenAi } from '../helpers/openai-server.ts';
import { settled } from '../helpers/settled.ts';

async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(root, name);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
  }
}

const wa = (bot: string, from: string, n: number, text: string): EnvelopeInput => ({
  id: `whatsapp:wamid.${bot}.${from}.${n}`,
  channel: 'whatsapp',
  bot,
  from: { id: from },
  text,
  receivedAt: new Date().toISOString(),
});

/**
 * What a bot makes of a person's text (a script's LEFT, a TypeScript bot's values, an LLM tool's
 * result) reaches PostgreSQL only as text it takes: no NUL, no half of a surrogate pair. Before,
 * one such character made the turn's commit fail on every retry, and the person got nothing.
 * Through the whole hub: ingress, the in-process queue (which would retry the turn), the engine.
 */
describe('text a bot produces is committed (PostgreSQL)', () => {
  const fake = new FakeOpenAi();
  const log = capturingLogger();
  let toolServer: Server;
  let toolBody = '';
  let toolCalls = 0;
  let running: RunningHub;

  beforeAll(async () => {
    await fake.start();
    toolServer = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        toolCalls++;
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(toolBody);
      });
    });
    await new Promise<void>((r) => toolServer.listen(0, '127.0.0.1', r));
    const toolUrl = `http://127.0.0.1:${(toolServer.address() as AddressInfo).port}/lookup`;
    const configDir = await tempDir('sbt-bot-text-');
    await writeFiles(path.join(configDir, 'bots'), {
      'initials/start.bas': 'REM nothing to say first\n',
      // Every text function on a person's text that starts and ends with an emoji.
      'initials/message.bas': [
        'TALK LEFT(message, 1) + "|" + RIGHT(message, 1) + "|" + MID(message, 3, 2) + "|" + STR(INSTR(message, "hi"))',
        'TALK JOIN(SPLIT(LEFT(message, 3), ""), ",") + "|" + REPLACE(LEFT(message, 2), "", "+")',
        '',
      ].join('\n'),
      'typed/handler.ts': [
        'export default {',
        '  onStart() {},',
        '  onMessage(ctx) {',
        "    ctx.talk('nul \\u0000 half \\uD83D', { suggestions: [{ text: 'pick \\u0000' }] });",
        "    ctx.set('bad', { text: 'x\\uDE00', ['k\\u0000']: [1, 'y\\u0000'] });",
        "    ctx.memory.set('bad', 'm\\u0000');",
        "    ctx.log('bad.event', { note: 'e\\uD800' });",
        "    ctx.record({ role: 'tool', text: 'note \\u0000' });",
        '  },',
        '};',
        '',
      ].join('\n'),
      'tooled/bot.json': JSON.stringify({
        llm: {
          baseUrl: fake.url,
          model: 'fake',
          maxRetries: 0,
          tools: [
            {
              name: 'lookup',
              description: 'Looks it up',
              parameters: { type: 'object', properties: { q: { type: 'string' } } },
              http: { url: toolUrl },
            },
          ],
        },
      }),
      'tooled/start.bas': 'USE TOOL "lookup"\n',
    });
    running = await startTestHub(
      { configDir, queueConcurrency: 8, queueRetryBaseMs: 5 },
      { logger: log.logger },
    );
    // The model calls the tool once, then answers with what it got.
    fake.handle((r) =>
      r.body.messages.at(-1)!.role === 'tool'
        ? { text: 'Found it.' }
        : { toolCalls: [{ name: 'lookup', arguments: { q: 'it' } }] },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await fake.stop();
    await new Promise((r) => toolServer?.close(r));
  });

  const historyOf = async (bot: string, from: string) => {
    const snap = await findOpenSnapshotByKey(running.hub.db, { bot, channel: 'whatsapp', nativeKey: from });
    expect(snap, `${bot}'s session of ${from}`).toBeDefined();
    return { snap: snap!, messages: await listMessages(running.hub.db, snap!.session.id, { limit: 50 }) };
  };

  it("counts a script's text functions in characters: an emoji is never cut in half", async () => {
    const text = '😀 hi 🎉';
    await running.hub.ingress.accept(wa('initials', '+4915100001', 1, text));
    await settled(running.hub);
    const { messages } = await historyOf('initials', '+4915100001');
    expect(messages.map((m) => [m.role, m.content])).toEqual([
      ['user', text],
      ['assistant', '😀|🎉|hi|3'],
      ['assistant', '😀, ,h|😀+ '],
    ]);
  });

  it("cleans NUL and lone surrogates out of everything a TypeScript bot's turn writes, and says so", async () => {
    const from = '+4915100002';
    const env = wa('typed', from, 1, 'go');
    await running.hub.ingress.accept(env);
    await settled(running.hub);
    const { snap, messages } = await historyOf('typed', from);
    expect(messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'go'],
      ['assistant', 'nul \uFFFD half \uFFFD'],
      ['tool', 'note \uFFFD'],
    ]);
    expect(messages[1]!.payload.suggestions).toEqual([{ text: 'pick \uFFFD' }]);
    expect(snap.state.variables.bad).toEqual({ text: 'x\uFFFD', 'k\uFFFD': [1, 'y\uFFFD'] });
    expect(await getBotMemory(running.hub.db, 'typed', 'bad')).toBe('m\uFFFD');
    const { rows } = await running.hub.db.query<{ data: unknown }>(
      `SELECT data FROM session_events WHERE session_id = $1 AND type = 'bad.event'`,
      [snap.session.id],
    );
    expect(rows).toEqual([{ data: { note: 'e\uFFFD' } }]);
    const [line] = log.about('turn.text_cleaned', env.id);
    expect(line).toMatchObject({ level: 40, sessionId: snap.session.id, bot: 'typed' });
    expect(line!.fields).toEqual(
      expect.arrayContaining([
        'replies.0.content',
        'replies.0.payload.suggestions.0.text',
        'notes.0.content',
        'state.variables.bad.text',
        // The key as the bot wrote it (it is cleaned too: `k\uFFFD` in the state).
        'state.variables.bad.k\u0000',
        'state.variables.bad.k\u0000.1',
        'memory.0.value',
        'events.0.data.note',
      ]),
    );
  });

  it("an HTTP tool's body with a NUL byte: the answer commits, the tool runs once", async () => {
    toolBody = 'abc\u0000def';
    toolCalls = 0;
    const requests = fake.requests.length;
    const from = '+4915100003';
    await running.hub.ingress.accept(wa('tooled', from, 1, 'look it up'));
    await settled(running.hub);
    const { messages } = await historyOf('tooled', from);
    expect(messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'look it up'],
      ['tool', 'abc\uFFFDdef'],
      ['assistant', 'Found it.'],
    ]);
    expect(toolCalls).toBe(1);
    expect(fake.requests.length - requests).toBe(2);
  });

  it("cuts a tool's long result on a character's edge, not inside an emoji", async () => {
    toolBody = `${'a'.repeat(MAX_TOOL_RESULT_CHARS - 1)}😀${'b'.repeat(100)}`;
    const from = '+4915100004';
    await running.hub.ingress.accept(wa('tooled', from, 1, 'look it up'));
    await settled(running.hub);
    const { messages } = await historyOf('tooled', from);
    expect(messages.map((m) => m.role)).toEqual(['user', 'tool', 'assistant']);
    // The emoji that would have been cut is left out whole: nothing was cleaned.
    expect(messages[1]!.content).toBe(`${'a'.repeat(MAX_TOOL_RESULT_CHARS - 1)}… (cut)`);
  });
});
