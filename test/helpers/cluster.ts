import { createTestDatabase, type TestDatabase } from './database.ts';
import { TEST_REDIS_URL, testRedisPrefix } from './redis.ts';
import { ServerProcess } from './server-process.ts';

/**
 * Several hub processes sharing one test database and one Redis prefix: gateways and workers,
 * each a real `switchboard start --role …` child process that a test can kill and replace.
 */
export class Cluster {
  readonly gateways: ServerProcess[] = [];
  readonly workers: ServerProcess[] = [];
  database: TestDatabase | undefined;
  private redisCleanup: (() => Promise<void>) | undefined;
  env: Record<string, string> = {};

  constructor(private readonly extraEnv: Record<string, string> = {}) {}

  async init(redisUrl = TEST_REDIS_URL, adminDatabaseUrl?: string): Promise<void> {
    this.database = await createTestDatabase(adminDatabaseUrl);
    const { prefix, cleanup } = testRedisPrefix();
    this.redisCleanup = cleanup;
    this.env = {
      PORT: '0',
      DATABASE_URL: this.database.url,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      ...this.extraEnv,
    };
  }

  async addGateway(): Promise<ServerProcess> {
    const p = new ServerProcess(this.env, ['start', '--role', 'gateway']);
    await p.start();
    this.gateways.push(p);
    return p;
  }

  async addWorker(): Promise<ServerProcess> {
    const p = new ServerProcess(this.env, ['start', '--role', 'worker']);
    await p.start();
    this.workers.push(p);
    return p;
  }

  /** Processes that died on their own, with what they wrote last: a test should expect none. */
  crashes(): string[] {
    return [...this.gateways, ...this.workers]
      .filter((p) => p.crashed)
      .map((p) => `${p.crashed} (${p.args.join(' ')}):\n${p.tail(80)}`);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.gateways, ...this.workers].map((p) => p.stop('SIGKILL')));
    await this.database?.drop();
    await this.redisCleanup?.();
  }
}
