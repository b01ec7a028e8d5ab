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
