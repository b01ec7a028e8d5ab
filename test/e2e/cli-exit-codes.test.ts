import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSwitchboard } from '../helpers/cli.ts';
import { tempDir } from '../helpers/database.ts';
import { freePort } from '../helpers/free-port.ts';

const HINT = '(switchboard help lists the commands and their options)\n';

/**
 * Exit 2 for every command line that does not say what to do, found before anything is opened
 * (the database and Redis below refuse connections: a command that tried them would exit 1
 * naming them); exit 1 for a command that ran and failed.
 */
describe('switchboard exit codes', () => {
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = await tempDir('sbt-exit-codes-');
    const closed = await freePort();
    env = {
      DATABASE_URL: `postgres://postgres@127.0.0.1:${closed}/x`,
      REDIS_URL: `redis://127.0.0.1:${closed}`,
      CONFIG_DIR: path.join(dir, 'config'),
      LOG_LEVEL: 'warn',
    };
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it.each([
    [['queue', 'bogus'], 'unknown action "queue bogus": use status, failed or replay'],
    [['outbox'], 'outbox needs an action: use failed or replay'],
    [['queue', 'status', 'extra'], 'queue status takes no argument "extra"'],
    [['queue', 'failed', '--session', 'abc'], 'queue failed takes no --session'],
    [['webhooks', 'failed', '--id', 'e1'], 'webhooks failed takes no --id'],
    [['migrate', 'extra'], "Unexpected argument 'extra'. This command does not take positional arguments"],
    [['check', 'a', 'b'], 'check takes no argument "b"'],
    [['agent'], 'agent needs an action: use add, list or remove'],
    [['agent', 'bogus'], 'unknown action "agent bogus": use add, list or remove'],
    [['agent', 'remove'], 'agent remove takes the agent id or e-mail address'],
    [['agent', 'list', 'extra'], 'agent list takes no argument "extra"'],
    [['agent', 'add', '--email', 'a@example.com'], 'agent add needs --name'],
    [['broadcast', 'bogus'], 'unknown action "broadcast bogus": use start, status or list'],
    [['broadcast', 'status'], 'broadcast status takes the broadcast id'],
    [['telegram', 'bogus'], 'unknown telegram command "bogus"; try: telegram set-webhook'],
    [['start', '--role', 'bogus'], '--role must be all, gateway or worker, not "bogus"'],
  ])('%j is a usage error: exit 2, nothing opened', async (args, message) => {
    const res = await runSwitchboard(args, env);
    expect(res.stderr).toBe(`switchboard: ${message}\n${HINT}`);
    expect(res.code).toBe(2);
  });

  it.each([
    [['queue', 'status', '--jsn']],
    [['start', '--prot', '80']],
    [['start', 'now']],
    [['scheduler', 'failed', '--json=yes']],
  ])('%j (an option or argument parseArgs refuses): exit 2', async (args) => {
    const res = await runSwitchboard(args, env);
    expect(res.stderr).toMatch(
      /^switchboard: .+\n\(switchboard help lists the commands and their options\)\n$/,
    );
    expect(res.code).toBe(2);
  });

  it('an unknown command: exit 2, with the usage', async () => {
    const res = await runSwitchboard(['bogus'], env);
    expect(res.stderr).toMatch(/^unknown command "bogus"\n\nUsage: switchboard <command>/);
    expect(res.code).toBe(2);
  });

  it('a command that ran and failed, or a name that is not there: exit 1', async () => {
    const failed = await runSwitchboard(['queue', 'failed'], env);
    expect(failed.stderr).toMatch(
      /^switchboard: PostgreSQL at postgres:\/\/127\.0\.0\.1:\d+\/x did not answer \(DATABASE_URL\)/,
    );
    expect(failed.code).toBe(1);
    const noBot = await runSwitchboard(['check', 'nope'], env);
    expect(noBot).toMatchObject({ code: 1, stderr: 'switchboard: no bot named "nope"\n' });
  });
});
