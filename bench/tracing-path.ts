import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { z } from 'zod';

/**
 * `npm run bench -- tracing-path`: what a worker's per-message tracing path costs a fresh process,
 * with and without tracing's warm-up (src/telemetry/warm-up.ts). Each round runs three processes
 * of bench/tracing-path-process.ts in turn (the order rotating): tracing off, on without the
 * warm-up (`SWITCHBOARD_TRACE_WARMUP=0`), on with it (the default). Each takes the same messages
 * through the path and reports the CPU of its every thread; tracing's cost is a traced process's
 * CPU less the untraced one's of its round. One process at a time, no database or queue: a far
 * steadier figure than the full runs' (`tracing`), whose throughput moves by 15% between runs on
 * this machine, but of the tracing code alone — a real worker's other code, traced, varies more.
 */

const run = promisify(execFile);

/** Rounds of three processes. */
const ROUNDS = Number(process.env.BENCH_TRACING_PATH_ROUNDS ?? 8);
/** Messages each process takes: about what each of (b)'s two workers takes in a full run. */
const MESSAGES = Number(process.env.BENCH_TRACING_PATH_MESSAGES ?? 10_000);

const ProcessResultSchema = z.object({
  cpuMs: z.number(),
  wallMs: z.number(),
  warmUp: z.object({ messages: z.number(), spans: z.number(), ms: z.number() }).optional(),
});
type ProcessResult = z.infer<typeof ProcessResultSchema>;

type Kind = 'off' | 'cold' | 'warmed';

export interface TracingPathResult {
  rounds: number;
  messages: number;
  /** Per round: each kind's process. */
  runs: Record<Kind, ProcessResult>[];
}

const script = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'dist',
  'bench',
  'tracing-path-process.js',
);

async function once(kind: Kind, sinkUrl: string): Promise<ProcessResult> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, NODE_ENV: 'production' };
  if (kind !== 'off') env.OTEL_EXPORTER_OTLP_ENDPOINT = sinkUrl;
  if (kind === 'cold') env.SWITCHBOARD_TRACE_WARMUP = '0';
  const { stdout } = await run(process.execPath, [script, kind === 'off' ? 'off' : 'on', String(MESSAGES)], {
    env,
  });
  return ProcessResultSchema.parse(JSON.parse(stdout.trim().split('\n').at(-1)!));
}

export async function runTracingPathBench(sinkUrl: string): Promise<TracingPathResult> {
  const kinds: Kind[] = ['off', 'cold', 'warmed'];
  const runs: Record<Kind, ProcessResult>[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const results: Partial<Record<Kind, ProcessResult>> = {};
    for (let i = 0; i < kinds.length; i++) {
      const kind = kinds[(round + i) % kinds.length]!;
      results[kind] = await once(kind, sinkUrl);
    }
    runs.push(results as Record<Kind, ProcessResult>);
    console.error(`tracing-path: round ${round + 1} of ${ROUNDS}`);
  }
  return { rounds: ROUNDS, messages: MESSAGES, runs };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const standardError = (xs: number[]) =>
  xs.length < 2
    ? 0
    : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1) / xs.length);
const msPerMessage = (xs: number[], messages: number) =>
  `${(mean(xs) / messages).toFixed(4)} ± ${(standardError(xs) / messages).toFixed(4)} ms`;

export function tracingPathLines(r: TracingPathResult): string[] {
  const added = (kind: 'cold' | 'warmed') => r.runs.map((run) => run[kind].cpuMs - run.off.cpuMs);
  const warmUps = r.runs.flatMap((run) => (run.warmed.warmUp ? [run.warmed.warmUp] : []));
  const lines = [
    `${r.rounds} rounds of three fresh processes, ${r.messages.toLocaleString('en')} messages each (the tracing path alone: no engine, queue or database); CPU of every thread, mean ± standard error:`,
    `untraced: ${msPerMessage(
      r.runs.map((run) => run.off.cpuMs),
      r.messages,
    )} a message`,
    `tracing adds, without the warm-up (SWITCHBOARD_TRACE_WARMUP=0): ${msPerMessage(added('cold'), r.messages)} a message`,
    `tracing adds, after the warm-up (default): ${msPerMessage(added('warmed'), r.messages)} a message`,
  ];
  if (warmUps.length > 0)
    lines.push(
      `the warm-up itself, before the process takes work: ${warmUps[0]!.messages.toLocaleString('en')} messages, ${warmUps[0]!.spans.toLocaleString('en')} spans, ${mean(warmUps.map((w) => w.ms)).toFixed(0)} ms (wall clock, mean)`,
    );
  return lines;
}
