import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSwitchboard } from '../helpers/cli.ts';
import { createTestDatabase, type TestDatabase, tempDir } from '../helpers/database.ts';
import { freePort } from '../helpers/free-port.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { testRedisPrefix } from '../helpers/redis.ts';

/** A stack trace's frame line. */
const STACK_FRAME = /^\s+at /m;

/**
 * What an operator sees when a start or a command cannot go on: one line naming the setting and
 * the target (never a password), exit 1, and a stack only at LOG_LEVEL=debug.
 */
describe('startup and command errors name the setting, without a stack', () => {
  let dir: string;
  let closedPort: number;
  let database: TestDatabase;
  const redis = testRedisPrefix();

  beforeAll(async () => {
    dir = await tempDir('sbt-startup-errors-');
    closedPort = await freePort();
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
    await redis.cleanup();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const env = (extra: Record<string, string>) => ({
    CONFIG_DIR: path.join(dir, 'config'),
    DATA_DIR: path.join(dir, 'data'),
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'warn',
    ...extra,
  });

  it('PostgreSQL refusing connections: every command says which, where (no password), and why', async () => {
    const url = `postgres://postgres:hunter2@127.0.0.1:${closedPort}/switchboard`;
    const said = `PostgreSQL at postgres://127.0.0.1:${closedPort}/switchboard`;
    for (const args of [['migrate'], ['agent', 'list'], ['outbox', 'failed']]) {
      const res = await runSwitchboard(args, env({ DATABASE_URL: url }));
      expect(res.stderr, args.join(' ')).toBe(
        `switchboard: ${said} did not answer (DATABASE_URL): connect ECONNREFUSED 127.0.0.1:${closedPort}\n`,
      );
      expect(res.code).toBe(1);
    }
    // A start waits for it (it may be starting too), DEPENDENCY_TIMEOUT_SECONDS at most.
    const started = await runSwitchboard(
      ['start'],
      env({ DATABASE_URL: url, DEPENDENCY_TIMEOUT_SECONDS: '2' }),
    );
    expect(started.stderr).toBe(
      `switchboard: ${said} did not answer within 2 s (DATABASE_URL): connect ECONNREFUSED 127.0.0.1:${closedPort}\n`,
    );
    expect(started.stderr).not.toContain('hunter2');
    expect(started.code).toBe(1);
  });

  it('a database that does not exist: refused at once, at start too', async () => {
    const url = new URL(database.url);
    url.pathname = '/sbt_no_such_database';
    const shown = new URL(url.href);
    shown.username = '';
    shown.password = '';
    const said = `PostgreSQL at ${shown.href} refused (DATABASE_URL): database "sbt_no_such_database" does not exist`;
    const res = await runSwitchboard(['migrate'], env({ DATABASE_URL: url.href }));
    expect(res.stderr).toBe(`switchboard: ${said}\n`);
    expect(res.code).toBe(1);
    const began = Date.now();
    const started = await runSwitchboard(
      ['start'],
      env({ DATABASE_URL: url.href, DEPENDENCY_TIMEOUT_SECONDS: '60' }),
    );
    expect(started.stderr).toBe(`switchboard: ${said}\n`);
    expect(started.code).toBe(1);
    // Not asked again and again for DEPENDENCY_TIMEOUT_SECONDS: an answer that says no stays no.
    expect(Date.now() - began).toBeLessThan(30_000);
  });

  it('prints the stack at LOG_LEVEL=debug', async () => {
    const res = await runSwitchboard(
      ['migrate'],
      env({ DATABASE_URL: `postgres://127.0.0.1:${closedPort}/x`, LOG_LEVEL: 'debug' }),
    );
    expect(res.stderr).toMatch(
      /^switchboard: PostgreSQL at postgres:\/\/127\.0\.0\.1:\d+\/x did not answer \(DATABASE_URL\)/,
    );
    expect(res.stderr).toMatch(STACK_FRAME);
    expect(res.stderr).toContain('caused by: ');
    expect(res.code).toBe(1);
  });

  it('Redis refusing connections: named without its password', async () => {
    const redisUrl = `redis://:hunter2@127.0.0.1:${closedPort}/3`;
    for (const args of [['queue', 'status']]) {
      const res = await runSwitchboard(
        args,
        env({ DATABASE_URL: database.url, REDIS_URL: redisUrl, REDIS_PREFIX: redis.prefix }),
        { timeoutMs: 30_000 },
      );
      expect(res.stderr, args.join(' ')).toBe(
        `switchboard: Redis at redis://127.0.0.1:${closedPort}/3 did not answer (REDIS_URL): connect ECONNREFUSED 127.0.0.1:${closedPort}\n`,
      );
      expect(res.code).toBe(1);
    }
  }, 90_000);

  it('a connection URL that is not one, and a port past 65535: refused before anything is opened', async () => {
    const bad = await runSwitchboard(['migrate'], env({ DATABASE_URL: 'not a url' }));
    expect(bad.stderr).toBe(
      'switchboard: invalid configuration: DATABASE_URL: must be a postgres:// or postgresql:// URL naming a host, such as postgres://user:password@db.example.com:5432/switchboard\n',
    );
    expect(bad.code).toBe(1);
    const port = await runSwitchboard(['start'], env({ PORT: '70000' }));
    expect(port.stderr).toMatch(/^switchboard: invalid configuration: PORT: .*65535\n$/);
    expect(port.code).toBe(1);
    // Refused before the embedded database was made.
    await expect(fs.stat(path.join(dir, 'data'))).rejects.toThrow(/ENOENT/);
  });

  it('half an email configuration: the channel names what is missing, without a stack', async () => {
    const res = await runSwitchboard(['start'], env({ EMAIL_IMAP_HOST: '127.0.0.1' }));
    expect(res.stderr).toMatch(/^switchboard: email channel configuration: .*EMAIL_IMAP_USER/);
    expect(res.stderr).not.toMatch(STACK_FRAME);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.code).toBe(1);
  });

  it('the port in use', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as net.AddressInfo;
    try {
      const res = await runSwitchboard(
        ['start'],
        env({ DATA_DIR: path.join(dir, 'data-port'), PORT: String(port) }),
      );
      expect(res.stderr).toBe(
        `switchboard: cannot listen on 127.0.0.1:${port} (HOST, PORT): the address is in use by another process (EADDRINUSE)\n`,
      );
      expect(res.code).toBe(1);
    } finally {
      holder.close();
    }
  });

  describe('a second process on a database whose in-process queue is taken', () => {
    let running: RunningHub;
    let own: TestDatabase;
    beforeAll(async () => {
      own = await createTestDatabase();
      running = await startTestHub({ databaseUrl: own.url, redisUrl: undefined });
    });
    afterAll(async () => {
      await running?.stop();
      await own?.drop();
    });

    it('says what to do, without a stack', async () => {
      const res = await runSwitchboard(['start'], env({ DATABASE_URL: own.url }));
      expect(res.stderr).toBe(
        'switchboard: another process already runs the in-process queue on this database; to run several processes set REDIS_URL (BullMQ), or stop the other one\n',
      );
      expect(res.code).toBe(1);
    });
  });
});
