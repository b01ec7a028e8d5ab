import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/hub.ts';

/**
 * Tracing costs nothing when it is off: importing the hub as `switchboard start` runs it (the
 * build in dist/) resolves no OpenTelemetry module. A resolve hook reports each one; a last import
 * of the API, made on purpose, marks the end of the list (messages on the port keep their order).
 */
const CHILD = `
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const seen = [];
const sentinel = new Promise((resolve) => port1.on('message', (url) => {
  if (url.includes('/@opentelemetry/api/') && globalThis.done) resolve();
  else seen.push(url);
}));
register(${JSON.stringify(path.join(REPO_ROOT, 'test/fixtures/telemetry/record-opentelemetry.mjs'))}, import.meta.url, {
  data: { port: port2 },
  transferList: [port2],
});
await import(${JSON.stringify(path.join(REPO_ROOT, 'dist/adapters/index.js'))});
await import(${JSON.stringify(path.join(REPO_ROOT, 'dist/src/hub.js'))});
await import(${JSON.stringify(path.join(REPO_ROOT, 'dist/src/telemetry/tracing.js'))});
globalThis.done = true;
await import('@opentelemetry/api');
await sentinel;
port1.close();
console.log(JSON.stringify(seen));
`;

describe('tracing off', () => {
  it('loads no OpenTelemetry module', () => {
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
      timeout: 60_000,
    });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout.trim().split('\n').at(-1)!)).toEqual([]);
  });
});
