import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebAdapter, loadWebConfig } from '../../adapters/web/index.ts';
import { tempDir } from '../helpers/database.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { chunkEvent, endless, FakeOpenAi } from '../helpers/openai-server.ts';
import { TestSocket, wsUrl } from '../helpers/ws-client.ts';

const ANSWER = 'A kettle boils a litre of water in about three minutes, quietly.';
const APOLOGY = 'Sorry, something went wrong on my side. Please try again.';
/** The hasty bot's limits: small, so that a server that never ends is given up on quickly. */
const HASTY = { timeoutMs: 300, maxDurationMs: 3_000, maxRetries: 0, replyTokens: 16 };

describe('LLM streaming reaches the web widget as chunk frames', () => {
  const fake = new FakeOpenAi();
  let running: RunningHub;
  let dir: string;
  let socket: TestSocket | undefined;
  const logs = capturingLogger('warn');

  beforeAll(async () => {
    await fake.start();
    fake.handle(() => ({ text: ANSWER }));
    dir = await tempDir('sbt-llm-web-');
    // A bot of settings only: with an LLM, the LLM answers every message.
    await fs.mkdir(path.join(dir, 'bots/default'), { recursive: true });
    await fs.writeFile(
      path.join(dir, 'bots/default/bot.json'),
      JSON.stringify({ greeting: 'Hi, ask me about kettles.', llm: { baseUrl: fake.url, model: 'm' } }),
    );
    await fs.mkdir(path.join(dir, 'bots/hasty'), { recursive: true });
    await fs.writeFile(
      path.join(dir, 'bots/hasty/bot.json'),
      JSON.stringify({ greeting: 'Hi, quickly.', llm: { baseUrl: fake.url, model: 'm', ...HASTY } }),
    );
    running = await startTestHub(
      { configDir: dir },
      { adapters: [createWebAdapter(loadWebConfig({}))], logger: logs.logger },
    );
  });
  afterAll(async () => {
    socket?.ws.terminate();
    await running?.stop();
    await fake.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('sends the parts as they are written, then the reply they add up to', async () => {
    socket = await TestSocket.open(wsUrl(running.url));
    await socket.hello({ bot: 'default' });
    await socket.reply('Hi, ask me about kettles.');
    socket.send({ type: 'message', id: 'q1', text: 'How fast is it?' });
    const reply = await socket.reply(ANSWER);
    const chunks = socket.frames.filter((f) => f.type === 'chunk');
    expect(chunks.length).toBeGreaterThan(5);
    expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
    expect(chunks.map((c) => c.text).join('')).toBe(reply.text);
    expect(new Set(chunks.map((c) => c.inReplyTo)).size).toBe(1);
    // Every part arrived before the reply that replaces them.
    expect(socket.frames.indexOf(reply)).toBeGreaterThan(socket.frames.indexOf(chunks.at(-1)!));
    expect(fake.requests.at(-1)!.body.stream).toBe(true);
    expect(fake.requests.at(-1)!.body.messages.at(-1)).toEqual({ role: 'user', content: 'How fast is it?' });
  });

  it("a stream that never ends is given up on within the bot's bounds: the person gets the apology", async () => {
    const hasty = await TestSocket.open(wsUrl(running.url));
    try {
      await hasty.hello({ bot: 'hasty' });
      await hasty.reply('Hi, quickly.');
      const failures = () => logs.lines.filter((l) => l.event === 'llm.request_failed' && l.bot === 'hasty');

      // Keep-alive comments only: the idle timeout (timeoutMs) ends it.
      fake.handle(() => endless(200, 'text/event-stream', () => ': keep-alive\n\n', 20));
      hasty.send({ type: 'message', id: 'k1', text: 'Are you there?' });
      await hasty.reply(APOLOGY, 10_000);
      expect(failures().at(-1)).toMatchObject({
        err: `the LLM API did not answer within ${HASTY.timeoutMs} ms`,
      });

      // Text without end, max_tokens ignored: not read past what replyTokens allows.
      fake.handle(() => endless(200, 'text/event-stream', () => chunkEvent({ content: 'la ' })));
      hasty.send({ type: 'message', id: 'k2', text: 'Sing for me' });
      await hasty.reply(APOLOGY, 10_000);
      expect(failures().at(-1)!.err).toContain(`max_tokens ${HASTY.replyTokens}`);
      expect(failures()).toHaveLength(2);
    } finally {
      fake.handle(() => ({ text: ANSWER }));
      hasty.ws.terminate();
    }
  });
});
