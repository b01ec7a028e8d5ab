import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDebianPackages, ensurePostgres, ensureRedis, MissingServiceError } from './services.ts';

const REPO = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Tests that start the hub as a child process run `bin/switchboard.js`, which runs the build
 * (dist/): the build is brought up to date with the sources first (incremental, well under a
 * second when nothing changed), so that those tests test what the rest of the suite tests.
 */
function build(): void {
  execFileSync(process.execPath, [path.join(REPO, 'scripts', 'build.js'), '--quiet'], {
    cwd: REPO,
    stdio: 'inherit',
  });
}

/** Runs once before the whole suite: every real part the tests talk to is there, or one line says which is not. */
export default async function setup(): Promise<void> {
  build();
  try {
    await ensurePostgres();
    await ensureRedis();
    ensureDebianPackages();
  } catch (err) {
    if (err instanceof MissingServiceError) {
      // One line, naming the missing piece and how to get it.
      process.stderr.write(`\nswitchboard tests: ${err.message}\n\n`);
    }
    throw err;
  }
}
