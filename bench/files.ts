/**
 * `npm run bench -- files`: memory while a large file streams into and out of the file store
 * (issue 24). An embedded hub (PGlite, in-process queue) in a process of its own for each size
 * (10 MB, then 50 MB: what one transfer leaves behind cannot hide the next one's growth); a PDF is
 * sent to `POST /api/session/files` as a streamed multipart body (never held whole by the client
 * either) and read back from `GET /api/files/{id}`. The peak RSS of each transfer is the kernel's
 * (VmHWM, reset before it through /proc/self/clear_refs): PGlite runs queries synchronously, so a
 * timer sampling memory would miss what happens inside one. The JS heap's peak is sampled every
 * 20 ms. Printed per size: the baseline, the peak during each transfer and its growth, and the
 * throughput. Not asserted: figures depend on the machine.
 *
 *   node --import tsx bench/files.ts     (or through bench/run.ts; BENCH_FILE_MB=50 picks one size)
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createApiAdapter } from '../adapters/api/index.ts';
import { registerChannels } from '../adapters/index.ts';
import { loadConfig } from '../src/config/env.ts';
import { createHub } from '../src/hub.ts';
import { createLogger } from '../src/logger.ts';

const MB = 1024 * 1024;
/** The sizes compared, each in its own process; BENCH_FILE_MB runs one. */
const FILE_SIZES_MB = process.env.BENCH_FILE_MB ? [Number(process.env.BENCH_FILE_MB)] : [10, 50];

export interface FilesBench {
  fileMb: number;
  baselineRssMb: number;
  upload: {
    seconds: number;
    mbPerSecond: number;
    peakRssMb: number;
    rssGrowthMb: number;
    peakHeapMb: number;
  };
  download: {
    seconds: number;
    mbPerSecond: number;
    peakRssMb: number;
    rssGrowthMb: number;
    peakHeapMb: number;
  };
}

/** The kernel's peak RSS of this process (VmHWM), bytes; 0 where /proc is not there. */
function kernelPeakRss(): number {
  try {
    const kb = /VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return Number(kb ?? 0) * 1024;
  } catch {
    return 0;
  }
}

function sampler() {
  // "5" resets VmHWM to the current RSS (Linux): the peak read at the end is this transfer's.
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // Not Linux: the samples below are all there is.
  }
  let peakRss = 0;
  let peakHeap = 0;
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      const m = process.memoryUsage();
      return {
        peakRss: Math.max(peakRss, m.rss, kernelPeakRss()),
        peakHeap: Math.max(peakHeap, m.heapUsed),
      };
    },
  };
}

const mb = (n: number) => Math.round((n / MB) * 10) / 10;

/** One size, in this process. */
async function benchOneSize(FILE_MB: number): Promise<FilesBench> {
  registerChannels();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sb-bench-files-'));
  const config = {
    ...loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      CONFIG_DIR: 'config',
    }),
    chatWaitMs: 0,
  };
  const hub = await createHub({
    config,
    logger: createLogger(process.env.BENCH_LOG_LEVEL ?? 'silent'),
    adapters: [createApiAdapter()],
  });
  // The limit is the bot's; for the bench, the default bot takes the large file.
  (hub.bots.rules('default', 'api') as { maxFileBytes: number }).maxFileBytes = (FILE_MB + 1) * MB;
  const { port } = await hub.start();
  const url = `http://127.0.0.1:${port}`;
  try {
    const opened = await fetch(`${url}/api/session`, { method: 'POST' });
    const session = (await opened.json()) as { token: string };
    if (opened.status !== 201) throw new Error(`session: ${opened.status} ${JSON.stringify(session)}`);
    if (global.gc) global.gc();
    await new Promise((r) => setTimeout(r, 200));
    const baseline = process.memoryUsage().rss;

    const boundary = 'benchboundary7MA4YWxkTrZu0gW';
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\nContent-Type: application/pdf\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const piece = Buffer.alloc(256 * 1024, 0x20);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(head);
        controller.enqueue(Buffer.from('%PDF-1.4\n'));
      },
      sent: 0,
      pull(controller) {
        const self = this as unknown as { sent: number };
        if (self.sent >= FILE_MB * MB - 9) {
          controller.enqueue(tail);
          controller.close();
          return;
        }
        controller.enqueue(piece);
        self.sent += piece.length;
      },
    } as UnderlyingDefaultSource<Uint8Array> & { sent: number });

    let s = sampler();
    let started = Date.now();
    const res = await fetch(`${url}/api/session/files`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${session.token}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
      },
      body,
      duplex: 'half',
    } as RequestInit);
    const uploaded = (await res.json()) as { file_id: string; size: number };
    if (res.status !== 201) throw new Error(`upload: ${res.status} ${JSON.stringify(uploaded)}`);
    let seconds = (Date.now() - started) / 1000;
    let peaks = s.stop();
    const upload = {
      seconds,
      mbPerSecond: Math.round((uploaded.size / MB / seconds) * 10) / 10,
      peakRssMb: mb(peaks.peakRss),
      rssGrowthMb: mb(peaks.peakRss - baseline),
      peakHeapMb: mb(peaks.peakHeap),
    };

    if (global.gc) global.gc();
    s = sampler();
    started = Date.now();
    const down = await fetch(`${url}/api/files/${uploaded.file_id}`, {
      headers: { authorization: `Bearer ${session.token}` },
    });
    let got = 0;
    for await (const chunk of down.body as unknown as AsyncIterable<Uint8Array>) got += chunk.length;
    seconds = (Date.now() - started) / 1000;
    peaks = s.stop();
    if (got !== uploaded.size) throw new Error(`download: ${got} of ${uploaded.size} bytes`);
    return {
      fileMb: FILE_MB,
      baselineRssMb: mb(baseline),
      upload,
      download: {
        seconds,
        mbPerSecond: Math.round((got / MB / seconds) * 10) / 10,
        peakRssMb: mb(peaks.peakRss),
        rssGrowthMb: mb(peaks.peakRss - baseline),
        peakHeapMb: mb(peaks.peakHeap),
      },
    };
  } finally {
    await hub.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

/** Each size in a child process of its own (the hub and this client, nothing else). */
export async function runFilesBench(): Promise<FilesBench[]> {
  const results: FilesBench[] = [];
  for (const size of FILE_SIZES_MB) {
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', new URL(import.meta.url).pathname],
      {
        env: { ...process.env, BENCH_FILES_CHILD: String(size) },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`files bench (${size} MB) exited with ${code}`);
    results.push(JSON.parse(out) as FilesBench);
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const child = process.env.BENCH_FILES_CHILD;
  const result = child ? await benchOneSize(Number(child)) : await runFilesBench();
  console.log(JSON.stringify(result, null, 2));
  process.exit(0);
}
