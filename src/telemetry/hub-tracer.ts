import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  type Attributes,
  type AttributeValue,
  type Context,
  context as contextApi,
  type Exception,
  type HrTime,
  type Link,
  SamplingDecision,
  type Span,
  type SpanContext,
  SpanKind,
  type SpanOptions,
  type SpanStatus,
  SpanStatusCode,
  type TimeInput,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { isTracingSuppressed } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  ParentBasedSampler,
  type ReadableSpan,
  type Sampler,
  type SpanProcessor,
  type TimedEvent,
} from '@opentelemetry/sdk-trace-node';
import type { EncodingSpanProcessor } from './encoding-span-processor.ts';
import { CarriedSpanContext, HubSpanContext, IdContext } from './span-ids.ts';

/**
 * The hub's tracer: the OpenTelemetry API's `Tracer` and `TracerProvider`, making spans that the
 * SDK's span processors (the batch one, with the hub's OTLP encoder behind it) take as the SDK's
 * own `ReadableSpan`s. The SDK's tracer was most of what tracing cost a worker per message after
 * the export (README "Tracing"): every span validated and copied its attributes twice, asked the
 * sampler through several layers, read the clock as `HrTime` arrays, made its ids with
 * `Math.random` byte by byte, and counted itself in a meter. Here a span keeps what it is given
 * (copied only when changed), times are epoch milliseconds (a double: sub-microsecond for dates of
 * this century) turned into `HrTime` only when asked, ids are sliced from a pool of random bytes
 * (`crypto`), and a parent-based sampler (the default) follows a valid parent's `sampled` flag
 * without a call — what `ParentBasedSampler` decides with its default delegates —, as it records
 * a root where the sampler records every root. Everything else (a root's sampling by another
 * sampler, any other sampler) is the SDK's `Sampler`, asked as its tracer asks it.
 */

/** Random bytes taken for ids at once (a span takes 8, a root 24). */
const POOL_BYTES = 8_192;
const pool = Buffer.allocUnsafe(POOL_BYTES);
/**
 * The pool in hex, ids sliced from it: a slice of a string is a small object that points into it,
 * where `Buffer.toString('hex', …)` of each id was a call into C++ and a string of its own.
 */
let hexPool = '';
let hexAt = 0;

const ZEROS: Record<number, string> = { 16: '0'.repeat(16), 32: '0'.repeat(32) };

const INVALID: SpanContext = { traceId: ZEROS[32]!, spanId: ZEROS[16]!, traceFlags: 0 };

/** Where in `pool` the ids `randomHex` returned last are (their bytes, until the next refill). */
let idAt = 0;

/** Whether the 8 bytes of `pool` from `at` are all zeros (the invalid span id, or half a trace id). */
function zeros8(at: number): boolean {
  return (pool.readInt32BE(at) | pool.readInt32BE(at + 4)) === 0;
}

/**
 * Random hex digits for ids, sliced from the pool: 16, a span's id; 48, a root's trace id (the
 * first 32) and span id. Their bytes are at `idAt` in `pool`, for the span context's words
 * (src/telemetry/span-ids.ts), which need not be read back from the hex.
 */
function randomHex(chars: 16 | 48): string {
  for (;;) {
    if (hexAt + chars > hexPool.length) {
      randomFillSync(pool);
      hexPool = pool.toString('hex');
      hexAt = 0;
    }
    const at = hexAt >>> 1;
    hexAt += chars;
    // All zeros is the invalid id (W3C trace context): never handed out.
    const invalid = chars === 16 ? zeros8(at) : (zeros8(at) && zeros8(at + 8)) || zeros8(at + 16);
    if (invalid) continue;
    idAt = at;
    return hexPool.slice(hexAt - chars, hexAt);
  }
}

/**
 * What a span has of events and links until it is given some, and its status until it is set:
 * shared (and frozen), replaced by an object of the span's own when it changes. Most spans never
 * have an event, and most have no link.
 */
const NO_EVENTS = Object.freeze([]) as unknown as TimedEvent[];
const NO_LINKS = Object.freeze([]) as unknown as Link[];
const UNSET: SpanStatus = Object.freeze({ code: SpanStatusCode.UNSET });

const timeOrigin = performance.timeOrigin;

/** Now, in epoch milliseconds with the monotonic clock's fraction (as the SDK reads it). */
function nowMs(): number {
  return timeOrigin + performance.now();
}

/**
 * A `TimeInput` as epoch milliseconds: a number no later than the monotonic clock's now is that
 * clock's (as the SDK reads one), a larger one epoch milliseconds.
 */
function toMs(time: TimeInput | undefined): number {
  if (time === undefined) return nowMs();
  // Past 1e12 (2001) it is epoch milliseconds either way (the monotonic clock would be 31 years on).
  if (typeof time === 'number') return time > 1e12 || time > performance.now() ? time : timeOrigin + time;
  if (time instanceof Date) return time.getTime();
  return time[0] * 1e3 + time[1] / 1e6;
}

/** Epoch milliseconds as `HrTime` (seconds, nanoseconds). */
export function hrTimeOf(ms: number): HrTime {
  let seconds = Math.floor(ms / 1e3);
  let nanos = Math.round((ms - seconds * 1e3) * 1e6);
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  return [seconds, nanos];
}

export interface InstrumentationScope {
  name: string;
  version?: string;
  schemaUrl?: string;
}

/** A recording span: the API's `Span`, read by span processors and exporters as a `ReadableSpan`. */
export class HubSpan implements Span, ReadableSpan {
  /** Epoch milliseconds; `endMs` is 0 until the span ends. */
  startMs: number;
  endMs = 0;
  events: TimedEvent[] = NO_EVENTS;
  links: Link[];
  status: SpanStatus = UNSET;
  /** Whether `attributes` is this span's own object (the one it was given may be shared). */
  private ownAttributes = false;

  constructor(
    private readonly tracer: HubTracer,
    public name: string,
    private readonly context: SpanContext,
    public readonly kind: SpanKind,
    public attributes: Attributes,
    links: Link[] | undefined,
    startMs: number,
    public readonly parentSpanContext: SpanContext | undefined,
    ownAttributes: boolean,
  ) {
    this.links = links ?? NO_LINKS;
    this.startMs = startMs;
    this.ownAttributes = ownAttributes;
  }

  // Nothing is dropped; read from the class rather than kept on every span (a span lives until
  // it ends, and with `http/json` until its batch is exported: every field is carried that long).
  get droppedAttributesCount(): number {
    return 0;
  }
  get droppedEventsCount(): number {
    return 0;
  }
  get droppedLinksCount(): number {
    return 0;
  }

  get resource(): Resource {
    return this.tracer.resource;
  }
  get instrumentationScope(): InstrumentationScope {
    return this.tracer.scope;
  }
  get startTime(): HrTime {
    return hrTimeOf(this.startMs);
  }
  get endTime(): HrTime {
    return hrTimeOf(this.endMs || this.startMs);
  }
  get duration(): HrTime {
    return hrTimeOf(this.endMs ? this.endMs - this.startMs : 0);
  }
  get ended(): boolean {
    return this.endMs !== 0;
  }

  spanContext(): SpanContext {
    return this.context;
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (this.endMs !== 0 || value == null) return this;
    if (!this.ownAttributes) {
      this.attributes = { ...this.attributes };
      this.ownAttributes = true;
    }
    this.attributes[key] = value;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    for (const [key, value] of Object.entries(attributes))
      if (value !== undefined) this.setAttribute(key, value);
    return this;
  }

  addEvent(name: string, attributesOrTime?: Attributes | TimeInput, time?: TimeInput): this {
    if (this.endMs !== 0) return this;
    const isTime =
      typeof attributesOrTime === 'number' ||
      Array.isArray(attributesOrTime) ||
      attributesOrTime instanceof Date;
    if (this.events === NO_EVENTS) this.events = [];
    this.events.push({
      name,
      attributes: isTime || !attributesOrTime ? {} : { ...(attributesOrTime as Attributes) },
      time: hrTimeOf(toMs(isTime ? (attributesOrTime as TimeInput) : time)),
      droppedAttributesCount: 0,
    });
    return this;
  }

  /** One link (a queue job's span gets one from each turn it serves): no array made for it. */
  addLink(link: Link): this {
    if (this.endMs !== 0) return this;
    // Shared (none yet, or a frozen array spans share): copied first.
    if (Object.isFrozen(this.links)) this.links = [...this.links];
    this.links.push(link);
    return this;
  }

  addLinks(links: Link[]): this {
    for (const link of links) this.addLink(link);
    return this;
  }

  /** As the SDK: UNSET changes nothing, OK is final, a message belongs to ERROR only. */
  setStatus(status: SpanStatus): this {
    if (this.endMs !== 0 || status.code === SpanStatusCode.UNSET || this.status.code === SpanStatusCode.OK)
      return this;
    this.status =
      status.code === SpanStatusCode.ERROR && status.message !== undefined
        ? { code: status.code, message: status.message }
        : { code: status.code };
    return this;
  }

  updateName(name: string): this {
    if (this.endMs === 0) this.name = name;
    return this;
  }

  end(endTime?: TimeInput): void {
    if (this.endMs !== 0) return;
    const end = toMs(endTime);
    // Never before its start (a clock stepped back, a start time given from another clock).
    this.endMs = end < this.startMs ? this.startMs : end;
    this.tracer.processor.onEnd(this);
  }

  isRecording(): boolean {
    return this.endMs === 0;
  }

  /** The `exception` event of the semantic conventions, as the SDK records it. */
  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: Attributes = {};
    if (typeof exception === 'string') attributes['exception.message'] = exception;
    else if (exception) {
      if (exception.code) attributes['exception.type'] = String(exception.code);
      else if (exception.name) attributes['exception.type'] = exception.name;
      if (exception.message) attributes['exception.message'] = exception.message;
      if (exception.stack) attributes['exception.stacktrace'] = exception.stack;
    }
    this.addEvent('exception', attributes, time);
  }
}

/**
 * A span processor that takes a finished span by its fields (`EncodingSpanProcessor`, whose
 * method is the one declaration of them): see `HubTracer.recordEnded`.
 */
type EndedRecorder = Pick<EncodingSpanProcessor, 'recordEnded'>;

function isEndedRecorder(processor: SpanProcessor): processor is SpanProcessor & EndedRecorder {
  return typeof (processor as Partial<EndedRecorder>).recordEnded === 'function';
}

export class HubTracer implements Tracer {
  /** Whether the sampler follows a valid parent's flag (ParentBasedSampler with its default delegates). */
  private readonly followsParent: boolean;
  /**
   * Whether every root is recorded, as the default sampler (`parentbased_always_on`) and
   * `always_on` decide: a gateway's accept is a root for each message it takes without a trace.
   * Read from `ParentBasedSampler`'s own `_root`: an SDK that names it otherwise is asked.
   */
  private readonly samplesRoots: boolean;
  /** The last parent's span context found valid (see `isValidParent`). */
  private validParent: SpanContext | undefined = undefined;
  /** The processor, when it takes finished spans by their fields (see `recordEnded`). */
  private readonly recorder: EndedRecorder | undefined;

  constructor(
    readonly resource: Resource,
    readonly scope: InstrumentationScope,
    private readonly sampler: Sampler,
    readonly processor: SpanProcessor,
    parentBasedDefaults: boolean,
  ) {
    this.followsParent = parentBasedDefaults && sampler instanceof ParentBasedSampler;
    this.samplesRoots =
      sampler instanceof AlwaysOnSampler ||
      (sampler instanceof ParentBasedSampler &&
        (sampler as unknown as { _root?: unknown })._root instanceof AlwaysOnSampler);
    this.recorder = isEndedRecorder(processor) ? processor : undefined;
  }

  /**
   * A span that ends where it starts in the code, with nothing run inside it (a queue wait, from
   * when its envelope was accepted to now): `startSpan(name, options, context, true).end()`, and
   * exported the same. When its parent decides its sampling (a valid parent under the default
   * sampler) and it has no links, a processor that takes spans by their fields is handed them:
   * no span, span context or time arrays are made for a span that no code holds.
   */
  recordEnded(name: string, options: SpanOptions, context: Context): void {
    const recorder = this.recorder;
    if (!recorder || !this.followsParent || options.root || options.links?.length) {
      this.startSpan(name, options, context, true).end();
      return;
    }
    if (isTracingSuppressed(context)) return;
    const parentSpan = trace.getSpan(context);
    const parent = parentSpan?.spanContext();
    if (parent === undefined || !this.isValidParent(parentSpan!, parent)) {
      // A root: its sampler decides.
      this.startSpan(name, options, context, true).end();
      return;
    }
    // Not sampled: a span that records nothing (as startSpan makes it).
    if ((parent.traceFlags & 1) === 0) return;
    const spanId = randomHex(16);
    const startMs = toMs(options.startTime);
    const end = nowMs();
    recorder.recordEnded(
      this.resource,
      this.scope,
      parent,
      spanId,
      name,
      options.kind ?? SpanKind.INTERNAL,
      startMs,
      end < startMs ? startMs : end,
      options.attributes ?? {},
      pool,
      idAt,
    );
  }

  /**
   * `ownAttributes`: `options.attributes` and `options.links` are the span's to change (made for
   * it, not used again by the caller; the hub's span helpers, src/telemetry/tracing.ts, make them
   * so), rather than copied. A frozen attributes object or links array is copied all the same when changed.
   */
  startSpan(name: string, options: SpanOptions = {}, context?: Context, ownAttributes = false): Span {
    let ctx = context ?? contextApi.active();
    if (options.root) ctx = trace.deleteSpan(ctx);
    if (isTracingSuppressed(ctx)) return trace.wrapSpanContext(INVALID);
    const parentSpan = trace.getSpan(ctx);
    const parent = parentSpan?.spanContext();
    const valid = parent !== undefined && this.isValidParent(parentSpan!, parent);
    let traceId: string;
    let spanId: string;
    // The ids' bytes in the pool: the span id's, and a root's trace id's (see randomHex).
    let spanAt: number;
    let traceAt = -1;
    if (valid) {
      traceId = parent.traceId;
      spanId = randomHex(16);
      spanAt = idAt;
    } else {
      const ids = randomHex(48);
      traceId = ids.slice(0, 32);
      spanId = ids.slice(32);
      traceAt = idAt;
      spanAt = idAt + 16;
    }
    const kind = options.kind ?? SpanKind.INTERNAL;
    let attributes = options.attributes ?? {};
    let own = ownAttributes || options.attributes === undefined;
    let traceState = valid ? parent.traceState : undefined;
    let decision: SamplingDecision;
    if (valid && this.followsParent) {
      decision = parent.traceFlags & 1 ? SamplingDecision.RECORD_AND_SAMPLED : SamplingDecision.NOT_RECORD;
    } else if (!valid && this.samplesRoots) {
      decision = SamplingDecision.RECORD_AND_SAMPLED;
    } else {
      const links = options.links ?? [];
      const result = this.sampler.shouldSample(ctx, traceId, name, kind, attributes, links);
      decision = result.decision;
      if (result.traceState) traceState = result.traceState;
      if (result.attributes) {
        attributes = { ...attributes, ...result.attributes };
        own = true;
      }
    }
    // The SDK tracer's fields (a trace state or undefined), and the ids' bytes for the encoder
    // (src/telemetry/span-ids.ts), read now: a child's trace from its parent's when it has them.
    const spanContext = new HubSpanContext(
      traceId,
      spanId,
      decision === SamplingDecision.RECORD_AND_SAMPLED ? 1 : 0,
      traceState,
      valid && parent instanceof IdContext ? parent : undefined,
      pool,
      spanAt,
      traceAt,
    );
    if (decision === SamplingDecision.NOT_RECORD) return trace.wrapSpanContext(spanContext);
    const span = new HubSpan(
      this,
      name,
      spanContext,
      kind,
      attributes,
      options.links && !ownAttributes ? [...options.links] : options.links,
      toMs(options.startTime),
      valid ? parent : undefined,
      own && !Object.isFrozen(attributes),
    );
    this.processor.onStart(span as never, ctx);
    return span;
  }

  /**
   * A span of this tracer's has valid ids (it made them), as has a carried context the hub read
   * (`CarriedSpanContext`): only another's is checked, and the same one once.
   */
  private isValidParent(span: Span, context: SpanContext): boolean {
    if (span instanceof HubSpan || context instanceof CarriedSpanContext || context === this.validParent)
      return true;
    if (!trace.isSpanContextValid(context)) return false;
    this.validParent = context;
    return true;
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...args: unknown[]): ReturnType<F> {
    const fn = args.at(-1) as (span: Span) => ReturnType<F>;
    const options = (args.length > 1 ? args[0] : undefined) as SpanOptions | undefined;
    const parent = (args.length > 2 ? args[1] : undefined) as Context | undefined;
    const ctx = parent ?? contextApi.active();
    const span = this.startSpan(name, options, ctx);
    return contextApi.with(trace.setSpan(ctx, span), fn, undefined, span);
  }
}

/** The hub's tracers (one per scope), over one resource, sampler and span processor. */
export class HubTracerProvider implements TracerProvider {
  private readonly tracers = new Map<string, HubTracer>();

  constructor(
    private readonly options: {
      resource: Resource;
      sampler: Sampler;
      /** Whether `sampler`, if parent-based, has the default delegates (`samplerFromEnv`'s do). */
      parentBasedDefaults: boolean;
      processor: SpanProcessor;
    },
  ) {}

  getTracer(name: string, version?: string, options?: { schemaUrl?: string }): Tracer {
    const key = `${name}@${version ?? ''}:${options?.schemaUrl ?? ''}`;
    let tracer = this.tracers.get(key);
    if (!tracer) {
      const scope: InstrumentationScope = {
        name,
        ...(version ? { version } : {}),
        ...(options?.schemaUrl ? { schemaUrl: options.schemaUrl } : {}),
      };
      const o = this.options;
      tracer = new HubTracer(o.resource, scope, o.sampler, o.processor, o.parentBasedDefaults);
      this.tracers.set(key, tracer);
    }
    return tracer;
  }

  forceFlush(): Promise<void> {
    return this.options.processor.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.options.processor.shutdown();
  }
}
