import v8 from 'node:v8';

/**
 * How far V8 lets the old generation grow past what was live at the last full collection before
 * it collects again, in percent (V8's `--heap-growing-percent`).
 *
 * V8 picks this itself: on a machine where the heap may reach 2 GB or more (any machine with a
 * few GB of memory) it grows the old generation up to 4× its live size while collection is cheap
 * compared to the program. The embedded hub keeps every accepted envelope in its in-process queue
 * until its turn, so a burst's envelopes outlive the young generation and reach the old one;
 * with 4× headroom, a 20,000-message burst over a ~45 MB live heap took the heap to ~220 MB and
 * the process to 445 MB (README, "Performance"). 50% keeps it near 1.5× the live size; the cost
 * is more frequent full collections (each a few tens of ms, mostly concurrent), which did not
 * show in the embedded benchmark's throughput.
 */
export const EMBEDDED_HEAP_GROWING_PERCENT = 50;

/**
 * Sets the heap's growth for the embedded hub (one process holding PostgreSQL, the queue and the
 * bots), unless the operator chose their own with `--heap-growing-percent` (NODE_OPTIONS or the
 * node command line). V8 reads the flag at each full collection, so setting it at start works.
 */
export function limitHeapGrowth(
  percent = EMBEDDED_HEAP_GROWING_PERCENT,
  given = `${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`,
): boolean {
  if (/--heap[-_]growing[-_]percent/.test(given)) return false;
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
  return true;
}

/**
 * How much WebAssembly a function of the embedded PostgreSQL runs (V8's rough count of bytes
 * executed) before V8 compiles it again with its optimising compiler (`--wasm-tiering-budget`;
 * V8's own is 1,800,000).
 *
 * PGlite's module starts in V8's baseline compiler (Liftoff); at V8's budget, the work of a
 * start alone (recovery, the catalogue caches, the migrations check, the first queries) makes
 * hundreds of functions "hot", and optimising them costs the process for good: ~25 MB of
 * optimised code and ~30–45 MB that the compiler threads' malloc arenas keep after compiling
 * (measured: 230–265 MB idle after start, 163–166 MB at this budget, the same as with no
 * optimising at all). With 1,000,000,000 the start optimises nothing, while the functions a
 * stream of messages runs over and over still reach it within a second or two of load
 * (README, "Performance": embedded CPU per message the same).
 */
export const EMBEDDED_WASM_TIERING_BUDGET = 1_000_000_000;

/** V8 switches by which an operator decides WebAssembly's tiers themselves. */
const OWN_WASM_TIERING =
  /--wasm[-_]tiering[-_]budget|--liftoff[-_]only|--(no[-_])?liftoff\b|--(no[-_])?wasm[-_]tier[-_]up/;

/**
 * Sets the tiering budget for the embedded hub's PostgreSQL, unless the operator chose their
 * own (`--wasm-tiering-budget`, or one of V8's switches that decide the tiers outright). V8
 * gives each function its budget when the module is instantiated: call this before the
 * database opens.
 */
export function deferWasmTierUp(
  budget = EMBEDDED_WASM_TIERING_BUDGET,
  given = `${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`,
): boolean {
  if (OWN_WASM_TIERING.test(given)) return false;
  v8.setFlagsFromString(`--wasm-tiering-budget=${budget}`);
  return true;
}
