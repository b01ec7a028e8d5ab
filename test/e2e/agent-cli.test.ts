import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { passwordMatches } from '../../src/agents/passwords.ts';
import { loadBots } from '../../src/config/bots.ts';
import { runSwitchboard } from '../helpers/cli.ts';
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

describe('switchboard agent add: the password off the command line', () => {
  let database: TestDatabase;
  let env: Record<string, string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    env = { DATABASE_URL: database.url, LOG_LEVEL: 'warn' };
  });
  afterAll(async () => {
    await database?.drop();
  });

  /** Whether the agent with this address signs in with `password`. */
  async function signsInWith(email: string, password: string): Promise<boolean> {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ password_hash: string }>(
        'SELECT password_hash FROM agents WHERE email = $1',
        [email],
      );
      return passwordMatches(rows[0]?.password_hash, password);
    } finally {
      await client.end();
    }
  }

  it('reads it from AGENT_PASSWORD', async () => {
    const res = await runSwitchboard(['agent', 'add', '--name', 'Env', '--email', 'env@example.com'], {
      ...env,
      AGENT_PASSWORD: 'from the environment',
    });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(await signsInWith('env@example.com', 'from the environment')).toBe(true);
  });

  it("reads it from stdin's first line when stdin is not a terminal", async () => {
    const res = await runSwitchboard(['agent', 'add', '--name', 'Pipe', '--email', 'pipe@example.com'], env, {
      stdin: 'from a pipe, with spaces\nand a second line\n',
    });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(await signsInWith('pipe@example.com', 'from a pipe, with spaces')).toBe(true);
  });

  it('without any, says where to put it (a usage error, exit 2)', async () => {
    const res = await runSwitchboard(['agent', 'add', '--name', 'None', '--email', 'none@example.com'], env);
    expect(res.stderr).toBe(
      'switchboard: agent add needs a password: set AGENT_PASSWORD, or write it to its stdin (--password P works too, but stays in the shell history)\n(switchboard help lists the commands and their options)\n',
    );
    expect(res.code).toBe(2);
  });
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
