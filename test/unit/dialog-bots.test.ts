import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadBots } from '../../src/config/bots.ts';
import { tempDir } from '../helpers/database.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await fs.rm(d, { recursive: true, force: true });
});

async function config(bots: Record<string, Record<string, string>>): Promise<string> {
  const root = await tempDir('sbt-bots-');
  dirs.push(root);
  for (const [bot, files] of Object.entries(bots)) {
    await fs.mkdir(path.join(root, 'bots', bot), { recursive: true });
    for (const [name, text] of Object.entries(files))
      await fs.writeFile(path.join(root, 'bots', bot, name), text);
  }
  return root;
}

describe('loadBots with dialog scripts', () => {
  it('gives a bot with .bas files a dialog handler, with the dialog limits of bot.json', async () => {
    const root = await config({
      scripted: { 'start.bas': 'TALK "hi"', 'bot.json': '{"dialog": {"maxVariables": 5}}' },
      plain: { 'bot.json': '{}' },
    });
    const bots = await loadBots(root);
    const scripted = bots.get('scripted');
    expect(scripted.settings.dialog).toEqual({
      maxVariables: 5,
      maxVariableBytes: 1_048_576,
      maxStepsPerTurn: 100_000,
      maxHearTries: 3,
      maxCallDepth: 64,
      maxContextEntries: 100,
      maxSuggestions: 50,
      maxTools: 128,
    });
    expect(typeof scripted.handler.onStart).toBe('function');
    expect(typeof scripted.handler.onEnd).toBe('function');
    expect(bots.get('plain').handler.onStart).toBeUndefined();
  });

  it('refuses unknown or out-of-range dialog settings', async () => {
    const root = await config({ a: { 'start.bas': 'TALK 1', 'bot.json': '{"dialog": {"maxSteps": 5}}' } });
    await expect(loadBots(root)).rejects.toThrow(/dialog: Unrecognized key: "maxSteps"/);
    const low = await config({
      a: { 'start.bas': 'TALK 1', 'bot.json': '{"dialog": {"maxStepsPerTurn": 5}}' },
    });
    await expect(loadBots(low)).rejects.toThrow(/dialog\.maxStepsPerTurn/);
  });

  it('refuses to start with a script that does not compile, naming file, line and column', async () => {
    const root = await config({ broken: { 'start.bas': 'TALK "ok"\nPRINT 1' } });
    const err = await loadBots(root).catch((e: Error) => e);
    expect(err).toMatchObject({ name: 'BotConfigError' });
    expect((err as Error).message).toBe(
      `${path.join(root, 'bots/broken/start.bas')}:2:1: unknown statement "PRINT"`,
    );
  });

  it('refuses a bot with both handler.ts and scripts', async () => {
    const root = await config({ both: { 'start.bas': 'TALK 1', 'handler.ts': 'export default {}' } });
    await expect(loadBots(root)).rejects.toThrow(/holds both handler\.ts and \.bas scripts; keep one/);
  });

  it('hands the injected LLM and fallback to script bots', async () => {
    const root = await config({ s: { 'start.bas': 'TALK 1' } });
    const asked: string[] = [];
    const bots = await loadBots(root, {
      dialogServices: (bot) => {
        asked.push(bot);
        return { fallback: () => undefined };
      },
    });
    expect(bots.names()).toEqual(['default', 's']);
    expect(asked).toEqual(['s']);
  });
});
