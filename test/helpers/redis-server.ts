import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import { Redis } from 'ioredis';
import { tempDir } from './database.ts';
import { freePort } from './free-port.ts';
import { until } from './until.ts';

/**
 * The lanes' shared keys, their claims and lanes (src/queue/redis-lanes.ts: `<prefix><queue>:…`,
 * not the session cache's `<prefix>lane:…`), and BullMQ's job lists, wake jobs and their locks.
 */
const QUEUE_KEY =
  /:(inbound|outbound):((ready|waking|wake-seq|depth|dead|fails)$|claims:|lane:)|bull:[^:]+:(wait|active|delayed|prioritized|paused|marker|stalled|completed|failed|wake-\d+(:lock)?)$/;

/** The fields of a BullMQ job's hash that tell where it is in its life. */
const JOB_FIELDS = [
  'attemptsMade',
  'attemptsStarted',
  'stc',
  'processedOn',
  'finishedOn',
  'failedReason',
  'delay',
];

/**
 * A Redis server of the test's own, on its own port and directory, with the append-only file
 * synced on every write (as a production queue's Redis must be): stop and start it at will.
 */
export class TestRedisServer {
  private child: ChildProcess | undefined;

  constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
      ],
      { stdio: 'ignore' },
    );
    await until(
      async () => {
        const probe = new Redis(this.url, {
          lazyConnect: true,
          maxRetriesPerRequest: 0,
          retryStrategy: () => null,
        });
        probe.on('error', () => undefined);
        try {
          await probe.connect();
          await probe.ping();
          return 'answers';
        } catch (err) {
          return (err as Error).message;
        } finally {
          probe.disconnect();
        }
      },
      (state) => state === 'answers',
      10_000,
      100,
    );
  }

  /**
   * What the queues hold, for a failure's message: the lanes' shared keys (ready list, wake mark,
   * claims), BullMQ's job lists, wake jobs and their locks, and each lane that still has items, with sizes and first members.
   */
  async summary(maxLines = 80): Promise<string> {
    const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const all = await client.keys('*');
      const keys = all.filter((k) => QUEUE_KEY.test(k)).sort();
      const lines: string[] = [`${all.length} keys, ${keys.length} of the queues'`];
      for (const key of keys.slice(0, maxLines)) {
        const type = await client.type(key);
        if (type === 'list') {
          const head = await client.lrange(key, 0, 2);
          lines.push(`${key} list ${await client.llen(key)} ${head.join(' ').slice(0, 160)}`);
        } else if (type === 'zset') {
          const head = await client.zrange(key, '0', '2', 'WITHSCORES');
          lines.push(`${key} zset ${await client.zcard(key)} ${head.join(' ').slice(0, 160)}`);
        } else if (type === 'set') {
          const members = await client.smembers(key);
          lines.push(`${key} set ${members.length} ${members.slice(0, 3).join(' ').slice(0, 160)}`);
        } else if (type === 'hash') {
          const job = await client.hgetall(key);
          lines.push(
            `${key} ${JOB_FIELDS.filter((f) => job[f] !== undefined)
              .map((f) => `${f}=${String(job[f]).slice(0, 80)}`)
              .join(' ')}`,
          );
        } else if (type === 'string') {
          lines.push(
            `${key} = ${String(await client.get(key)).slice(0, 80)} (pttl ${await client.pttl(key)})`,
          );
        } else lines.push(`${key} ${type}`);
      }
      return lines.join('\n');
    } catch (err) {
      return `(no summary: ${(err as Error).message})`;
    } finally {
      client.disconnect();
    }
  }

  /**
   * The names of the connections it has (CLIENT LIST), sorted, those without a name left out; an
   * error's message while it does not answer. A hub whose connections are all back after a restart
   * has the names it had before.
   */
  async connectionNames(): Promise<string> {
    const client = new Redis(this.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const list = (await client.client('LIST')) as string;
      return [...list.matchAll(/ name=(\S*)/g)]
        .map((m) => m[1])
        .filter((name) => name !== '')
        .sort()
        .join(' ');
    } catch (err) {
      return (err as Error).message;
    } finally {
      client.disconnect();
    }
  }

  /** SIGTERM: Redis finishes its append-only file and exits. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    this.child = undefined;
  }
}

/**
 * A started `TestRedisServer` in a temporary directory of its own (named after `prefix`), and
 * `close` to stop it and remove the directory: the set-up of every test that stops Redis.
 */
export async function startOwnRedis(
  prefix: string,
): Promise<{ redis: TestRedisServer; close(): Promise<void> }> {
  const dir = await tempDir(prefix);
  const redis = new TestRedisServer(await freePort(), dir);
  await redis.start();
  return {
    redis,
    close: async () => {
      await redis.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
