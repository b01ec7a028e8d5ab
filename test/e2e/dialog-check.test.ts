import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/hub.ts';

/** Runs `switchboard check [args]` as a real process. */
function check(args: string[], configDir: string, cwd = REPO_ROOT) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/switchboard.js'), 'check', ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', CONFIG_DIR: configDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('switchboard check', () => {
  let config: string;

  beforeAll(async () => {
    config = await tempDir('sbt-check-');
    const write = async (bot: string, file: string, text: string) => {
      await fs.mkdir(path.join(config, 'bots', bot), { recursive: true });
      await fs.writeFile(path.join(config, 'bots', bot, file), text);
    };
    await write('good', 'start.bas', 'TALK "hi"\nHEAR x AS NUMBER\nRUN "next.bas"\n');
    await write('good', 'next.bas', 'TALK "next"\n');
    await write('broken', 'start.bas', 'TALK "hi\nIF x THEN\n  TALK 1\n');
    await write('broken', 'message.bas', 'PRINT message\nRUN "missing.bas"\nx = NOPE(1)\n');
    await write('settings-only', 'bot.json', '{}');
  });
  afterAll(async () => {
    await fs.rm(config, { recursive: true, force: true });
  });

  it('prints every error as file:line:column and exits non-zero', async () => {
    const res = await check([], config, config);
    expect(res.code).toBe(1);
    expect(res.stdout.trim().split('\n')).toEqual([
      'bots/broken/message.bas:1:1: unknown statement "PRINT"',
      'bots/broken/message.bas:2:1: RUN: this bot has no script missing.bas',
      'bots/broken/message.bas:3:5: unknown function NOPE',
      'bots/broken/start.bas:1:6: this text has no closing quote (")',
      'bots/broken/start.bas:2:1: IF has no END IF',
      '5 errors in 4 scripts in 3 bots',
    ]);
  });

  it('checks one bot when named, and exits 0 when its scripts are fine', async () => {
    const res = await check(['good'], config);
    expect(res).toMatchObject({ code: 0, stdout: '2 scripts in 1 bot: no errors\n' });
  });

  it('refuses an unknown bot', async () => {
    const res = await check(['nope'], config);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe('switchboard: no bot named "nope"\n');
  });

  it("passes on this repository's own bots", async () => {
    const res = await check([], path.join(REPO_ROOT, 'config'));
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^\d+ scripts in \d+ bots: no errors\n$/);
  });
});
