import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './hub.ts';

/**
 * The real server as a child process (`node bin/switchboard.js start`), so that a test can kill
 * and restart it. Resolves once it logs `hub.started`, with the port it listens on.
 */
export class ServerProcess {
  private child: ChildProcess | undefined;
  private stopping = false;
  readonly output: string[] = [];
  /** Set when the process exited without being asked to (a crash): its code or signal. */
  crashed: string | undefined;
  port: number | undefined;
  /** The current process's exit, once start() has spawned it: its code or signal, and when. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }> | undefined;

  constructor(
    private readonly env: Record<string, string>,
    readonly args: string[] = ['start'],
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(timeoutMs = 60_000): Promise<void> {
    // NODE_ARGS: flags for node itself (e.g. --cpu-prof, which NODE_OPTIONS refuses).
    const nodeArgs = this.env.NODE_ARGS ? this.env.NODE_ARGS.split(' ') : [];
    const child = spawn(
      process.execPath,
      [...nodeArgs, path.join(REPO_ROOT, 'bin/switchboard.js'), ...this.args],
      {
        cwd: REPO_ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          HOST: '127.0.0.1',
          LOG_LEVEL: 'info',
          // Several child processes share the test PostgreSQL: small pools keep them under max_connections.
          DATABASE_POOL_SIZE: '4',
          // Every test client comes from 127.0.0.1; a test of the limit sets its own.
          SESSION_CREATE_PER_MINUTE: '1000000',
          WEB_CONNECTIONS_PER_MINUTE: '1000000',
          ...this.env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    // For reading V8's own output (`--trace-opt`, …) of a bench's processes: their stdout, whole.
    if (process.env.BENCH_WORKER_OUT)
      child.stdout!.pipe(createWriteStream(path.join(process.env.BENCH_WORKER_OUT, `${child.pid}.txt`)));
    this.stopping = false;
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
    );
    child.once('exit', (code, signal) => {
      if (!this.stopping) this.crashed = `exit ${code ?? signal}`;
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server did not start in ${timeoutMs} ms:\n${this.output.join('')}`)),
        timeoutMs,
      );
      let buffered = '';
      const onData = (chunk: Buffer) => {
        const text = chunk.toString();
        this.output.push(text);
        buffered += text;
        let nl = buffered.indexOf('\n');
        while (nl >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          nl = buffered.indexOf('\n');
          try {
            const entry = JSON.parse(line) as { event?: string; port?: number };
            if (entry.event === 'hub.started') {
              this.port = entry.port;
              clearTimeout(timer);
              resolve();
            }
          } catch {
            // not a log line
          }
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (chunk: Buffer) => this.output.push(chunk.toString()));
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`server exited (${code ?? signal}) before it started:\n${this.output.join('')}`));
      });
    });
  }

  /** Sends a signal and returns (see `exited`): a test of what the process does meanwhile. */
  kill(signal: NodeJS.Signals): void {
    this.stopping = true;
    this.child?.kill(signal);
  }

  /** Sends a signal and waits for the process to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    this.stopping = true;
    child.kill(signal);
    const code = await exited;
    this.child = undefined;
    return code;
  }

  /** The last lines it wrote that are not info-level: what to show when it crashed. */
  tail(lines = 30): string {
    return this.output
      .join('')
      .split('\n')
      .filter((l) => !l.includes('"level":30'))
      .slice(-lines)
      .join('\n');
  }

  /** The lines the server logged, parsed. */
  logLines(): Record<string, unknown>[] {
    return this.output
      .join('')
      .split('\n')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }
}
