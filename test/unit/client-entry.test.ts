import { spawnSync } from 'node:child_process';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/hub.ts';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'client');

/** Plain Node, none of the repository's loaders: what another project's `node` would run. */
function plainNode(args: string[]) {
  const run = spawnSync(process.execPath, args, {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
    timeout: 60_000,
  });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  return run.stdout.trim();
}

/**
 * `switchboard/client` from plain Node and from another TypeScript project: package.json
 * `exports` gives the build's JavaScript (dist/src/client/index.js) and its declarations
 * (dist/client/), both made by `npm run build` (the tests' global setup runs it).
 */
describe('switchboard/client outside the repository’s TypeScript tooling', () => {
  it('an .mjs file imports it with plain Node and talks to a hub', () => {
    const out = JSON.parse(plainNode([path.join(FIXTURES, 'plain-node.mjs')]));
    expect(out.resolved).toBe(`file://${path.join(REPO_ROOT, 'dist', 'src', 'client', 'index.js')}`);
    expect(out).toMatchObject({ status: 202, data: { status: 'accepted', envelopeId: 'api:1' } });
    expect(out.seen).toEqual([
      {
        method: 'POST',
        url: '/api/chat',
        authorization: 'Bearer tok',
        body: JSON.stringify({ text: 'hello' }),
      },
    ]);
  });

  it('node -e imports it too', () => {
    const out = plainNode([
      '--input-type=module',
      '-e',
      "import { switchboardClient } from 'switchboard/client'; const c = switchboardClient({ baseUrl: 'http://x' }); console.log(typeof switchboardClient, typeof c.GET, typeof c.POST);",
    ]);
    expect(out).toBe('function function function');
  });

  it('its declarations type a consumer through the package exports (no source condition)', () => {
    const consumer = path.join(FIXTURES, 'consumer.mts');
    const program = ts.createProgram([consumer], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: [],
    });
    const resolved = ts.resolveModuleName(
      'switchboard/client',
      consumer,
      program.getCompilerOptions(),
      ts.sys,
    ).resolvedModule?.resolvedFileName;
    expect(resolved).toBe(path.join(REPO_ROOT, 'dist', 'client', 'index.d.ts'));
    const problems = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    // The fixture's two @ts-expect-error lines are errors only with real types (unused ones fail).
    expect(problems).toEqual([]);
  });
});
