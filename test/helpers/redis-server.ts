import { type ChildProcess, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { until } from './until.ts';

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
