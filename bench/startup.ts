/**
 * The embedded hub as a newcomer runs it: `node bin/switchboard.js start` with nothing configured.
 * Measures the time from spawn to the first `200` from `/readyz`, and the resident memory once the
 * process has idled, on a new data directory (initdb) and then on the same, existing one.
 *
 *   node --import tsx bench/startup.ts        (also part of `npm run bench -- startup`)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 3000);

export interface StartupFigure {
  /** Milliseconds from spawn to the first 200 from /readyz. */
  readyMs: number;
  /** RSS after idling IDLE_MS past ready, MB. */
  idleRssMb: number;
  /** Peak RSS (VmHWM) of the hub process over the whole start, MB. */
  peakRssMb: number;
  /** Peak RSS of any child process it ran while starting (initdb without a template), MB; 0 if none. */
  childPeakRssMb: number;
}

export interface StartupResult {
  fresh: StartupFigure;
  existing: StartupFigure;
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

async function memoryMb(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: Math.round(kb('VmRSS') / 1024), hwm: Math.round(kb('VmHWM') / 1024) };
}

/** The largest RSS among the process's children (initdb may run in one), MB. */
async function childrenPeakMb(pid: number): Promise<number> {
  let peak = 0;
  const children = await fs.readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  for (const child of children.split(/\s+/).filter(Boolean)) {
    peak = Math.max(
      peak,
      await memoryMb(Number(child))
        .then((m) => m.hwm)
        .catch(() => 0),
      await childrenPeakMb(Number(child)),
    );
  }
  return peak;
}

async function startOnce(dataDir: string): Promise<StartupFigure> {
  const port = await freePort();
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, [path.join(REPO, 'bin/switchboard.js'), 'start'], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let childPeak = 0;
  try {
    let readyMs = 0;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`switchboard exited with ${child.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) {
        readyMs = performance.now() - started;
        break;
      }
      childPeak = Math.max(childPeak, await childrenPeakMb(child.pid!));
      await new Promise((r) => setTimeout(r, 20));
      if (performance.now() - started > 120_000) throw new Error('no /readyz in 120 s');
    }
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const { rss, hwm } = await memoryMb(child.pid!);
    return { readyMs, idleRssMb: rss, peakRssMb: hwm, childPeakRssMb: childPeak };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

export async function runStartupBench(): Promise<StartupResult> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sb-bench-start-'));
  try {
    const fresh = await startOnce(dataDir);
    const existing = await startOnce(dataDir);
    return { fresh, existing };
  } finally {
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

/** The figures beside their targets (issue 19), one line each. */
export function startupLines({ fresh, existing }: StartupResult): string[] {
  const ms = (n: number) => `${Math.round(n).toLocaleString('en-US')} ms`;
  const child = (f: StartupFigure) => (f.childPeakRssMb ? `, child processes ${f.childPeakRssMb} MB` : '');
  return [
    `start → /readyz, new data directory:      ${ms(fresh.readyMs)} (target ≤ 2,000 ms)`,
    `start → /readyz, existing data directory: ${ms(existing.readyMs)} (target ≤ 1,000 ms)`,
    `RSS, new data directory:      idle ${fresh.idleRssMb} MB, peak ${fresh.peakRssMb} MB (target peak ≤ 400 MB)${child(fresh)}`,
    `RSS, existing data directory: idle ${existing.idleRssMb} MB (target ≤ 250 MB), peak ${existing.peakRssMb} MB`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await runStartupBench();
  for (const line of startupLines(result)) console.log(line);
}
