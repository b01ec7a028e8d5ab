import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBots } from '../../src/config/bots.ts';
import { createTestDatabase, type TestDatabase, tempDir } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/hub.ts';

function cli(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/switchboard.js'), ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'warn', ...env },
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

describe('switchboard agent add|list|remove', () => {
  let database: TestDatabase;
  let env: Record<string, string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    env = { DATABASE_URL: database.url };
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('adds an agent (id and token printed once), lists it, refuses a duplicate, removes it', async () => {
    const add = await cli(
      [
        'agent',
        'add',
        '--name',
        'Ana Lima',
        '--email',
        'ana@example.com',
        '--password',
        'correct horse battery',
        '--role',
        'supervisor',
        '--bots',
        'default,support',
        '--queues',
        'billing',
        '--capacity',
        '4',
        '--json',
      ],
      env,
    );
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    const { agent_id, token } = JSON.parse(add.stdout) as { agent_id: string; token: string };
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const list = await cli(['agent', 'list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(
      `${agent_id}\tana@example.com\tAna Lima\tsupervisor\tdefault,support\tbilling\t4\toffline`,
    );

    const again = await cli(
      ['agent', 'add', '--name', 'A', '--email', 'ANA@example.com', '--password', 'correct horse battery'],
      env,
    );
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists already/);

    const weak = await cli(
      ['agent', 'add', '--name', 'B', '--email', 'b@example.com', '--password', 'short'],
      env,
    );
    expect(weak.code).toBe(1);
    expect(weak.stderr).toMatch(/--password/);

    const remove = await cli(['agent', 'remove', 'ana@example.com'], env);
    expect(remove.code).toBe(0);
    expect((await cli(['agent', 'list'], env)).stdout).not.toContain(agent_id);
  }, 180_000);
});

describe('reserved bot names', () => {
  let config: string;
  beforeAll(async () => {
    config = await tempDir('sbt-reserved-');
  });
  afterAll(async () => {
    await fs.rm(config, { recursive: true, force: true });
  });

  it.each(['console', 'docs', 'api', 'webhooks', 'ws'])(
    'a bot folder named %s is refused at start',
    async (name) => {
      await fs.rm(path.join(config, 'bots'), { recursive: true, force: true });
      await fs.mkdir(path.join(config, 'bots', name), { recursive: true });
      await expect(loadBots(config)).rejects.toThrow(
        new RegExp(`"${name}" is a route of the hub.*reserved.*rename`),
      );
    },
  );

  it('switchboard start says so and exits', async () => {
    await fs.rm(path.join(config, 'bots'), { recursive: true, force: true });
    await fs.mkdir(path.join(config, 'bots', 'console'), { recursive: true });
    const res = await cli(['start'], { CONFIG_DIR: config, PORT: '0', DATA_DIR: path.join(config, 'data') });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/console.*is a route of the hub/);
  });
});
