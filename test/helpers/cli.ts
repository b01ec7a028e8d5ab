import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT, type RunningHub } from './hub.ts';

/**
 * `switchboard <args>` against the hub's database (and its Redis, when it has one), as an
 * operator runs it; resolves with its output (stdout and stderr together) when it exits 0,
 * rejects with that output otherwise.
 */
export function switchboardCli(running: RunningHub, args: string[]): Promise<string> {
  const { databaseUrl, redisUrl, redisPrefix } = running.hub.config;
  return new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/switchboard.js'), ...args], {
      env: {
        PATH: process.env.PATH ?? '',
        DATABASE_URL: databaseUrl ?? '',
        ...(redisUrl ? { REDIS_URL: redisUrl, REDIS_PREFIX: redisPrefix } : {}),
        LOG_LEVEL: 'warn',
      },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${out}`))));
  });
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `switchboard <args>` as a process of its own with exactly `env` (and PATH, HOME), from `cwd`;
 * `stdin`: what it reads (nothing: its stdin is closed at once). Resolves however it exits; one
 * still running after `timeoutMs` is killed (code null), so that a command that hangs fails its
 * test rather than outliving it.
 */
export function runSwitchboard(
  args: string[],
  env: Record<string, string>,
  options: { cwd?: string; stdin?: string; timeoutMs?: number } = {},
): Promise<CliRun> {
  return new Promise<CliRun>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/switchboard.js'), ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.stdin.end(options.stdin ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 45_000);
    child.once('error', reject);
    // 'close', not 'exit': the output is all read by then.
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
