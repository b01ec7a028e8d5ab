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
 * PGlite's module starts in V8's baseline compiler (Liftoff). At V8's budget the work of a start
 * alone (recovery, the catalogue caches, the migrations check, the first queries) takes many
 * functions past it, and what optimising them leaves behind stays with the process: the
 * optimised code and the memory the compiler threads' malloc arenas keep afterwards, 212–272 MB
 * idle after start where 163–166 MB with nothing optimised. Measured idle (README,
 * "Performance"): 1e7 218–239 MB, 3e7–4e8 195–220 MB, 1e9 161–166 MB. The higher the budget,
 * the longer a stream of messages runs its PostgreSQL functions unoptimised: at 1e9 they were
 * still being optimised a minute into the load (+37% CPU per message over 60,000 messages), at
 * 1e8 and 3e7 messages 10,000–20,000 cost +14–43% CPU and the later ones were within the noise.
 * In the embedded benchmark (20,000 messages from start) 3e7 was no slower than V8's budget
 * (fewer functions compiled while the run competes for the cores). 3e7 is the lowest budget at
 * which the start's optimising stops costing memory (200–220 MB idle; 1e7 reaches 240).
 */
export const EMBEDDED_WASM_TIERING_BUDGET = 30_000_000;

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
