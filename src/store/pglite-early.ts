import { readFile } from 'node:fs/promises';
import { deferWasmTierUp } from '../hub/heap.ts';

/**
 * PGlite's WebAssembly module (9 MB), compiled while the rest of the hub's modules load.
 *
 * `switchboard start` loads ~400 modules before it opens the embedded database, and PGlite then
 * reads and compiles its module before PostgreSQL can start: the compile runs on V8's background
 * threads while the main thread waits. Begun first thing (`bin/switchboard.js`, this module
 * imports nothing else of the hub's), the read and the compile overlap the module loading, and
 * `openPglite` hands PGlite the compiled module. Nothing is done twice: the compile is the same
 * one PGlite would have made.
 */
let compiling: Promise<WebAssembly.Module> | undefined;

/** Starts compiling PGlite's module, once; a failure is left for `openPglite` to report. */
export function compilePgliteEarly(): void {
  if (compiling) return;
  // The embedded hub's WebAssembly tiering (src/hub/heap.ts) is set before the compile: V8 may
  // give each function its budget as the module is made.
  deferWasmTierUp();
  const wasm = new URL('pglite.wasm', import.meta.resolve('@electric-sql/pglite'));
  compiling = readFile(wasm).then((bytes) => WebAssembly.compile(bytes));
  // Awaited (and any error seen) by openPglite; never an unhandled rejection meanwhile.
  compiling.catch(() => undefined);
}

/** The module compiled early, if `compilePgliteEarly` ran in this process. */
export function compiledPgliteModule(): Promise<WebAssembly.Module> | undefined {
  return compiling;
}
