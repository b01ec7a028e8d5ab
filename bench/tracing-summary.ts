/**
 * The `tracing` part's summary of its pairs (bench/run.ts): the ratios' mean and its standard
 * error beside the median, and what tracing adds to the CPU of a message by process, pair by
 * pair. This machine's speed moves from one run to the next by more than tracing's share (README
 * "Tracing"): the pairs' CPU differences, each taken within one pair, are the steadier figure.
 */

export interface TracingPair {
  on: { perSecond: number; cpuMsPerMessage?: Record<string, number> };
  off: { perSecond: number; cpuMsPerMessage?: Record<string, number> };
}

export interface MeanWithError {
  mean: number;
  /** The standard error of the mean (0 for fewer than two values). */
  se: number;
}

export function meanWithError(values: readonly number[]): MeanWithError {
  const n = values.length;
  if (n === 0) return { mean: Number.NaN, se: 0 };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, se: 0 };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  return { mean, se: Math.sqrt(variance / n) };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The processes of a run, grouped as the summary names them (every `worker N` is a worker). */
const GROUPS: readonly [string, (process: string) => boolean][] = [
  ['gateway', (p) => p === 'gateway'],
  ['workers', (p) => p.startsWith('worker ')],
  ['redis', (p) => p === 'redis'],
  ['postgres', (p) => p === 'postgres'],
  ['all', () => true],
];

/** CPU ms a message of the processes `pick` takes, summed (undefined when the run has none). */
function cpuOf(
  cpu: Record<string, number> | undefined,
  pick: (process: string) => boolean,
): number | undefined {
  if (!cpu) return undefined;
  let total = 0;
  let found = false;
  for (const [process, ms] of Object.entries(cpu))
    if (pick(process)) {
      total += ms;
      found = true;
    }
  return found ? total : undefined;
}

/** What tracing adds to a message's CPU (ms, on − off within each pair), by group of processes. */
export function tracingCpuAdded(pairs: readonly TracingPair[]): Record<string, MeanWithError> {
  const added: Record<string, MeanWithError> = {};
  for (const [group, pick] of GROUPS) {
    const differences: number[] = [];
    for (const { on, off } of pairs) {
      const a = cpuOf(on.cpuMsPerMessage, pick);
      const b = cpuOf(off.cpuMsPerMessage, pick);
      if (a !== undefined && b !== undefined) differences.push(a - b);
    }
    if (differences.length > 0) added[group] = meanWithError(differences);
  }
  return added;
}

/** The summary's lines after the median: the ratios' mean, and the CPU tracing adds. */
export function tracingSummaryLines(pairs: readonly TracingPair[]): string[] {
  const ratios = pairs.map(({ on, off }) => on.perSecond / off.perSecond);
  const { mean, se } = meanWithError(ratios);
  const lines = [
    `tracing on / off, throughput ratio of the pairs: mean ${mean.toFixed(3)} ± ${se.toFixed(3)} (standard error), median ${median(ratios).toFixed(3)}`,
  ];
  const added = Object.entries(tracingCpuAdded(pairs));
  if (added.length > 0)
    lines.push(
      `CPU tracing adds a message, on − off within each pair (ms, mean ± standard error): ${added
        .map(
          ([group, { mean, se }]) => `${group} ${mean >= 0 ? '+' : ''}${mean.toFixed(4)} ± ${se.toFixed(4)}`,
        )
        .join(', ')}`,
    );
  return lines;
}
