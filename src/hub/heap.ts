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
