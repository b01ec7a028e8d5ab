#!/usr/bin/env node
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// Bundles the agent console (console/src, Preact) into dist/console/: run by scripts/build.js when
// a console source is newer than the bundle (`npm ci`, `npm start`, `npm test`), so the hub never
// bundles at run time and never serves a stale console.
import { build } from 'esbuild';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

await build({
  absWorkingDir: root,
  entryPoints: { app: 'console/src/main.tsx', styles: 'console/src/styles.css' },
  outdir: 'dist/console',
  bundle: true,
  minify: true,
  sourcemap: 'linked',
  format: 'esm',
  target: ['chrome100', 'firefox100', 'safari15', 'edge100'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  logLevel: 'warning',
});
