import { ensureDebianPackages, ensurePostgres, ensureRedis, MissingServiceError } from './services.ts';

/** Runs once before the whole suite: every real part the tests talk to is there, or one line says which is not. */
export default async function setup(): Promise<void> {
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
