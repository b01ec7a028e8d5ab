/**
 * The hub of `npm run bench -- embedded`, in a process of its own: an embedded hub (PGlite, the
 * in-process queue) run from the build's JavaScript, as `npm start` runs it, so that the peak RSS
 * the benchmark reads is the hub's and not its load generator's or tsx's. TypeScript, checked
 * with the rest (`npm run typecheck`), and compiled by the build like src/ (scripts/build.js:
 * dist/bench/embedded-hub.js, its imports of src/ and adapters/ pointing into dist/): no tsx
 * loader in this process.
 *
 * Driven over IPC by bench/run.ts (the driver): on `{type: 'run', sessions, messages}` this
 * process feeds the hub's ingress the way a channel adapter does (each session's messages in
 * order, the next once the one before is accepted; all sessions at once) and reports, in batches,
 * `{type: 'accepted', items: [[envelopeId, at]…]}` and, as replies are persisted,
 * `{type: 'completed', items: [[envelopeId, at]…]}` (`at`: ms on this process's clock, so both
 * ends of a latency are read from one clock); it keeps none of them. The latencies, the tables
 * and everything else of the benchmark live in the driver. `{type: 'stop'}` stops the hub.
 *
 *   argv: <data dir> <config dir>
 */
import { registerChannels } from '../adapters/index.ts';
import { loadConfig } from '../src/config/env.ts';
import { deferWasmTierUp, limitHeapGrowth } from '../src/hub/heap.ts';
import { createHub } from '../src/hub.ts';
import { createLogger } from '../src/logger.ts';
import { benchEnvelope as envelope } from './envelope.ts';

/** What the driver sends this process. */
export type HubCommand = { type: 'run'; sessions: number; messages: number } | { type: 'stop' };
/** What this process sends the driver: `items` are `[envelopeId, at]`. */
export type HubNotice =
  | { type: 'ready' }
  | { type: 'accepted' | 'completed'; items: [string, number][] }
  | { type: 'error'; message: string };

const [dataDir, configDir] = process.argv.slice(2);
if (!process.send || !dataDir || !configDir) {
  process.stderr.write(
    'dist/bench/embedded-hub.js is started by bench/run.ts (an IPC channel, <data dir> <config dir>)\n',
  );
  process.exit(2);
}
const send = (notice: HubNotice) => process.send!(notice);

// As `switchboard start` does for an embedded hub (src/cli.ts); BENCH_V8_HEAP_DEFAULT=1 leaves V8's
// heap growth, BENCH_V8_WASM_DEFAULT=1 its WebAssembly tiering as V8 sets them.
if (!process.env.BENCH_V8_HEAP_DEFAULT) limitHeapGrowth();
if (!process.env.BENCH_V8_WASM_DEFAULT) deferWasmTierUp();
registerChannels();
const config = loadConfig({
  PORT: '0',
  HOST: '127.0.0.1',
  DATA_DIR: dataDir,
  LOG_LEVEL: 'silent',
  CONFIG_DIR: configDir,
});
const hub = await createHub({ config, logger: createLogger('silent') });
await hub.start();

const now = () => performance.timeOrigin + performance.now();

/** Outgoing notices, sent together once per turn of the event loop (one IPC message, not one per envelope). */
const outbox: Record<'accepted' | 'completed', [string, number][]> = { accepted: [], completed: [] };
let flushing = false;
function post(kind: 'accepted' | 'completed', item: [string, number]): void {
  outbox[kind].push(item);
  if (flushing) return;
  flushing = true;
  setImmediate(() => {
    flushing = false;
    for (const type of ['accepted', 'completed'] as const) {
      if (outbox[type].length === 0) continue;
      send({ type, items: outbox[type] });
      outbox[type] = [];
    }
  });
}

const publish = hub.bus.publish.bind(hub.bus);
hub.bus.publish = async (topic, message) => {
  const turn = message as { type?: string; envelopeId?: string } | undefined;
  if (turn?.type === 'turn.completed' && turn.envelopeId) post('completed', [turn.envelopeId, now()]);
  return publish(topic, message);
};

/** One session's messages, in order: each goes once the one before is accepted. */
async function feed(session: number, messages: number): Promise<void> {
  for (let n = 0; n < messages; n++) {
    const e = envelope(session, n);
    await hub.ingress.accept(e);
    post('accepted', [e.id, now()]);
  }
}

process.on('message', (command: HubCommand) => {
  if (command.type === 'run') {
    for (let s = 0; s < command.sessions; s++)
      feed(s, command.messages).catch((err: Error) => send({ type: 'error', message: err.message }));
  } else if (command.type === 'stop') {
    hub.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  }
});
send({ type: 'ready' });
