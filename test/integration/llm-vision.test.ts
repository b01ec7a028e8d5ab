import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/database.ts';
import { PNG_1X1 } from '../helpers/files.ts';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { FakeOpenAi } from '../helpers/openai-server.ts';

/** `llm.vision: true`: the pictures a person sends go to the model with the message; without it, they do not. */
describe('LLM vision (a local OpenAI-compatible server)', () => {
  const fake = new FakeOpenAi();
  let running: RunningHub;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    await fake.start();
    const configDir = await tempDir('sbt-vision-');
    for (const [bot, vision] of [
      ['seer', true],
      ['blind', false],
    ] as const) {
      await mkdir(path.join(configDir, 'bots', bot), { recursive: true });
      await writeFile(
        path.join(configDir, 'bots', bot, 'bot.json'),
        JSON.stringify({ llm: { baseUrl: fake.url, model: 'fake-vision', vision } }),
      );
    }
    running = await startTestHub({ configDir });
    api = apiClient(running.url);
  });
  afterAll(async () => {
    await running?.stop();
    await fake.stop();
  });

  async function ask(bot: string) {
    const { token } = await api.createSession(bot);
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(PNG_1X1)], { type: 'image/png' }), 'kettle.png');
    const up = await fetch(`${running.url}/api/session/files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    const { file_id } = (await up.json()) as { file_id: string };
    const before = fake.requests.length;
    const res = await api.chat(token, 'what is broken here?', { files: [file_id] });
    expect(res.status).toBe(200);
    return fake.requests.slice(before).at(-1)!.body.messages.at(-1) as { role: string; content: unknown };
  }

  it('sends the photo as an image part of the user message when the model sees images', async () => {
    expect(await ask('seer')).toEqual({
      role: 'user',
      content: [
        { type: 'text', text: 'what is broken here?' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG_1X1.toString('base64')}` } },
      ],
    });
  });

  it('sends text only to a model without vision', async () => {
    expect(await ask('blind')).toEqual({ role: 'user', content: 'what is broken here?' });
  });
});
