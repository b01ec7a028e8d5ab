import type { Envelope } from '../envelope.ts';
import {
  type Context,
  inPassedSpan,
  type Link,
  linkTo,
  recordSpan,
  type Span,
  SpanKind,
  traceContext,
  tracingEnabled,
} from './tracing.ts';

/**
 * The context an envelope's carried trace continues, parsed once per envelope (the queue job's
 * span links to it, and the turn's spans hang under it).
 */
const carriedContexts = new WeakMap<NonNullable<Envelope['trace']>, Context | undefined>();
function carriedContext(envelope: Envelope): Context | undefined {
  const carried = envelope.trace;
  if (!carried) return traceContext(undefined);
  if (carriedContexts.has(carried)) return carriedContexts.get(carried);
  const context = traceContext(carried);
  carriedContexts.set(carried, context);
  return context;
}

/** The span of the queue job draining an envelope with others: its turn links to it. */
const drains = new WeakMap<Envelope, Span>();

/**
 * One queue job that serves several envelopes (a lane's chunk): a span of its own, linked to the
 * trace of every envelope it serves (they belong to different traces, so it is the parent of none).
 * Nothing runs inside it as the active span: each envelope's turn finds it by the envelope.
 */
export function drainSpan<T>(lane: string, envelopes: Envelope[], fn: () => Promise<T>): Promise<T> {
  if (!tracingEnabled() || envelopes.length < 2) return fn();
  const links: Link[] = envelopes.flatMap((e) => (e.trace ? linkTo(carriedContext(e)) : []));
  return inPassedSpan(
    'switchboard.queue.drain',
    {
      kind: SpanKind.CONSUMER,
      links,
      attributes: {
        'messaging.system': 'switchboard',
        'messaging.operation.type': 'process',
        'messaging.destination.name': 'inbound',
        'messaging.batch.message_count': envelopes.length,
        'switchboard.lane': lane,
      },
    },
    (span) => {
      if (span) for (const e of envelopes) drains.set(e, span);
      return fn();
    },
  );
}

/** The `queue.wait` span's attributes: the same for every envelope, so made once. */
const WAIT_ATTRIBUTES = Object.freeze({ 'messaging.operation.type': 'receive' });

/**
 * A worker's turn for one envelope, continuing the trace its accept started: a `queue.wait` span
 * from the accept to now, then the `turn` span that the engine's own spans (dialog, LLM requests,
 * tools, commit) hang under. Linked to the queue job's span when a job serves several envelopes.
 * The wait span carries no more than its operation: the accept before it and the turn beside it
 * name the envelope (this runs for every message, and each attribute is exported with it).
 * `fn` is handed the turn's context (undefined with tracing off) to pass down: it is not made
 * the active one (see `inPassedSpan`).
 */
export function turnSpan<T>(envelope: Envelope, fn: (trace: Context | undefined) => Promise<T>): Promise<T> {
  if (!tracingEnabled()) return fn(undefined);
  const parent = carriedContext(envelope);
  if (envelope.trace?.acceptedAt)
    recordSpan('switchboard.queue.wait', {
      kind: SpanKind.CONSUMER,
      ...(parent ? { parent } : {}),
      startTime: Date.parse(envelope.trace.acceptedAt),
      attributes: WAIT_ATTRIBUTES,
    });
  const drain = drains.get(envelope);
  return inPassedSpan(
    'switchboard.turn',
    {
      kind: SpanKind.CONSUMER,
      ...(parent ? { parent } : {}),
      ...(drain ? { links: [{ context: drain.spanContext() }] } : {}),
      attributes: {
        'messaging.system': 'switchboard',
        'messaging.operation.type': 'process',
        'messaging.destination.name': 'inbound',
        'switchboard.channel': envelope.channel,
        'switchboard.bot': envelope.bot,
        'switchboard.envelope.id': envelope.id,
        'switchboard.envelope.kind': envelope.kind,
      },
    },
    async (span, trace) => {
      const outcome = await fn(trace);
      if (typeof outcome === 'string') span?.setAttribute('switchboard.turn.outcome', outcome);
      return outcome;
    },
  );
}
