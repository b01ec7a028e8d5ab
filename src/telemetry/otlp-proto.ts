import type { HrTime, Link, SpanContext } from '@opentelemetry/api';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';
import { HEX, IdContext } from './span-ids.ts';

/**
 * OTLP/protobuf encoding of an `ExportTraceServiceRequest` straight from the SDK's finished spans
 * (opentelemetry-proto: collector/trace/v1/trace_service.proto, trace/v1/trace.proto,
 * common/v1/common.proto, resource/v1/resource.proto). The same bytes as the OTLP exporter's own
 * serializer (`ProtobufTraceSerializer` of @opentelemetry/otlp-transformer: the same fields in the
 * same order, zero counts included), which the unit test checks, in one pass instead of two (it
 * measures every string once to size its buffer, then writes it character by character): a
 * reused, growing buffer; attribute keys, span names and the resource and scope encoded once and
 * copied; ids written from hex without a buffer of their own. Every span of every message of a
 * busy process goes through here (README "Tracing").
 */

/** Encoded strings kept for copying (keys, names: a small set); up to this many. */
const MAX_CACHED = 2_048;
/** Strings longer than this are not cached (they are values, not names). */
const MAX_CACHED_LENGTH = 96;
/** A key's string values kept encoded, up to this many (then the key is taken for an id's). */
const MAX_VALUES_PER_KEY = 32;

const TWO_32 = 0x1_0000_0000;
/** A writer's first buffer (a request's grows it; the next starts at about its size). */
const MIN_BUFFER = 16 * 1024;

/** Span flags (trace.proto `SpanFlags`): the W3C flags, and whether the parent was remote. */
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

/** Encoded strings (length prefix and UTF-8) by string: span names, attribute keys (every writer's). */
const strings = new Map<string, Buffer>();
/** Encoded `KeyValue`s of string values by key and value; null: the key takes too many values. */
const pairs = new Map<string, Map<string, Buffer> | null>();

class Writer {
  buf: Buffer;
  pos = 0;
  private readonly strings = strings;
  private readonly pairs = pairs;

  constructor(size = MIN_BUFFER) {
    this.buf = Buffer.allocUnsafe(size);
  }

  reset(): void {
    this.pos = 0;
  }

  /**
   * What was written, handed over (the exporter may hold a request, to retry it, while the next
   * is encoded); the next request gets a fresh buffer of about this one's size, not a copy of it.
   */
  take(): Buffer {
    const written = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(Math.max(MIN_BUFFER, Math.ceil(this.pos * 1.25)));
    this.pos = 0;
    return written;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = Math.max(this.buf.length * 2, 64);
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** A varint of a value below 2^32 (tags, lengths, enums, counts). */
  varint32(value: number): void {
    this.ensure(5);
    this.pos = putVarint(this.buf, this.pos, value >>> 0);
  }

  /** A varint of any integer (an int64 attribute: negative ones take ten bytes, two's complement). */
  varint64(value: number): void {
    if (value >= 0 && value <= 0xffffffff) {
      this.varint32(value);
      return;
    }
    this.ensure(10);
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = (value / TWO_32) >>> 0;
    } else {
      const abs = Math.abs(value);
      low = ~(abs >>> 0) >>> 0;
      high = ~((abs / TWO_32) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    const buf = this.buf;
    while (high > 0 || low > 0x7f) {
      buf[this.pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buf[this.pos++] = low & 0x7f;
  }

  /** A field's key (one byte below field 16; the span's `flags`, 16, takes two). */
  tag(field: number, wire: number): void {
    if (field >= 16) {
      this.varint32((field << 3) | wire);
      return;
    }
    this.ensure(1);
    this.buf[this.pos++] = (field << 3) | wire;
  }

  fixed32(value: number): void {
    this.ensure(4);
    this.uint32(value >>> 0);
  }

  /** Four little-endian bytes, room ensured. */
  private uint32(v: number): void {
    const buf = this.buf;
    let pos = this.pos;
    buf[pos++] = v & 0xff;
    buf[pos++] = (v >>> 8) & 0xff;
    buf[pos++] = (v >>> 16) & 0xff;
    buf[pos++] = v >>> 24;
    this.pos = pos;
  }

  /** An `HrTime` as fixed64 nanoseconds, without BigInt and without losing precision past 2^53. */
  time(hr: HrTime): void {
    this.nanos(hr[0], hr[1]);
  }

  /** Seconds and nanoseconds as fixed64 nanoseconds. */
  private nanos(seconds: number, nanos: number): void {
    // seconds × 1e9 + nanos = upper × 1e9 × 2^16 + lower, each product below 2^53.
    const lower = (seconds % 0x10000) * 1e9 + nanos;
    const upper = Math.floor(seconds / 0x10000) * 1e9;
    const low = (upper % 0x10000) * 0x10000 + (lower % TWO_32);
    const high = Math.floor(upper / 0x10000) + Math.floor(lower / TWO_32) + Math.floor(low / TWO_32);
    this.ensure(8);
    this.uint32(low >>> 0);
    this.uint32(high >>> 0);
  }

  /** Epoch milliseconds (a double, as the hub's tracer keeps times) as fixed64 nanoseconds. */
  timeMs(ms: number): void {
    let seconds = Math.floor(ms / 1e3);
    let nanos = Math.round((ms - seconds * 1e3) * 1e6);
    if (nanos >= 1e9) {
      seconds += 1;
      nanos -= 1e9;
    }
    this.nanos(seconds, nanos);
  }

  double(value: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  /** Length-delimited bytes. */
  bytes(value: Uint8Array): void {
    this.varint32(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** An id (bytes) from its hex form: 16 or 8 bytes of a lowercase hex string. */
  hexId(hex: string): void {
    const n = hex.length >>> 1;
    this.ensure(1 + n);
    const buf = this.buf;
    let pos = this.pos;
    buf[pos++] = n;
    for (let i = 0; i < hex.length; i += 2)
      buf[pos++] = (HEX[hex.charCodeAt(i) & 0x7f]! << 4) | HEX[hex.charCodeAt(i + 1) & 0x7f]!;
    this.pos = pos;
  }

  /**
   * trace_id and span_id (fields 1 and 2) of a context that keeps their bytes
   * (src/telemetry/span-ids.ts): the same bytes `hexId` writes of its hex.
   */
  idWords(c: IdContext): void {
    this.ensure(28);
    const buf = this.buf;
    const pos = this.pos;
    buf[pos] = (1 << 3) | 2;
    buf[pos + 1] = 16;
    c.putTraceId(buf, pos + 2);
    buf[pos + 18] = (2 << 3) | 2;
    buf[pos + 19] = 8;
    c.putSpanId(buf, pos + 20);
    this.pos = pos + 28;
  }

  /** An id (length-delimited) of `n` bytes at `at` of `bytes`. */
  idBytes(bytes: Uint8Array, at: number, n: number): void {
    this.ensure(1 + n);
    const buf = this.buf;
    let pos = this.pos;
    buf[pos++] = n;
    for (let i = 0; i < n; i++) buf[pos++] = bytes[at + i]!;
    this.pos = pos;
  }

  /** A span id (length-delimited) of a context that keeps its bytes. */
  spanIdWords(c: IdContext): void {
    this.ensure(9);
    this.buf[this.pos] = 8;
    c.putSpanId(this.buf, this.pos + 1);
    this.pos += 9;
  }

  /** A trace id (length-delimited) of a context that keeps its bytes. */
  traceIdWords(c: IdContext): void {
    this.ensure(17);
    this.buf[this.pos] = 16;
    c.putTraceId(this.buf, this.pos + 1);
    this.pos += 17;
  }

  /** A string (length-delimited UTF-8). */
  string(value: string): void {
    const n = value.length;
    // Up to 42 UTF-16 units make at most 126 bytes: a one-byte length, known before writing.
    if (n <= 42) {
      this.ensure(1 + 3 * n);
      const buf = this.buf;
      const start = this.pos;
      let pos = start + 1;
      for (let i = 0; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c > 0x7f) {
          pos = start + 1 + buf.write(value, start + 1, 'utf8');
          break;
        }
        buf[pos++] = c;
      }
      buf[start] = pos - start - 1;
      this.pos = pos;
      return;
    }
    const length = Buffer.byteLength(value, 'utf8');
    this.varint32(length);
    this.ensure(length);
    this.pos += this.buf.write(value, this.pos, 'utf8');
  }

  /** A string that recurs (a key, a name): its encoding is kept and copied. */
  name(value: string): void {
    let encoded = this.strings.get(value);
    if (!encoded) {
      if (value.length > MAX_CACHED_LENGTH || this.strings.size >= MAX_CACHED) {
        this.string(value);
        return;
      }
      const length = Buffer.byteLength(value, 'utf8');
      const prefix = varintLength(length);
      encoded = Buffer.allocUnsafe(prefix + length);
      let v = length;
      for (let i = 0; i < prefix; i++, v >>>= 7) encoded[i] = i < prefix - 1 ? (v & 0x7f) | 0x80 : v;
      encoded.write(value, prefix, 'utf8');
      this.strings.set(value, encoded);
    }
    this.raw(encoded);
  }

  /**
   * A `KeyValue` of a string value: copied from its first encoding while the key has taken few
   * values (most attributes of the hub's spans are constants: a messaging system, an operation,
   * a channel, a bot); a key seen with many values (an id) is encoded each time.
   */
  pair(key: string, value: string): void {
    let values = this.pairs.get(key);
    if (values === undefined) {
      if (this.pairs.size >= MAX_CACHED) {
        keyValue(this, key, value);
        return;
      }
      values = new Map();
      this.pairs.set(key, values);
    }
    const encoded = values?.get(value);
    if (encoded) {
      this.raw(encoded);
      return;
    }
    const start = this.pos;
    keyValue(this, key, value);
    if (!values) return;
    if (values.size >= MAX_VALUES_PER_KEY) this.pairs.set(key, null);
    else values.set(value, Buffer.from(this.buf.subarray(start, this.pos)));
  }

  /** Bytes as they are (an encoding made earlier). */
  raw(encoded: Uint8Array): void {
    this.ensure(encoded.length);
    const buf = this.buf;
    if (encoded.length < 32) {
      let pos = this.pos;
      for (let i = 0; i < encoded.length; i++) buf[pos++] = encoded[i]!;
      this.pos = pos;
    } else {
      buf.set(encoded, this.pos);
      this.pos += encoded.length;
    }
  }

  /** Opens a length-delimited message: `reserved` bytes kept for its length; `close` writes it. */
  open(reserved = 1): number {
    this.ensure(reserved);
    const at = this.pos;
    this.pos += reserved;
    return at;
  }

  /**
   * Closes what `open` began: writes its length, moving the content when the length takes more
   * or fewer bytes than were kept (a span keeps two: most are 128 bytes to 16 kB).
   */
  close(at: number, reserved = 1): void {
    const length = this.pos - at - reserved;
    if (reserved === 1 && length < 0x80) {
      this.buf[at] = length;
      return;
    }
    if (reserved === 2 && length >= 0x80 && length < 0x4000) {
      this.buf[at] = (length & 0x7f) | 0x80;
      this.buf[at + 1] = length >>> 7;
      return;
    }
    const size = varintLength(length);
    if (size !== reserved) {
      this.ensure(size - reserved);
      this.buf.copyWithin(at + size, at + reserved, this.pos);
      this.pos += size - reserved;
    }
    // The varint loop of every tag and length (`varint32`): this path, rare, has its feedback.
    putVarint(this.buf, at, length);
  }
}

/** A varint of a value below 2^32 at `pos` (room ensured); the position after it. */
function putVarint(buf: Buffer, pos: number, value: number): number {
  let v = value;
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

function varintLength(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;

/** An `AnyValue` (common.proto), as the OTLP exporter encodes each type of attribute value. */
function anyValue(w: Writer, value: unknown): void {
  switch (typeof value) {
    case 'string':
      w.tag(1, 2);
      w.string(value);
      return;
    case 'boolean':
      w.tag(2, 0);
      w.varint32(value ? 1 : 0);
      return;
    case 'number':
      if (Number.isInteger(value) && value >= MIN_INT64 && value < MAX_INT64) {
        w.tag(3, 0);
        w.varint64(value);
      } else {
        w.tag(4, 1);
        w.double(value);
      }
      return;
    case 'object':
      break;
    default:
      return;
  }
  if (value instanceof Uint8Array) {
    w.tag(7, 2);
    w.bytes(value);
  } else if (Array.isArray(value)) {
    w.tag(5, 2);
    const list = w.open();
    for (const item of value) {
      w.tag(1, 2);
      const at = w.open();
      anyValue(w, item);
      w.close(at);
    }
    w.close(list);
  } else if (value !== null) {
    w.tag(6, 2);
    const list = w.open();
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue;
      w.tag(1, 2);
      keyValue(w, key, (value as Record<string, unknown>)[key]);
    }
    w.close(list);
  }
}

/** A length-delimited `KeyValue`. */
function keyValue(w: Writer, key: string, value: unknown): void {
  const kv = w.open();
  w.tag(1, 2);
  w.name(key);
  w.tag(2, 2);
  const v = w.open();
  anyValue(w, value);
  w.close(v);
  w.close(kv);
}

function attributes(w: Writer, attrs: Record<string, unknown> | undefined, field: number): void {
  if (!attrs) return;
  // `for…in` walks a fast object's keys from its map's cache: `Object.keys` made an array for
  // every span (with the iterators of `span`'s loops, about a seventh of what tracing allocated
  // on its path, by a sampled allocation profile). The hub's attributes are plain objects:
  // nothing enumerable is inherited.
  for (const key in attrs) {
    const value = attrs[key];
    // The SDK drops such values when they are set; the hub's tracer keeps what it is given.
    if (value == null) continue;
    w.tag(field, 2);
    if (typeof value === 'string' && value.length <= MAX_CACHED_LENGTH) w.pair(key, value);
    else keyValue(w, key, value);
  }
}

function flags(context: SpanContext, remote: boolean | undefined): number {
  return (context.traceFlags & 0xff) | HAS_IS_REMOTE | (remote ? IS_REMOTE : 0);
}

function event(w: Writer, e: TimedEvent): void {
  const at = w.open();
  w.tag(1, 1);
  w.time(e.time);
  w.tag(2, 2);
  w.name(e.name);
  attributes(w, e.attributes, 3);
  w.tag(4, 0);
  w.varint32(e.droppedAttributesCount ?? 0);
  w.close(at);
}

/** trace_id, span_id and trace_state: fields 1–3 of both a span and a link. */
function ids(w: Writer, c: SpanContext): void {
  if (c instanceof IdContext && c.hasWords) w.idWords(c);
  else {
    w.tag(1, 2);
    w.hexId(c.traceId);
    w.tag(2, 2);
    w.hexId(c.spanId);
  }
  const state = c.traceState?.serialize();
  if (state) {
    w.tag(3, 2);
    w.string(state);
  }
}

function link(w: Writer, l: Link & { droppedAttributesCount?: number }): void {
  const at = w.open();
  const c = l.context;
  ids(w, c);
  attributes(w, l.attributes, 4);
  w.tag(5, 0);
  w.varint32(l.droppedAttributesCount ?? 0);
  w.tag(6, 5);
  w.fixed32(flags(c, c.isRemote));
  w.close(at);
}

function span(w: Writer, s: ReadableSpan): void {
  const at = w.open(2);
  const c = s.spanContext();
  ids(w, c);
  const parent = s.parentSpanContext;
  if (parent?.spanId) {
    w.tag(4, 2);
    if (parent instanceof IdContext && parent.hasWords) w.spanIdWords(parent);
    else w.hexId(parent.spanId);
  }
  w.tag(5, 2);
  w.name(s.name);
  // The API's kinds start at INTERNAL = 0; the protocol's at UNSPECIFIED = 0.
  const kind = s.kind == null ? 0 : s.kind + 1;
  if (kind !== 0) {
    w.tag(6, 0);
    w.varint32(kind);
  }
  // The hub's tracer keeps epoch milliseconds (src/telemetry/hub-tracer.ts); the SDK's, HrTime.
  const ms = s as { startMs?: number; endMs?: number };
  w.tag(7, 1);
  if (ms.startMs !== undefined) w.timeMs(ms.startMs);
  else w.time(s.startTime);
  w.tag(8, 1);
  if (ms.endMs !== undefined) w.timeMs(ms.endMs);
  else w.time(s.endTime);
  attributes(w, s.attributes, 9);
  w.tag(10, 0);
  w.varint32(s.droppedAttributesCount);
  // Indexed loops: `for…of` over a span's (often frozen, shared) empty events and links made an
  // iterator and its result objects for every span.
  const events = s.events;
  for (let i = 0; i < events.length; i++) {
    w.tag(11, 2);
    event(w, events[i]!);
  }
  w.tag(12, 0);
  w.varint32(s.droppedEventsCount);
  const links = s.links;
  for (let i = 0; i < links.length; i++) {
    w.tag(13, 2);
    link(w, links[i]!);
  }
  w.tag(14, 0);
  w.varint32(s.droppedLinksCount);
  w.tag(15, 2);
  const status = w.open();
  if (s.status.message) {
    w.tag(2, 2);
    w.string(s.status.message);
  }
  w.tag(3, 0);
  w.varint32(s.status.code);
  w.close(status);
  w.tag(16, 5);
  w.fixed32(flags(c, parent?.isRemote));
  w.close(at, 2);
}

/** Fields 10, 12, 14 (zero counts), 15 (an UNSET status: code 0) and the tag of 16 (flags). */
const ENDED_TAIL = Uint8Array.of(10 << 3, 0, 12 << 3, 0, 14 << 3, 0, (15 << 3) | 2, 2, 3 << 3, 0, 0x85, 0x01);

type Resource = ReadableSpan['resource'];
type Scope = ReadableSpan['instrumentationScope'];

/** The encoded `resource` field (1) of a ResourceSpans, by resource: made once. */
const resources = new WeakMap<Resource, Buffer>();
/** The encoded `scope` field (1) of a ScopeSpans, by scope: made once. */
const scopes = new WeakMap<Scope, Buffer>();

/** Encodes with a writer of its own and keeps a copy (a resource or scope, settled). */
function encodedOnce<K extends object>(
  cache: WeakMap<K, Buffer>,
  key: K,
  cacheable: boolean,
  write: (w: Writer) => void,
): Buffer {
  const cached = cache.get(key);
  if (cached) return cached;
  const w = new Writer();
  write(w);
  const encoded = Buffer.from(w.buf.subarray(0, w.pos));
  if (cacheable) cache.set(key, encoded);
  return encoded;
}

function resourceField(resource: Resource): Buffer {
  return encodedOnce(resources, resource, !resource.asyncAttributesPending, (w) => {
    w.tag(1, 2);
    const at = w.open();
    attributes(w, resource.attributes, 1);
    w.tag(2, 0);
    w.varint32(0);
    w.close(at);
  });
}

function scopeField(scope: Scope): Buffer {
  return encodedOnce(scopes, scope, true, (w) => {
    w.tag(1, 2);
    const at = w.open();
    w.tag(1, 2);
    w.string(scope.name);
    if (scope.version) {
      w.tag(2, 2);
      w.string(scope.version);
    }
    // Not in the SDK's type today; encoded as the OTLP exporter does if a scope has them.
    const extra = scope as { attributes?: Record<string, unknown>; droppedAttributesCount?: number };
    attributes(w, extra.attributes, 3);
    if (extra.droppedAttributesCount) {
      w.tag(4, 0);
      w.varint32(extra.droppedAttributesCount);
    }
    w.close(at);
  });
}

function scopeSpans(w: Writer, scope: Scope, spans: ReadableSpan[]): void {
  w.tag(2, 2);
  const at = w.open();
  w.raw(scopeField(scope));
  for (const s of spans) {
    w.tag(2, 2);
    span(w, s);
  }
  if (scope.schemaUrl) {
    w.tag(3, 2);
    w.string(scope.schemaUrl);
  }
  w.close(at);
}

function resourceSpans(w: Writer, resource: Resource, byScope: Iterable<ReadableSpan[]>): void {
  w.tag(1, 2);
  const at = w.open();
  w.raw(resourceField(resource));
  for (const spans of byScope) scopeSpans(w, spans[0]!.instrumentationScope, spans);
  if (resource.schemaUrl) {
    w.tag(3, 2);
    w.string(resource.schemaUrl);
  }
  w.close(at);
}

const shared = new Writer();

/**
 * The `ExportTraceServiceRequest` of `spans`: one ResourceSpans per resource and one ScopeSpans
 * per scope in it, in the order they first appear (the OTLP exporter's grouping).
 */
export function encodeTraceRequest(spans: ReadableSpan[]): Uint8Array {
  const w = shared;
  w.reset();
  const first = spans[0];
  if (
    first &&
    spans.every((s) => s.resource === first.resource && s.instrumentationScope === first.instrumentationScope)
  )
    resourceSpans(w, first.resource, [spans]);
  else {
    const grouped = new Map<Resource, Map<Scope, ReadableSpan[]>>();
    for (const s of spans) {
      let byScope = grouped.get(s.resource);
      if (!byScope) {
        byScope = new Map();
        grouped.set(s.resource, byScope);
      }
      const list = byScope.get(s.instrumentationScope);
      if (list) list.push(s);
      else byScope.set(s.instrumentationScope, [s]);
    }
    for (const [resource, byScope] of grouped) resourceSpans(w, resource, byScope.values());
  }
  return w.take();
}

/** A (resource, scope)'s spans, encoded as they ended: `spans` field (2) entries of its ScopeSpans. */
interface Group {
  resource: Resource;
  scope: Scope;
  w: Writer;
  /** Spans in the batch being filled (0: not in it). */
  count: number;
  /** The batch's span count when this group's first span in it was added (its order in the request). */
  first: number;
}

/** A batch's spans, encoded and grouped, for `SpanBatchEncoder.request`. */
export interface EncodedSpans {
  /** In the order each (resource, scope) first appeared in the batch: encodeTraceRequest's. */
  readonly groups: ReadonlyArray<{ resource: Resource; scope: Scope; spans: Uint8Array }>;
  /** Spans in all. */
  readonly count: number;
  /** The buffers the batch is in, until its request is made. */
  readonly buffers: Buffer[];
}

/** Spare buffers kept for the next batches, at most. */
const MAX_SPARE = 4;

/**
 * Spans encoded one at a time, as each ends, into the fields of the ScopeSpans it belongs to (the
 * encoder's caches as `encodeTraceRequest`), until `seal` hands the batch over: a span's objects
 * need not outlive its end, and a request is a few copies (`request`). One writer per (resource,
 * scope), kept from batch to batch. A batch's buffers (MBs at the default batch size) go back to
 * a few spares once copied into its request: allocated anew for every batch, they were external
 * memory that V8 counts toward its major collections.
 */
export class SpanBatchEncoder {
  private readonly writers = new Map<Resource, Map<Scope, Group>>();
  /** Every group, in the order made (those of the batch being filled have a count). */
  private readonly groups: Group[] = [];
  private last: Group | undefined;
  private readonly spare: Buffer[] = [];
  /** Spans in the batch being filled. */
  count = 0;

  private group(resource: Resource, scope: Scope): Group {
    const last = this.last;
    if (last && last.scope === scope && last.resource === resource) return last;
    let byScope = this.writers.get(resource);
    if (!byScope) {
      byScope = new Map();
      this.writers.set(resource, byScope);
    }
    let g = byScope.get(scope);
    if (!g) {
      g = { resource, scope, w: new Writer(), count: 0, first: 0 };
      byScope.set(scope, g);
      this.groups.push(g);
    }
    this.last = g;
    return g;
  }

  /** Encodes a finished span into the batch; a span that cannot be encoded throws and leaves none of it. */
  add(s: ReadableSpan): void {
    const g = this.group(s.resource, s.instrumentationScope);
    const w = g.w;
    const start = w.pos;
    try {
      w.tag(2, 2);
      span(w, s);
    } catch (error) {
      w.pos = start;
      throw error;
    }
    this.counted(g);
  }

  /**
   * Encodes a finished span given by its fields rather than as an object (`HubTracer.recordEnded`:
   * a finished span under a parent that decided its sampling, with no events, no links and no
   * status): the bytes `add` writes of such a span, whose context is its parent's trace (and trace
   * state) and `spanId`, sampled. A span that cannot be encoded throws and leaves none of it.
   */
  addEnded(
    resource: Resource,
    scope: Scope,
    parent: SpanContext,
    spanId: string,
    name: string,
    kind: number,
    startMs: number,
    endMs: number,
    attrs: Record<string, unknown>,
    /** `spanId`'s 8 bytes at `idAt`, where its hex was made of them. */
    idBytes?: Uint8Array,
    idAt = 0,
  ): void {
    const g = this.group(resource, scope);
    const w = g.w;
    const start = w.pos;
    try {
      w.tag(2, 2);
      const at = w.open(2);
      const words = parent instanceof IdContext && parent.hasWords;
      w.tag(1, 2);
      if (words) w.traceIdWords(parent);
      else w.hexId(parent.traceId);
      w.tag(2, 2);
      if (idBytes) w.idBytes(idBytes, idAt, 8);
      else w.hexId(spanId);
      const state = parent.traceState?.serialize();
      if (state) {
        w.tag(3, 2);
        w.string(state);
      }
      w.tag(4, 2);
      if (words) w.spanIdWords(parent);
      else w.hexId(parent.spanId);
      w.tag(5, 2);
      w.name(name);
      w.tag(6, 0);
      w.varint32(kind + 1);
      w.tag(7, 1);
      w.timeMs(startMs);
      w.tag(8, 1);
      w.timeMs(endMs);
      attributes(w, attrs, 9);
      // No dropped attributes, events, dropped events, links, dropped links; status UNSET.
      w.raw(ENDED_TAIL);
      // Sampled (the only flag the hub's tracer sets), of a remote parent or not.
      w.fixed32(1 | HAS_IS_REMOTE | (parent.isRemote ? IS_REMOTE : 0));
      w.close(at, 2);
    } catch (error) {
      w.pos = start;
      throw error;
    }
    this.counted(g);
  }

  /**
   * A span encoded into `g`: counted, and the group's place in the batch noted at its first span,
   * without a branch of its own: code run once a batch (a push into a list of the batch's groups,
   * as it was) has no type feedback when the functions that every span's end inlines are
   * optimized, and deoptimized them when it ran ("not a Smi", "insufficient type feedback").
   */
  private counted(g: Group): void {
    const n = this.count;
    g.first = g.count === 0 ? n : g.first;
    g.count++;
    this.count = n + 1;
  }

  /** The batch so far, handed over; the next starts empty, in a spare buffer of about its size. */
  seal(): EncodedSpans {
    const buffers: Buffer[] = [];
    const inBatch = this.groups.filter((g) => g.count > 0).sort((a, b) => a.first - b.first);
    const groups = inBatch.map((g) => {
      const { buf, pos } = g.w;
      buffers.push(buf);
      g.w.buf = this.buffer(Math.max(MIN_BUFFER, Math.ceil(pos * 1.25)));
      g.w.pos = 0;
      g.count = 0;
      return { resource: g.resource, scope: g.scope, spans: buf.subarray(0, pos) };
    });
    const sealed: EncodedSpans = { groups, count: this.count, buffers };
    this.count = 0;
    return sealed;
  }

  /**
   * The `ExportTraceServiceRequest` of a sealed batch: the same bytes as `encodeTraceRequest` of
   * its spans in the order they ended (one ResourceSpans per resource, one ScopeSpans per scope,
   * in order of first appearance), the spans' bytes copied once. A resource still waiting for its
   * asynchronous attributes is encoded as it is (the span processor waits for them first).
   */
  request(batch: EncodedSpans): Uint8Array {
    const fields = layout(batch);
    // A buffer of its own: the transport may still be writing it when it reports the export done.
    const request = writeRequest(fields, Buffer.allocUnsafeSlow(fields.total));
    this.release(batch);
    return request;
  }

  /** A batch's buffers, copied into its request, kept for the next batches. */
  private release(batch: EncodedSpans): void {
    for (const buf of batch.buffers.splice(0)) {
      if (this.spare.length < MAX_SPARE) this.spare.push(buf);
      else {
        // Keep the largest: the next batches are about as large as the last.
        let smallest = 0;
        for (let i = 1; i < this.spare.length; i++)
          if (this.spare[i]!.length < this.spare[smallest]!.length) smallest = i;
        if (this.spare[smallest]!.length < buf.length) this.spare[smallest] = buf;
      }
    }
  }

  private buffer(size: number): Buffer {
    for (let i = 0; i < this.spare.length; i++)
      if (this.spare[i]!.length >= size) return this.spare.splice(i, 1)[0]!;
    return Buffer.allocUnsafeSlow(size);
  }
}

/** A length-delimited field's size: its one-byte tag, its length, its bytes. */
const fieldSize = (length: number) => 1 + varintLength(length) + length;

function stringField(field: number, value: string | undefined): Buffer | undefined {
  if (!value) return undefined;
  const w = new Writer(16 + 3 * value.length);
  w.tag(field, 2);
  w.string(value);
  return w.buf.subarray(0, w.pos);
}

type Part = { scope: Buffer; spans: Uint8Array; schema: Buffer | undefined; size: number };
type ResourcePart = { field: Buffer; parts: Part[]; schema: Buffer | undefined; size: number };

/** A request's fields by resource, with their sizes. */
function layout(batch: EncodedSpans): { resources: ResourcePart[]; total: number } {
  const byResource = new Map<Resource, Part[]>();
  for (const g of batch.groups) {
    const scope = scopeField(g.scope);
    const schema = stringField(3, g.scope.schemaUrl);
    const size = scope.length + g.spans.length + (schema?.length ?? 0);
    const part = { scope, spans: g.spans, schema, size };
    const parts = byResource.get(g.resource);
    if (parts) parts.push(part);
    else byResource.set(g.resource, [part]);
  }
  const resources: ResourcePart[] = [];
  let total = 0;
  for (const [resource, parts] of byResource) {
    const field = resourceField(resource);
    const schema = stringField(3, resource.schemaUrl);
    let size = field.length + (schema?.length ?? 0);
    for (const p of parts) size += fieldSize(p.size);
    resources.push({ field, parts, schema, size });
    total += fieldSize(size);
  }
  return { resources, total };
}

function writeRequest({ resources, total }: ReturnType<typeof layout>, buffer: Buffer): Uint8Array {
  const w = new Writer(0);
  w.buf = buffer;
  for (const r of resources) {
    w.tag(1, 2);
    w.varint32(r.size);
    w.raw(r.field);
    for (const p of r.parts) {
      w.tag(2, 2);
      w.varint32(p.size);
      w.raw(p.scope);
      w.raw(p.spans);
      if (p.schema) w.raw(p.schema);
    }
    if (r.schema) w.raw(r.schema);
  }
  if (w.pos !== total) throw new Error(`OTLP request: ${w.pos} bytes written, ${total} expected`);
  return w.buf.subarray(0, w.pos);
}
