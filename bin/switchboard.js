#!/usr/bin/env node
// The `switchboard` command: the build's JavaScript (`npm run build` writes dist/; `npm ci` and
// `npm start` run it first). Nothing is compiled or bundled here.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('switchboard: dist/ is not built: run `npm run build` (or `npm ci`) first\n');
  process.exit(1);
}
await import(cli.href);
