// One fresh process of `npm run bench -- tracing-path` (bench/tracing-path.ts): a worker's
// per-message tracing path alone — no engine, queue or database — on MESSAGES synthetic
// envelopes, and the CPU (every thread of the process: V8's compiler and collector included) it
// took. Runs compiled, from dist/bench/, as the hub's processes do.
//   argv: on|off, messages; env: OTEL_EXPORTER_OTLP_ENDPOINT (on), SWITCHBOARD_TRACE_WARMUP.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Envelope } from '../src/envelope.ts';
import { commitSpanOptions, drainSpan, turnSpan } from '../src/telemetry/envelope-spans.ts';
import { inPassedSpan, type Link, rootContext, spanIn, startTracing } from '../src/telemetry/tracing.ts';

/** Envelopes a lane's queue job drains at once here (a busy lane's). */
const CHUNK = 4;

const [mode, count] = process.argv.slice(2);
const messages = Number(count);
const tracing = mode === 'on' ? await startTracing({ role: 'worker' }) : undefined;

// Envelopes as a gateway's accept leaves them, made before the measured part.
const envelopes: Envelope[] = [];
for (let i = 0; i < messages; i++) {
  const envelope: Envelope = {
    id: `api:${randomBytes(8).toString('hex')}`,
    kind: 'message',
    channel: 'api',
    bot: 'bench',
    from: { id: `person-${i % 1_000}` },
    text: 'hello',
    attachments: [],
    meta: {},
    receivedAt: new Date().toISOString(),
    trace: {
      traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`,
      acceptedAt: Date.now(),
    },
  };
  envelopes.push(JSON.parse(JSON.stringify(envelope)) as Envelope);
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const cpuBefore = process.cpuUsage();
const started = performance.now();
for (let n = 0; n < messages; n += CHUNK) {
  const chunk = envelopes.slice(n, n + CHUNK);
  await drainSpan(`lane-${n % 97}`, chunk.length, async (job) => {
    const links: Link[] = [];
    const turns = chunk.map((envelope) =>
      turnSpan(
        envelope,
        async (trace) => {
          const span = spanIn(trace);
          span?.setAttribute('switchboard.session.id', envelope.from.id);
          await tick();
          if (span) links.push({ context: span.spanContext() });
          span?.setAttribute('switchboard.commit.result', 'committed');
          return 'committed';
        },
        job,
      ),
    );
    await tick();
    await inPassedSpan(
      'switchboard.commit',
      commitSpanOptions(chunk.length, links.length > 0 ? links : undefined, rootContext()),
      tick,
    );
    await Promise.all(turns);
  });
}
const wallMs = performance.now() - started;
// The last batch's export is part of the cost.
await tracing?.shutdown();
const cpu = process.cpuUsage(cpuBefore);
process.stdout.write(
  `${JSON.stringify({ cpuMs: (cpu.user + cpu.system) / 1000, wallMs, warmUp: tracing?.warmUp })}\n`,
);
