import type { SpanContext, TraceState } from '@opentelemetry/api';

/**
 * Span contexts that keep their ids' bytes beside their hex, for the OTLP encoder
 * (src/telemetry/otlp-proto.ts). An id is read from its hex where it is made (a traceparent just
 * read, an id just sliced from the random pool: in the processor's caches), and written from
 * these words when the span ends: reading the hex then — a slice of the traceparent or of the
 * random pool, each a string pointing into another — was the encoder's largest cost in a busy
 * worker (tens of ms after the ids were made, all three objects out of the CPU's caches), where
 * the same loop over ids just made costs a fraction of it.
 * The words are private fields: not seen by a spread, `Object.keys`, JSON or a test's deep
 * equality; a context of another kind (the API's plain objects) is encoded from its hex.
 */

/** Hex digit values by char code (either case, as the OTLP encoder reads them; anything else 0). */
export const HEX = new Int8Array(128).fill(0);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[97 + i] = 10 + i;
  HEX[65 + i] = 10 + i;
}

/**
 * Eight hex digits from `i` as a big-endian 32-bit word (signed: a small integer to V8). A loop,
 * not 8 unrolled reads: TurboFan inlines this into every constructor of a context (and those into
 * the tracer and the turn), and each `charCodeAt` it inlines is a large graph; unrolled, the
 * contexts' 48 of them made the optimizing compiles of the span path the largest cost of a short
 * traced run (README "Tracing").
 */
function wordAt(hex: string, i: number): number {
  let word = 0;
  for (const end = i + 8; i < end; i++) word = (word << 4) | HEX[hex.charCodeAt(i) & 0x7f]!;
  return word;
}

/** Four bytes from `at` as a big-endian 32-bit word (signed, as `wordAt` makes it). */
function wordOf(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!;
}

function putWord(buf: Uint8Array, pos: number, word: number): void {
  buf[pos] = word >>> 24;
  buf[pos + 1] = (word >>> 16) & 0xff;
  buf[pos + 2] = (word >>> 8) & 0xff;
  buf[pos + 3] = word & 0xff;
}

/**
 * A span context with its ids' bytes. Only ids of their full lengths (32 and 16 hex digits) are
 * kept as words; `hasWords` says so (else the encoder reads the hex, as of any context).
 */
export abstract class IdContext implements SpanContext {
  #t0 = 0;
  #t1 = 0;
  #t2 = 0;
  #t3 = 0;
  #s0 = 0;
  #s1 = 0;
  #words = false;

  constructor(
    readonly traceId: string,
    readonly spanId: string,
    readonly traceFlags: number,
    /** A context of the same trace whose words are taken rather than read again from the hex. */
    sameTrace?: IdContext,
    /**
     * The ids' bytes where the hex was made of them (the tracer's random pool): the span id's 8
     * at `spanAt`, and the trace id's 16 at `traceAt` when not -1 (a root's). Read as words at
     * once: the pool is refilled later.
     */
    idBytes?: Uint8Array,
    spanAt = 0,
    traceAt = -1,
  ) {
    if (traceId.length !== 32 || spanId.length !== 16) return;
    if (sameTrace?.traceId === traceId && sameTrace.#words) {
      this.#t0 = sameTrace.#t0;
      this.#t1 = sameTrace.#t1;
      this.#t2 = sameTrace.#t2;
      this.#t3 = sameTrace.#t3;
    } else if (idBytes !== undefined && traceAt >= 0) {
      this.#t0 = wordOf(idBytes, traceAt);
      this.#t1 = wordOf(idBytes, traceAt + 4);
      this.#t2 = wordOf(idBytes, traceAt + 8);
      this.#t3 = wordOf(idBytes, traceAt + 12);
    } else {
      this.#t0 = wordAt(traceId, 0);
      this.#t1 = wordAt(traceId, 8);
      this.#t2 = wordAt(traceId, 16);
      this.#t3 = wordAt(traceId, 24);
    }
    if (idBytes !== undefined) {
      this.#s0 = wordOf(idBytes, spanAt);
      this.#s1 = wordOf(idBytes, spanAt + 4);
    } else {
      this.#s0 = wordAt(spanId, 0);
      this.#s1 = wordAt(spanId, 8);
    }
    this.#words = true;
  }

  get hasWords(): boolean {
    return this.#words;
  }

  /** The trace id's 16 bytes at `pos` (room ensured by the caller; `hasWords` true). */
  putTraceId(buf: Uint8Array, pos: number): void {
    putWord(buf, pos, this.#t0);
    putWord(buf, pos + 4, this.#t1);
    putWord(buf, pos + 8, this.#t2);
    putWord(buf, pos + 12, this.#t3);
  }

  /** The span id's 8 bytes at `pos` (room ensured by the caller; `hasWords` true). */
  putSpanId(buf: Uint8Array, pos: number): void {
    putWord(buf, pos, this.#s0);
    putWord(buf, pos + 4, this.#s1);
  }
}

/** The context of a span of the hub's tracer: its fields as the SDK's tracer makes them. */
export class HubSpanContext extends IdContext {
  constructor(
    traceId: string,
    spanId: string,
    traceFlags: number,
    readonly traceState: TraceState | undefined,
    sameTrace?: IdContext,
    idBytes?: Uint8Array,
    spanAt = 0,
    traceAt = -1,
  ) {
    super(traceId, spanId, traceFlags, sameTrace, idBytes, spanAt, traceAt);
  }
}

/**
 * The span context of a trace an envelope or a request carries, read by the hub
 * (src/telemetry/tracing.ts `carriedSpanContext`), which proved its ids valid as it read them
 * (hex of their lengths, not all zeros): a span under it does not check them again (a regular
 * expression per id, for the queue wait and the turn of every message). Otherwise the plain
 * object the W3C propagator makes (the same fields; no trace state).
 */
export class CarriedSpanContext extends IdContext {
  readonly isRemote = true;
}
