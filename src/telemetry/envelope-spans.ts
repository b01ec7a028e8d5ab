import type { Envelope } from '../envelope.ts';
import { lanePseudonym } from './lane-pseudonym.ts';
import {
  acceptedAtMs,
  type Context,
  carriedSpanContext,
  endWhenSettled,
  inPassedSpan,
  type Link,
  recordSpan,
  remoteContext,
  rootContext,
  type Span,
  SpanKind,
  type SpanOptions,
  spanOptions,
  spanTrace,
  startSpan,
  tracingEnabled,
  withSpanIn,
} from './tracing.ts';

/**
 * What a queue job draining several envelopes gives each one's turn (handed along with each
 * envelope, `DeliveryInfo.job`): the job's span, and the links to it (the same for every turn:
 * one frozen array, which a span copies before it changes it).
 */
export interface DrainedJob {
  readonly span: Span;
  readonly links: Link[];
}

/**
 * One queue job that serves several envelopes (a lane's chunk of `count`): a span of its own,
 * linked to the trace of every envelope it serves (they belong to different traces, so it is the
 * parent of none). Nothing runs inside it as the active span: `fn` is handed the job (undefined
 * with tracing off or one envelope) to hand each envelope's turn, which links the job's span to
 * the envelope's trace as it starts — the job reads nothing of the envelopes itself. (It did, and
 * the lane runner's `drain`, which inlines this, was optimized again each time an array or an
 * envelope of another shape came: its compilations were among the largest of a traced worker.)
 */
export function drainSpan<T>(
  lane: string,
  count: number,
  fn: (job: DrainedJob | undefined) => Promise<T>,
): Promise<T> {
  if (!tracingEnabled() || count < 2) return fn(undefined);
  return inPassedSpan(
    'switchboard.queue.drain',
    spanOptions(SpanKind.CONSUMER, {
      'messaging.system': 'switchboard',
      'messaging.operation.type': 'process',
      'messaging.destination.name': 'inbound',
      'messaging.batch.message_count': count,
      // The lane names the person (a phone number, an address): only its pseudonym is exported,
      // one HMAC per job (lane-pseudonym.ts).
      'switchboard.lane.hash': lanePseudonym(lane),
    }),
    (span) =>
      fn(
        span && {
          span,
          links: Object.freeze([Object.freeze({ context: span.spanContext() })]) as Link[],
        },
      ),
  );
}

/**
 * The accept of one envelope (the ingress's, and the warm-up's: src/telemetry/warm-up.ts): a
 * producer span under `parent`, handed back rather than made active, for the accept to end.
 */
export function startAcceptSpan(
  input: { channel: string; bot: string; id: string; kind?: string | undefined },
  parent: Context,
): Span {
  return startSpan(
    'switchboard.accept',
    spanOptions(
      SpanKind.PRODUCER,
      {
        'messaging.system': 'switchboard',
        'messaging.operation.type': 'send',
        'messaging.destination.name': 'inbound',
        'switchboard.channel': input.channel,
        'switchboard.bot': input.bot,
        'switchboard.envelope.id': input.id,
        'switchboard.envelope.kind': input.kind ?? 'message',
      },
      undefined,
      parent,
    ),
  )!;
}

/**
 * Puts the accept's trace on the envelope it accepted (set on the envelope just parsed, the
 * accept's own object, rather than on a copy of it), with the accept's time as epoch
 * milliseconds: where the worker's queue wait starts. The ingress's, and the warm-up's.
 */
export function carryAcceptTrace(envelope: Envelope, span: Span): void {
  const carried = spanTrace(span);
  if (!carried) return;
  carried.acceptedAt = Date.now();
  envelope.trace = carried;
}

/**
 * The options of a `switchboard.commit` span (the group commit's, src/engine/group-commit.ts,
 * and the warm-up's): `turns` committed by one statement, linked to `links`, under `parent`.
 */
export function commitSpanOptions(
  turns: number,
  links: Link[] | undefined,
  parent: Context | undefined,
): SpanOptions {
  return spanOptions(SpanKind.INTERNAL, { 'switchboard.commit.turns': turns }, links, parent);
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
 * the active one (see `inPassedSpan`). An outcome `fn` resolves with (a string) is the turn's
 * `switchboard.turn.outcome`.
 * Every message takes this way: the options are made whole, of one shape each (no spread of
 * what may be absent), and the turn's span ends in the one step that sets its outcome.
 */
export function turnSpan<T>(
  envelope: Envelope,
  fn: (trace: Context | undefined) => Promise<T>,
  job?: DrainedJob,
): Promise<T> {
  if (!tracingEnabled()) return fn(undefined);
  const carried = envelope.trace;
  const context = carriedSpanContext(carried);
  // The job's span links to the trace of each envelope it reaches.
  if (job && context) job.span.addLink({ context });
  const parent = remoteContext(context)!;
  const acceptedAt = carried && acceptedAtMs(carried);
  if (acceptedAt !== undefined)
    recordSpan(
      'switchboard.queue.wait',
      spanOptions(SpanKind.CONSUMER, WAIT_ATTRIBUTES, undefined, parent, acceptedAt),
    );
  const options = spanOptions(
    SpanKind.CONSUMER,
    {
      'messaging.system': 'switchboard',
      'messaging.operation.type': 'process',
      'messaging.destination.name': 'inbound',
      'switchboard.channel': envelope.channel,
      'switchboard.bot': envelope.bot,
      'switchboard.envelope.id': envelope.id,
      'switchboard.envelope.kind': envelope.kind,
    },
    job?.links,
    parent,
  );
  const span = startSpan('switchboard.turn', options)!;
  let running: Promise<T>;
  try {
    // Under the root rather than `parent`, which holds nothing but its span (the turn's replaces
    // it): the carried parent's context is not kept for as long as the turn runs.
    running = fn(withSpanIn(rootContext()!, span));
  } catch (err) {
    running = Promise.reject(err);
  }
  return endWhenSettled(span, running, 'switchboard.turn.outcome');
}
