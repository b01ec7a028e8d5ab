import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A span as the receiver decoded it, from either OTLP encoding. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  links: { traceId: string; spanId: string }[];
  /** The resource's attributes (`service.name`, `switchboard.role`, ...). */
  resource: Record<string, unknown>;
  /** How it arrived: `application/x-protobuf` or `application/json`. */
  contentType: string;
}

/**
 * A local OpenTelemetry collector's OTLP/HTTP trace endpoint (`POST /v1/traces`): decodes both
 * encodings the exporters send, protobuf (by the wire format of `ExportTraceServiceRequest`) and
 * JSON, and answers `200 {}` as a collector does.
 */
export async function startOtlpReceiver() {
  const spans: ReceivedSpan[] = [];
  const requests: { path: string; contentType: string; headers: IncomingMessage['headers'] }[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    requests.push({ path: req.url ?? '', contentType, headers: req.headers });
    if (req.method !== 'POST' || req.url !== '/v1/traces') {
      res.writeHead(404).end();
      return;
    }
    try {
      if (contentType === 'application/x-protobuf') spans.push(...decodeProtobuf(body, contentType));
      else if (contentType === 'application/json') spans.push(...decodeJson(body, contentType));
      else {
        res.writeHead(415).end();
        return;
      }
    } catch (err) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 3, message: (err as Error).message }));
      return;
    }
    res.writeHead(200, { 'content-type': contentType });
    res.end(contentType === 'application/json' ? '{}' : Buffer.alloc(0));
  };

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    requests,
    /** The spans of one trace. */
    trace: (traceId: string) => spans.filter((s) => s.traceId === traceId),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type OtlpReceiver = Awaited<ReturnType<typeof startOtlpReceiver>>;

// --- JSON (the OTLP/JSON mapping: ids in hex, AnyValue as {stringValue|intValue|...}) ---

type JsonAnyValue = Record<string, unknown>;
const jsonValue = (v: JsonAnyValue | undefined): unknown => {
  if (!v) return undefined;
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('arrayValue' in v)
    return ((v.arrayValue as { values?: JsonAnyValue[] }).values ?? []).map((x) => jsonValue(x));
  return undefined;
};
const jsonAttributes = (list: { key: string; value: JsonAnyValue }[] | undefined) =>
  Object.fromEntries((list ?? []).map((a) => [a.key, jsonValue(a.value)]));

function decodeJson(body: Buffer, contentType: string): ReceivedSpan[] {
  const request = JSON.parse(body.toString('utf8')) as {
    resourceSpans?: {
      resource?: { attributes?: { key: string; value: JsonAnyValue }[] };
      scopeSpans?: { spans?: Record<string, unknown>[] }[];
    }[];
  };
  const out: ReceivedSpan[] = [];
  for (const rs of request.resourceSpans ?? []) {
    const resource = jsonAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? [])
      for (const s of ss.spans ?? [])
        out.push({
          traceId: String(s.traceId),
          spanId: String(s.spanId),
          parentSpanId: String(s.parentSpanId ?? ''),
          name: String(s.name),
          kind: Number(s.kind ?? 0),
          attributes: jsonAttributes(s.attributes as never),
          links: ((s.links as { traceId: string; spanId: string }[] | undefined) ?? []).map((l) => ({
            traceId: l.traceId,
            spanId: l.spanId,
          })),
          resource,
          contentType,
        });
  }
  return out;
}

// --- protobuf (opentelemetry/proto/collector/trace/v1/trace_service.proto, by field number) ---

interface Field {
  no: number;
  wire: number;
  /** varint / fixed value, or the bytes of a length-delimited field */
  value: bigint | Buffer;
}

function* fields(buf: Buffer): Generator<Field> {
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = buf[at++];
      if (byte === undefined) throw new Error('truncated varint');
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (at < buf.length) {
    const key = Number(varint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) yield { no, wire, value: varint() };
    else if (wire === 1) {
      yield { no, wire, value: buf.readBigUInt64LE(at) };
      at += 8;
    } else if (wire === 2) {
      const len = Number(varint());
      yield { no, wire, value: buf.subarray(at, at + len) };
      at += len;
    } else if (wire === 5) {
      yield { no, wire, value: BigInt(buf.readUInt32LE(at)) };
      at += 4;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
}

const bytesOf = (f: Field) => f.value as Buffer;

function protoAnyValue(buf: Buffer): unknown {
  for (const f of fields(buf)) {
    if (f.no === 1) return bytesOf(f).toString('utf8');
    if (f.no === 2) return f.value !== 0n;
    if (f.no === 3) return Number(BigInt.asIntN(64, f.value as bigint));
    if (f.no === 4) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(f.value as bigint);
      return b.readDoubleLE(0);
    }
    if (f.no === 5) {
      // ArrayValue { repeated AnyValue values = 1; }
      return [...fields(bytesOf(f))].filter((v) => v.no === 1).map((v) => protoAnyValue(bytesOf(v)));
    }
  }
  return undefined;
}

function protoKeyValue(buf: Buffer): [string, unknown] {
  let key = '';
  let value: unknown;
  for (const f of fields(buf)) {
    if (f.no === 1) key = bytesOf(f).toString('utf8');
    if (f.no === 2) value = protoAnyValue(bytesOf(f));
  }
  return [key, value];
}

function decodeProtobuf(body: Buffer, contentType: string): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rsField of fields(body)) {
    if (rsField.no !== 1) continue; // resource_spans
    let resource: Record<string, unknown> = {};
    const scopeSpans: Buffer[] = [];
    for (const f of fields(bytesOf(rsField))) {
      if (f.no === 1)
        resource = Object.fromEntries(
          [...fields(bytesOf(f))].filter((a) => a.no === 1).map((a) => protoKeyValue(bytesOf(a))),
        );
      if (f.no === 2) scopeSpans.push(bytesOf(f));
    }
    for (const ss of scopeSpans)
      for (const spanField of fields(ss)) {
        if (spanField.no !== 2) continue; // spans
        const span: ReceivedSpan = {
          traceId: '',
          spanId: '',
          parentSpanId: '',
          name: '',
          kind: 0,
          attributes: {},
          links: [],
          resource,
          contentType,
        };
        for (const f of fields(bytesOf(spanField))) {
          if (f.no === 1) span.traceId = bytesOf(f).toString('hex');
          else if (f.no === 2) span.spanId = bytesOf(f).toString('hex');
          else if (f.no === 4) span.parentSpanId = bytesOf(f).toString('hex');
          else if (f.no === 5) span.name = bytesOf(f).toString('utf8');
          else if (f.no === 6) span.kind = Number(f.value);
          else if (f.no === 9) {
            const [k, v] = protoKeyValue(bytesOf(f));
            span.attributes[k] = v;
          } else if (f.no === 13) {
            const link = { traceId: '', spanId: '' };
            for (const l of fields(bytesOf(f))) {
              if (l.no === 1) link.traceId = bytesOf(l).toString('hex');
              if (l.no === 2) link.spanId = bytesOf(l).toString('hex');
            }
            span.links.push(link);
          }
        }
        out.push(span);
      }
  }
  return out;
}
