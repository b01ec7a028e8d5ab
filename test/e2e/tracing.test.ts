import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeader } from '../../adapters/whatsapp/webhook/verify.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { Cluster } from '../helpers/cluster.ts';
import { type GraphApi, graphError, startGraphApi } from '../helpers/graph-api.ts';
import { apiClient } from '../helpers/hub.ts';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../helpers/otlp-receiver.ts';
import { until } from '../helpers/until.ts';

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

/**
 * OpenTelemetry end to end: a gateway and a worker process export to a local OTLP receiver (the
 * gateway in protobuf, the default; the worker in JSON, `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`).
 * One WhatsApp webhook that carries a `traceparent` gives one trace: the caller's span → the
 * gateway's request → accept → (queue wait) turn → commit → the Graph API send.
 */
describe('tracing across a gateway and a worker (OTLP, Redis, PostgreSQL)', () => {
  let graph: GraphApi;
  let otlp: OtlpReceiver;
  const cluster = new Cluster();

  beforeAll(async () => {
    graph = await startGraphApi('trace-token');
    otlp = await startOtlpReceiver();
    await cluster.init();
    Object.assign(cluster.env, {
      WHATSAPP_ACCESS_TOKEN: 'trace-token',
      WHATSAPP_APP_SECRET: 'trace-secret',
      WHATSAPP_VERIFY_TOKEN: 'trace-verify',
      WHATSAPP_GRAPH_URL: graph.url,
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      // Export within a tenth of a second: the test kills the processes with SIGKILL at the end.
      OTEL_BSP_SCHEDULE_DELAY: '100',
      LOG_LEVEL: 'debug',
    });
    await cluster.addGateway();
    cluster.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json';
    await cluster.addWorker();
  }, 120_000);
  afterAll(async () => {
    await cluster.stop();
    await graph?.close();
    await otlp?.close();
  });

  const post = (raw: string, traceparent: string) =>
    fetch(`${cluster.gateways[0]!.url}/webhooks/whatsapp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-hub-signature-256': signatureHeader(raw, 'trace-secret'),
        traceparent,
      },
      body: raw,
    });

  it('one webhook is one trace: accept → turn → send → Graph requests, parents intact, continuing the inbound traceparent', async () => {
    const traceId = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const text = 'Does it come in another color?';
    const raw = JSON.stringify(
      doc.variant(doc.textMessage, { from: '5511988887777', suffix: 'trace', timestamp: new Date() }),
    );
    expect(raw).toContain(text);
    const res = await fetch(`${cluster.gateways[0]!.url}/webhooks/whatsapp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-hub-signature-256': signatureHeader(raw, 'trace-secret'),
        traceparent: `00-${traceId}-${callerSpan}-01`,
      },
      body: raw,
    });
    expect(res.status).toBe(200);
    await until(
      () => graph.to('5511988887777'),
      (r) => r.length >= 2,
      30_000,
    );

    // The gateway exports on its own schedule: its request's span (ended after the response,
    // the last of its spans) may come after the worker's last ones.
    const spans = await until(
      () => otlp.trace(traceId),
      (list) =>
        list.filter((s) => s.name === 'POST /{version}/{phone_number_id}/messages').length >= 3 &&
        list.some((s) => s.name === 'POST /webhooks/whatsapp'),
      30_000,
    );
    const one = (name: string): ReceivedSpan => {
      const found = spans.filter((s) => s.name === name);
      expect(found.map((s) => s.name)).toEqual([name]);
      return found[0]!;
    };
    const request = one('POST /webhooks/whatsapp');
    const accept = one('switchboard.accept');
    const wait = one('switchboard.queue.wait');
    const turn = one('switchboard.turn');
    const commit = one('switchboard.commit');
    const send = one('switchboard.send whatsapp');
    // The delivery sent the turn's two replies (greeting, answer): one Graph request each.
    const graphPosts = spans.filter((s) => s.name === 'POST /{version}/{phone_number_id}/messages');

    // Parent links, from the caller's span down to each platform send.
    expect(request).toMatchObject({ parentSpanId: callerSpan, kind: SERVER });
    expect(accept).toMatchObject({ parentSpanId: request.spanId, kind: PRODUCER });
    expect(wait).toMatchObject({ parentSpanId: accept.spanId, kind: CONSUMER });
    expect(turn).toMatchObject({ parentSpanId: accept.spanId, kind: CONSUMER });
    // This bot's dialog only walks its script (no LLM, no tool, no platform request): it is the
    // turn's own time, not a span (test/integration/tracing-spans.test.ts: a dialog that does
    // traced work is one). The turn committed alone: the commit's span is the turn's child.
    expect(spans.filter((s) => s.name === 'switchboard.dialog')).toEqual([]);
    expect(commit).toMatchObject({
      parentSpanId: turn.spanId,
      attributes: { 'switchboard.commit.turns': 1 },
    });
    expect(send).toMatchObject({ parentSpanId: turn.spanId, kind: CLIENT });
    expect(send.attributes).toMatchObject({ 'switchboard.send.replies': 2 });
    const replies = graphPosts.filter((p) => p.parentSpanId === send.spanId);
    expect(replies.map((p) => [p.kind, p.attributes['whatsapp.message.type']])).toEqual([
      [CLIENT, 'text'],
      [CLIENT, 'text'],
    ]);
    // The read receipt with the typing indicator, sent by the turn itself as it starts.
    expect(graphPosts.filter((p) => p.parentSpanId === turn.spanId)).toHaveLength(1);
    expect(graphPosts).toHaveLength(3);
    // Every span of the trace hangs off another one of it, or off the caller's.
    const ids = new Set([callerSpan, ...spans.map((s) => s.spanId)]);
    for (const s of spans) expect(ids.has(s.parentSpanId), `${s.name}'s parent`).toBe(true);

    // Each process exported in its own encoding; the gateway accepted, the worker took the turn and sent.
    expect(request.contentType).toBe('application/x-protobuf');
    expect(accept).toMatchObject({
      contentType: 'application/x-protobuf',
      resource: { 'switchboard.role': 'gateway' },
    });
    expect(turn).toMatchObject({
      contentType: 'application/json',
      resource: { 'switchboard.role': 'worker' },
    });
    expect(send.resource).toMatchObject({ 'service.name': 'switchboard', 'switchboard.role': 'worker' });
    expect(request.attributes).toMatchObject({
      'http.route': '/webhooks/whatsapp',
      'http.response.status_code': 200,
    });
    expect(turn.attributes).toMatchObject({
      'switchboard.channel': 'whatsapp',
      'switchboard.envelope.kind': 'message',
      'switchboard.turn.outcome': 'committed',
      'switchboard.commit.result': 'committed',
    });
    expect(turn.attributes['switchboard.session.id']).toMatch(/^[0-9a-f-]{36}$/);

    // No message text in any span without SWITCHBOARD_TRACE_CONTENT=true.
    expect(JSON.stringify(otlp.spans)).not.toContain(text);

    // The worker's log lines written during the turn carry its trace id.
    const workerLines = cluster.workers[0]!.logLines();
    const created = workerLines.find((l) => l.event === 'session.created' && l.trace_id === traceId);
    expect(created).toBeDefined();
    // Lines below the turn too (LOG_LEVEL=debug here): the turn's after its commit, and the group
    // commit's, which carry the commit's own span.
    expect(workerLines.find((l) => l.event === 'turn.committed' && l.trace_id === traceId)).toMatchObject({
      span_id: turn.spanId,
    });
    expect(workerLines.find((l) => l.event === 'commit.batch_start' && l.trace_id === traceId)).toMatchObject(
      {
        span_id: commit.spanId,
      },
    );
    // The gateway warmed its accepts before it started (http/protobuf, SWITCHBOARD_TRACE_WARMUP
    // unset: 4,000 synthetic messages); none of their spans was sent.
    expect(cluster.gateways[0]!.logLines().find((l) => l.event === 'tracing.started')).toMatchObject({
      protocol: 'http/protobuf',
      warmUpMessages: 4_000,
      warmUpSpans: 4_000,
    });
    expect(otlp.spans.filter((s) => s.attributes['switchboard.bot'] === 'warm-up')).toEqual([]);
    expect(cluster.crashes()).toEqual([]);
  });
  it('turns held and committed in one write: each message its own trace, accept → turn → send, the commit linked to every turn, the queue job to every accept', async () => {
    // No worker while three messages of one person are queued: the next worker drains them as one
    // lane chunk, holds the first two turns and commits all three in one write with the third.
    await cluster.workers[0]!.stop();
    const from = '5511977776666';
    const traceIds = [0, 1, 2].map(() => randomBytes(16).toString('hex'));
    for (const [i, traceId] of traceIds.entries()) {
      const raw = JSON.stringify(
        doc.variant(doc.textMessage, { from, suffix: `held${i}`, timestamp: new Date() }),
      );
      const res = await post(raw, `00-${traceId}-${randomBytes(8).toString('hex')}-01`);
      expect(res.status).toBe(200);
    }
    await cluster.addWorker();
    const sendsOf = (list: ReceivedSpan[]) => list.filter((s) => s.name === 'switchboard.send whatsapp');
    const traces = [];
    for (const traceId of traceIds)
      traces.push(
        await until(
          () => otlp.trace(traceId),
          (list) => sendsOf(list).length >= 1 && list.some((s) => s.name === 'switchboard.turn'),
          30_000,
        ),
      );

    const turns = traces.map((spans) => spans.filter((s) => s.name === 'switchboard.turn'));
    expect(turns.map((t) => t.length)).toEqual([1, 1, 1]);
    expect(turns.map((t) => t[0]!.attributes['switchboard.turn.outcome'])).toEqual([
      'held',
      'held',
      'committed',
    ]);
    // One commit for the three: in the third message's trace (its turn's child), linked to the
    // turns held before it, each in a trace of its own.
    const commits = otlp.spans.filter((s) => s.name === 'switchboard.commit' && traceIds.includes(s.traceId));
    expect(commits).toHaveLength(1);
    const commit = commits[0]!;
    expect(commit).toMatchObject({
      traceId: traceIds[2],
      parentSpanId: turns[2]![0]!.spanId,
      attributes: { 'switchboard.commit.turns': 3 },
    });
    expect(commit.links.map((l) => [l.traceId, l.spanId])).toEqual(
      turns.slice(0, 2).map((t) => [t[0]!.traceId, t[0]!.spanId]),
    );
    expect(turns[2]![0]!.attributes['switchboard.commit.result']).toBe('committed');

    for (const [i, spans] of traces.entries()) {
      const named = (name: string) => spans.filter((s) => s.name === name);
      const request = named('POST /webhooks/whatsapp');
      const accept = named('switchboard.accept');
      const wait = named('switchboard.queue.wait');
      expect([request.length, accept.length, wait.length], `trace ${i}`).toEqual([1, 1, 1]);
      expect(accept[0]!.parentSpanId).toBe(request[0]!.spanId);
      expect(wait[0]!.parentSpanId).toBe(accept[0]!.spanId);
      const turn = turns[i]![0]!;
      expect(turn.parentSpanId).toBe(accept[0]!.spanId);
      // The worker's queue job served the three: each turn links to its drain span.
      expect(turn.links).toHaveLength(1);
      // The turn's own replies go out in its own trace, even those written by another turn's commit.
      const sends = sendsOf(spans);
      expect(sends.length, `trace ${i}'s sends`).toBeGreaterThanOrEqual(1);
      for (const send of sends) {
        expect(send.parentSpanId).toBe(turn.spanId);
        const posts = spans.filter((s) => s.parentSpanId === send.spanId);
        expect(posts.map((p) => p.name)).toEqual(
          Array(send.attributes['switchboard.send.replies']).fill(
            'POST /{version}/{phone_number_id}/messages',
          ),
        );
      }
      const ids = new Set(spans.map((s) => s.spanId));
      for (const s of spans)
        if (s !== request[0]) expect(ids.has(s.parentSpanId), `${s.name}'s parent in trace ${i}`).toBe(true);
    }
    // The queue job's span, in no message's trace: the three turns link to it, and it links to the
    // trace each envelope carried (its accept), as each turn started.
    const drainId = turns[0]![0]!.links[0]!.spanId;
    expect(turns.map((t) => t[0]!.links[0]!.spanId)).toEqual([drainId, drainId, drainId]);
    const drain = await until(
      () => otlp.spans.find((s) => s.spanId === drainId),
      (span) => span !== undefined,
      30_000,
    );
    expect(drain).toMatchObject({
      name: 'switchboard.queue.drain',
      attributes: {
        'messaging.batch.message_count': 3,
        // The lane (`bot|channel|+phone`) only by its keyed hash: the number is not exported.
        'switchboard.lane.hash': expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      },
    });
    expect(drain!.attributes).not.toHaveProperty('switchboard.lane');
    // Nor does any span of the run carry the person's number.
    expect(JSON.stringify(otlp.spans)).not.toContain(from);
    expect(traceIds).not.toContain(drain!.traceId);
    const accepts = traces.map((spans) => spans.find((s) => s.name === 'switchboard.accept')!);
    expect(drain!.links.map((l) => [l.traceId, l.spanId])).toEqual(accepts.map((a) => [a.traceId, a.spanId]));
    expect(cluster.crashes()).toEqual([]);
  });

  it("a turn's trace context is on the replies a sender delivers (WhatsApp), not on those nothing sends (the API's)", async () => {
    const replyTraces = async (sessionId: string) => {
      const db = new pg.Client({ connectionString: cluster.database!.url });
      await db.connect();
      try {
        const { rows } = await db.query<{ trace: unknown }>(
          `SELECT payload->'trace' AS trace FROM messages WHERE session_id = $1 AND role = 'assistant'`,
          [sessionId],
        );
        return rows.map((r) => r.trace);
      } finally {
        await db.end();
      }
    };
    const api = apiClient(cluster.gateways[0]!.url);
    const session = await api.createSession();
    expect((await api.chat(session.token, 'hello')).status).toBe(200);
    const apiReplies = await until(
      () => replyTraces(session.session_id),
      (list) => list.length >= 1,
    );
    expect(apiReplies.every((t) => t === null)).toBe(true);

    const from = '5511955554444';
    const traceId = randomBytes(16).toString('hex');
    const raw = JSON.stringify(
      doc.variant(doc.textMessage, { from, suffix: 'stamp', timestamp: new Date() }),
    );
    expect((await post(raw, `00-${traceId}-${randomBytes(8).toString('hex')}-01`)).status).toBe(200);
    const spans = await until(
      () => otlp.trace(traceId),
      (list) => list.some((s) => s.name === 'switchboard.turn' && s.attributes['switchboard.session.id']),
      30_000,
    );
    const sessionId = String(
      spans.find((s) => s.name === 'switchboard.turn')!.attributes['switchboard.session.id'],
    );
    const whatsappReplies = await replyTraces(sessionId);
    expect(whatsappReplies.length).toBeGreaterThanOrEqual(1);
    for (const t of whatsappReplies)
      expect(t).toMatchObject({ traceparent: expect.stringContaining(traceId) });
  });

  it("a platform send that fails is retried, and the retry's log line carries the failed send's span", async () => {
    const from = '5511944443333';
    graph.script(
      (req) => req.body.to === from && req.body.status === undefined,
      graphError(500, 2, 'Service temporarily unavailable'),
    );
    const traceId = randomBytes(16).toString('hex');
    const raw = JSON.stringify(
      doc.variant(doc.textMessage, { from, suffix: 'retry', timestamp: new Date() }),
    );
    expect((await post(raw, `00-${traceId}-${randomBytes(8).toString('hex')}-01`)).status).toBe(200);
    // Whichever process's outbox took the session sends it.
    const lines = () => [...cluster.gateways, ...cluster.workers].flatMap((p) => p.logLines());
    const retry = await until(
      () => lines().find((l) => l.event === 'delivery.retry' && l.trace_id === traceId),
      (line) => line !== undefined,
      30_000,
    );
    const sends = await until(
      () => otlp.trace(traceId),
      (list) => list.filter((s) => s.name === 'switchboard.send whatsapp').length >= 2,
      30_000,
    );
    const first = sends.find(
      (s) => s.name === 'switchboard.send whatsapp' && s.attributes['switchboard.send.attempt'] === 1,
    );
    expect(retry).toMatchObject({ channel: 'whatsapp', attempt: 1, span_id: first!.spanId });
    expect(cluster.crashes()).toEqual([]);
  });
});
