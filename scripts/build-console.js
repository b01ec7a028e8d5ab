#!/usr/bin/env node
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// Bundles the agent console (console/src, Preact) into dist/console/: run by `npm ci` (prepare),
// before `npm start` and before `npm test`, so the hub never bundles at run time and never serves
// a stale console. esbuild takes well under a second; an unchanged source is rebuilt anyway, which
// is cheaper than deciding whether it changed.
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
