import { performance } from 'node:perf_hooks';
import type { Envelope } from '../envelope.ts';
import {
  carryAcceptTrace,
  commitSpanOptions,
  drainSpan,
  startAcceptSpan,
  turnSpan,
} from './envelope-spans.ts';
import { type Context, inPassedSpan, type Link, linkedContext, rootContext, spanIn } from './tracing.ts';

/**
 * Tracing's warm-up: before a process takes its first message, it runs its per-message tracing
 * path on synthetic messages, through the hub's own tracer and span processor, which encodes
 * their spans and drops them rather than exporting them (`EncodingSpanProcessor.discardWhile`).
 * A process's tracing code is otherwise compiled by V8 while it serves: measured alone
 * (`npm run bench -- tracing-path`), the path's first ten thousand messages in a fresh process
 * cost about three times what each ten thousand after them do, most of it compiling the tracing
 * code and running it before it is optimized (README "Tracing"). Paid before the process takes
 * work, that cost no longer slows the first messages of a worker that was just started, or added
 * to a busy hub.
 */

/** The most envelopes a drained chunk holds in the warm-up: chunks of 1 to this many, in turn. */
const WARM_UP_CHUNK_MAX = 4;

/** Lanes the warm-up's envelopes are spread over (a lane's name is a span attribute). */
const WARM_UP_LANES = 64;

export interface WarmUp {
  /** Synthetic messages run through the tracing path. */
  readonly messages: number;
  /** Spans made, encoded and thrown away. */
  readonly spans: number;
  /** How long it took (wall clock). */
  readonly ms: number;
}

/**
 * Runs the tracing path of `role` on `messages` synthetic messages: a gateway's accepts; a
 * worker's turns (the accept that carries each envelope's trace, its queue wait, its turn, its
 * queue job and its commit), as the real ones go, in chunks of 1 to 4 (a turn with and without a
 * queue job, committed alone or with others), inside `discardWhile` (the span processor's).
 * Nothing else may end spans meanwhile: they would be dropped too.
 */
export async function warmTracing(
  role: string,
  discardWhile: (fn: () => Promise<void>) => Promise<number>,
  messages: number,
): Promise<WarmUp> {
  const started = performance.now();
  const turns = role !== 'gateway';
  const spans = await discardWhile(async () => {
    for (let n = 0, size = 1; n < messages; n += size, size = (size % WARM_UP_CHUNK_MAX) + 1) {
      const envelopes: Envelope[] = [];
      for (let i = 0; i < size && n + i < messages; i++) envelopes.push(accepted(n + i));
      if (turns) await drained(`warm-up:${n % WARM_UP_LANES}`, envelopes);
    }
  });
  return { messages, spans, ms: Math.round(performance.now() - started) };
}

/**
 * An envelope accepted (its accept's span ended), as a worker reads it from the queue: JSON. Not
 * made by `parseEnvelope`, which knows only the channels of adapters loaded later; its fields in
 * the order the parsed envelopes have them.
 */
function accepted(n: number): Envelope {
  const envelope: Envelope = {
    id: `warm-up:${n}`,
    kind: 'message',
    channel: 'api',
    bot: 'warm-up',
    from: { id: `warm-up:${n % WARM_UP_LANES}` },
    text: 'warm-up',
    attachments: [],
    meta: {},
    receivedAt: new Date().toISOString(),
  };
  const span = startAcceptSpan(envelope, rootContext()!);
  carryAcceptTrace(envelope, span);
  span.end();
  return JSON.parse(JSON.stringify(envelope)) as Envelope;
}

/** One queue job's envelopes through their turns and their commit. */
function drained(lane: string, envelopes: Envelope[]): Promise<void> {
  return drainSpan(lane, envelopes.length, async (job) => {
    const links: Link[] = [];
    for (const envelope of envelopes) {
      await turnSpan(
        envelope,
        async (trace) => {
          const span = spanIn(trace);
          span?.setAttribute('switchboard.session.id', envelope.from.id);
          if (envelopes.length === 1) await commit(1, undefined, trace);
          else if (span) links.push({ context: span.spanContext() });
          span?.setAttribute('switchboard.commit.result', 'committed');
          return envelopes.length === 1 ? 'committed' : 'held';
        },
        job,
      );
    }
    if (links.length > 0) {
      await commit(links.length, links, rootContext());
      // After a held turns' commit, each turn's lines go out in its own trace, a context made of
      // its link (src/engine/engine.ts, afterCommit): a span wrapping a context of the hub's own.
      for (const link of links) spanIn(linkedContext(link))?.spanContext();
    }
  });
}

/** A commit's span: a turn's child (committed alone), or a root linked to the turns it commits. */
function commit(turns: number, links: Link[] | undefined, parent: Context | undefined): Promise<void> {
  return inPassedSpan('switchboard.commit', commitSpanOptions(turns, links, parent), async () => undefined);
}
