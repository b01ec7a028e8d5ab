import {
  type Attributes,
  type Context,
  context,
  diag,
  type SpanContext,
  type SpanKind,
} from '@opentelemetry/api';
import {
  type ExportResult,
  ExportResultCode,
  globalErrorHandler,
  suppressTracing,
} from '@opentelemetry/core';
import type { BufferConfig, ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { InstrumentationScope } from './hub-tracer.ts';
import { type EncodedSpans, SpanBatchEncoder } from './otlp-proto.ts';

type Resource = ReadableSpan['resource'];

/** A batch of spans as its OTLP/protobuf request, for an exporter that sends bytes as they are. */
export interface EncodedRequest {
  readonly bytes: Uint8Array;
  /** Spans in it (the exporter's own metrics count them). */
  readonly count: number;
}

/** What sends the requests: the OTLP exporter's transport (src/telemetry/sdk.ts) or a test's. */
export interface EncodedRequestExporter {
  export(request: EncodedRequest, done: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

/** The SDK batch span processor's own defaults, for what `config` leaves unset. */
const SDK_DEFAULTS = {
  maxQueueSize: 2_048,
  maxExportBatchSize: 512,
  scheduledDelayMillis: 5_000,
  exportTimeoutMillis: 30_000,
};

/**
 * The batch span processor for OTLP/protobuf, encoding each sampled span when it ends
 * (`SpanBatchEncoder`) instead of keeping it until its batch is exported: the SDK's
 * `BatchSpanProcessor` holds every finished span (the span, its context, attributes, ids) for up
 * to seconds, long enough to survive the young generation's collections and be promoted, so the
 * spans of every message were old-space garbage (README "Tracing"). Here they die young and a
 * batch waits as bytes. The SDK's processor otherwise: the same settings (`BufferConfig`, from
 * `OTEL_BSP_*`), spans past `maxQueueSize` waiting dropped (counted, and reported once when the
 * queue takes spans again, or at a flush), a batch sent when it is full or `scheduledDelayMillis`
 * after its first span (an unref'd timer), one export at a time, each inside a context that
 * suppresses tracing, given up after `exportTimeoutMillis`; a failed export goes to the SDK's error
 * handler (`diag`), never to the caller. Only sampled spans are exported.
 */
export class EncodingSpanProcessor implements SpanProcessor {
  private readonly maxQueueSize: number;
  private readonly maxExportBatchSize: number;
  private readonly scheduledDelayMillis: number;
  private readonly exportTimeoutMillis: number;
  private readonly encoder = new SpanBatchEncoder();
  /** Full batches waiting for their export, oldest first. */
  private readonly sealed: EncodedSpans[] = [];
  /** Spans waiting: the batch being filled and the sealed ones (not those being exported). */
  private queued = 0;
  /** Spans dropped since the last report. */
  private unreported = 0;
  private dropped = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The loop exporting sealed batches, while it runs. */
  private exporting: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  /** Whether sealed batches are encoded and dropped rather than exported (`discardWhile`). */
  private discarding = false;
  /** Spans dropped by `discardWhile`. */
  private discardedSpans = 0;

  constructor(
    private readonly exporter: EncodedRequestExporter,
    config: BufferConfig = {},
  ) {
    this.maxQueueSize = config.maxQueueSize ?? SDK_DEFAULTS.maxQueueSize;
    this.maxExportBatchSize = Math.min(
      this.maxQueueSize,
      config.maxExportBatchSize ?? SDK_DEFAULTS.maxExportBatchSize,
    );
    this.scheduledDelayMillis = config.scheduledDelayMillis ?? SDK_DEFAULTS.scheduledDelayMillis;
    this.exportTimeoutMillis = config.exportTimeoutMillis ?? SDK_DEFAULTS.exportTimeoutMillis;
  }

  /** Spans dropped since the start because the queue was full. */
  get droppedSpans(): number {
    return this.dropped;
  }

  onStart(_span: Span, _parentContext: Context): void {}

  onEnd(span: ReadableSpan): void {
    if (!this.admits(span.spanContext().traceFlags)) return;
    try {
      this.encoder.add(span);
    } catch (error) {
      globalErrorHandler(error as Error);
      return;
    }
    this.added();
  }

  /**
   * A finished, sampled span given by its fields (`HubTracer.recordEnded`: a queue wait, where no
   * code ran inside the span), taken as `onEnd` takes a span of them: no span object is made.
   * Its context is `parent`'s trace (and trace state) and `spanId`.
   */
  recordEnded(
    resource: Resource,
    scope: InstrumentationScope,
    parent: SpanContext,
    spanId: string,
    name: string,
    kind: SpanKind,
    startMs: number,
    endMs: number,
    attributes: Attributes,
    /** `spanId`'s 8 bytes at `idAt`, where the hex was made of them (read at once). */
    idBytes?: Uint8Array,
    idAt = 0,
  ): void {
    if (!this.admits(1)) return;
    try {
      this.encoder.addEnded(
        resource,
        scope,
        parent,
        spanId,
        name,
        kind,
        startMs,
        endMs,
        attributes,
        idBytes,
        idAt,
      );
    } catch (error) {
      globalErrorHandler(error as Error);
      return;
    }
    this.added();
  }

  /** Whether a span of these flags is to be encoded (sampled, and room in the queue); counts drops. */
  private admits(traceFlags: number): boolean {
    if (this.stopped || (traceFlags & 1) === 0) return false;
    if (this.queued >= this.maxQueueSize) {
      this.unreported++;
      this.dropped++;
      return false;
    }
    if (this.unreported > 0) this.reportDrops();
    return true;
  }

  /**
   * A span was encoded into the batch: sent when the batch is full, else within the delay. One
   * call for both, made at a batch's first span as well as when it is full: every span's `end`
   * inlines this, and a call first made when the first batch filled (no type feedback when `end`
   * was optimized) deoptimized it, and `recordEnded` with it, once in every process. A call made
   * once a batch is not inlined (too rare), so `schedule` stays out of the spans' code.
   */
  private added(): void {
    this.queued++;
    if (this.encoder.count >= this.maxExportBatchSize || this.timer === undefined) this.schedule();
  }

  /** Sends a full batch now; arms the delay's timer at a batch's first span. */
  private schedule(): void {
    if (this.encoder.count >= this.maxExportBatchSize) {
      this.seal();
      this.pump();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.seal();
      this.pump();
    }, this.scheduledDelayMillis);
    this.timer.unref();
  }

  /**
   * Runs `fn` with every span that ends meanwhile encoded as ever, its batch's request made, and
   * dropped rather than exported (tracing's warm-up, src/telemetry/warm-up.ts, whose spans are
   * made by the hub's own tracer and this processor, to leave V8 the very objects the real spans
   * use). Resolves with how many spans it dropped. Nothing else may end spans meanwhile.
   */
  async discardWhile(fn: () => Promise<void>): Promise<number> {
    await this.forceFlush();
    const before = this.discardedSpans;
    this.discarding = true;
    try {
      await fn();
      await this.forceFlush();
    } finally {
      this.discarding = false;
    }
    return this.discardedSpans - before;
  }

  /** Exports every span ended so far, and resolves when they have been sent (or have failed). */
  async forceFlush(): Promise<void> {
    this.seal();
    this.pump();
    while (this.exporting) await this.exporting;
    if (this.unreported > 0) this.reportDrops();
  }

  /** Exports what is left, then shuts the exporter down; later spans are ignored. */
  shutdown(): Promise<void> {
    this.stopped ??= this.forceFlush().then(() => this.exporter.shutdown());
    return this.stopped;
  }

  private reportDrops(): void {
    diag.warn(
      `Dropped ${this.unreported} spans because maxQueueSize reached (${this.maxQueueSize} spans waiting for export; OTEL_BSP_MAX_QUEUE_SIZE)`,
    );
    this.unreported = 0;
  }

  /** The batch being filled goes to the sealed ones (its timer with it). */
  private seal(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.encoder.count > 0) this.sealed.push(this.encoder.seal());
  }

  private pump(): void {
    if (this.exporting || this.sealed.length === 0) return;
    this.exporting = this.drain().finally(() => {
      this.exporting = undefined;
      // A batch sealed between the loop's last look and now.
      this.pump();
    });
  }

  private async drain(): Promise<void> {
    for (let batch = this.sealed.shift(); batch; batch = this.sealed.shift()) {
      this.queued -= batch.count;
      try {
        await this.exportOne(batch);
      } catch (error) {
        globalErrorHandler(error as Error);
      }
    }
  }

  private async exportOne(batch: EncodedSpans): Promise<void> {
    const pending = batch.groups
      .filter((g) => g.resource.asyncAttributesPending && g.resource.waitForAsyncAttributes)
      .map((g) => g.resource.waitForAsyncAttributes!());
    if (pending.length > 0) await Promise.all(pending);
    const request = { bytes: this.encoder.request(batch), count: batch.count };
    // Dropped as late as can be: a warm-up's batches take every step of an export's but the send,
    // so that the first real export finds the processor's objects as the warm-up left them.
    if (this.discarding) {
      this.discardedSpans += batch.count;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      // Given up after its time (the next batch may go); the transport has its own time limit.
      const timer = setTimeout(() => reject(new Error('Timeout')), this.exportTimeoutMillis);
      timer.unref();
      const done = (result: ExportResult) => {
        clearTimeout(timer);
        if (result.code === ExportResultCode.SUCCESS) resolve();
        else reject(result.error ?? new Error('EncodingSpanProcessor: span export failed'));
      };
      // So that an instrumented HTTP client does not trace the export's own request.
      context.with(suppressTracing(context.active()), () => {
        try {
          this.exporter.export(request, done);
        } catch (error) {
          clearTimeout(timer);
          reject(error as Error);
        }
      });
    });
  }
}
