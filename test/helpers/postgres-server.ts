import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const PG_BIN = (() => {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort() : [];
  return versions.length ? path.join(root, versions.at(-1)!, 'bin') : '';
})();

/**
 * A PostgreSQL server of the test's own (its own data directory and port), so a test can stop
 * and start it without touching the machine's shared server. As root it runs as `postgres`.
 */
export class TestPostgresServer {
  constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  get adminUrl(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private run(binary: string, args: string[]) {
    const asRoot = process.getuid?.() === 0;
    const [cmd, argv] = asRoot
      ? ['runuser', ['-u', 'postgres', '--', path.join(PG_BIN, binary), ...args]]
      : [path.join(PG_BIN, binary), args];
    execFileSync(cmd, argv as string[], { stdio: 'ignore', timeout: 60_000 });
  }

  init(): void {
    if (!PG_BIN)
      throw new Error(
        'PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)',
      );
    fs.mkdirSync(this.dir, { recursive: true });
    if (process.getuid?.() === 0) {
      // The server runs as postgres: it must reach its directory through the (root-owned) parent.
      fs.chmodSync(path.dirname(this.dir), 0o755);
      spawnSync('chown', ['-R', 'postgres:postgres', this.dir]);
    }
    this.run('initdb', ['-D', this.dir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  }

  start(): void {
    this.run('pg_ctl', [
      '-D',
      this.dir,
      '-l',
      path.join(this.dir, 'server.log'),
      '-w',
      '-o',
      `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      'start',
    ]);
  }

  stop(): void {
    this.run('pg_ctl', ['-D', this.dir, '-m', 'fast', '-w', 'stop']);
  }
}
