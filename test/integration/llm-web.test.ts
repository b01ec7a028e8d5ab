import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebAdapter, loadWebConfig } from '../../adapters/web/index.ts';
import { tempDir } from '../helpers/database.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { FakeOpenAi } from '../helpers/openai-server.ts';
import { TestSocket, wsUrl } from '../helpers/ws-client.ts';

const ANSWER = 'A kettle boils a litre of water in about three minutes, quietly.';

describe('LLM streaming reaches the web widget as chunk frames', () => {
  const fake = new FakeOpenAi();
  let running: RunningHub;
  let dir: string;
  let socket: TestSocket | undefined;

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
    running = await startTestHub({ configDir: dir }, { adapters: [createWebAdapter(loadWebConfig({}))] });
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
});
