#!/usr/bin/env node
// Runs test files again and again (optionally with busy processes eating the CPU) and prints
// which tests failed in how many runs: races that pass on most runs show up here, not in CI.
//
//   npm run test:repeat -- [--times N] [--busy K] [vitest filters…]
//
// --times N   runs (default 3); --busy K   K busy-looping processes beside the tests (default 0).
// Filters are vitest's: paths or names of test files (default test/integration test/e2e).
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    times: { type: 'string', default: '3' },
    busy: { type: 'string', default: '0' },
  },
});
const times = Number(values.times);
const busy = Number(values.busy);
if (!Number.isInteger(times) || times < 1)
  throw new Error(`--times must be a whole number ≥ 1, not ${values.times}`);
if (!Number.isInteger(busy) || busy < 0)
  throw new Error(`--busy must be a whole number ≥ 0, not ${values.busy}`);
const filters = positionals.length > 0 ? positionals : ['test/integration', 'test/e2e'];

const hogs = Array.from({ length: busy }, () =>
  spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }),
);
const stopHogs = () => {
  for (const hog of hogs) hog.kill('SIGKILL');
};
process.on('SIGINT', () => {
  stopHogs();
  process.exit(130);
});

const outDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sb-repeat-'));
/** Failing test (file › name) → the runs it failed in. */
const failures = new Map();
let failedRuns = 0;
try {
  for (let run = 1; run <= times; run++) {
    const report = path.join(outDir, `run-${run}.json`);
    const started = Date.now();
    const code = await new Promise((resolve) => {
      const child = spawn(
        process.execPath,
        [
          'node_modules/vitest/vitest.mjs',
          'run',
          ...filters,
          '--reporter=dot',
          '--reporter=json',
          `--outputFile.json=${report}`,
        ],
        { stdio: ['ignore', 'inherit', 'inherit'] },
      );
      child.on('exit', (c) => resolve(c ?? 1));
    });
    const result = JSON.parse(await fs.readFile(report, 'utf8').catch(() => '{"testResults":[]}'));
    let failed = 0;
    for (const file of result.testResults) {
      const rel = path.relative(process.cwd(), file.name);
      for (const test of file.assertionResults) {
        if (test.status !== 'failed') continue;
        failed++;
        const key = `${rel} › ${test.fullName}`;
        failures.set(key, [...(failures.get(key) ?? []), run]);
      }
      // A file that failed without a failing test (its set-up threw) counts as a failure of its own.
      if (file.status === 'failed' && !file.assertionResults.some((t) => t.status === 'failed')) {
        failed++;
        const key = `${rel} › (set-up or tear-down)`;
        failures.set(key, [...(failures.get(key) ?? []), run]);
      }
    }
    if (code !== 0) failedRuns++;
    console.log(
      `\n== run ${run}/${times}: ${result.numPassedTests ?? 0} passed, ${failed} failed, exit ${code}, ${Math.round((Date.now() - started) / 1000)} s`,
    );
  }
} finally {
  stopHogs();
}

console.log(`\n${failedRuns} of ${times} runs failed${busy ? ` (with ${busy} busy processes)` : ''}.`);
for (const [test, runs] of [...failures].sort((a, b) => b[1].length - a[1].length))
  console.log(`- ${test}: failed in ${runs.length} of ${times} (runs ${runs.join(', ')})`);
console.log(`Reports: ${outDir}`);
process.exitCode = failedRuns > 0 ? 1 : 0;
