#!/usr/bin/env node
// The `switchboard` command: the build's JavaScript (`npm run build` writes dist/; `npm ci` and
// `npm start` run it first), as one bundle of the command and the modules it imports
// (dist/bundle/, scripts/build.js). Nothing is compiled or bundled here.
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/bundle/', import.meta.url);
if (!existsSync(new URL('cli.js', bundle))) {
  process.stderr.write('switchboard: dist/ is not built: run `npm run build` (or `npm ci`) first\n');
  process.exit(1);
}
// The embedded database's WebAssembly compiles on V8's background threads while the hub's
// modules load (src/store/pglite-early.ts). DATABASE_URL: PostgreSQL, no embedded database.
if (process.argv[2] === 'start' && !process.env.DATABASE_URL)
  (await import(new URL('pglite-early.js', bundle).href)).compilePgliteEarly();
await import(new URL('cli.js', bundle).href);
