#!/usr/bin/env node
// The `switchboard` command: the build's JavaScript (`npm run build` writes dist/; `npm ci` and
// `npm start` run it first). Nothing is compiled or bundled here.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('switchboard: dist/ is not built: run `npm run build` (or `npm ci`) first\n');
  process.exit(1);
}
// The embedded database's WebAssembly compiles on V8's background threads while the hub's
// modules load (src/store/pglite-early.ts). DATABASE_URL: PostgreSQL, no embedded database.
const early = new URL('../dist/src/store/pglite-early.js', import.meta.url);
if (process.argv[2] === 'start' && !process.env.DATABASE_URL && existsSync(early))
  (await import(early.href)).compilePgliteEarly();
await import(cli.href);
