import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdapters } from '../../adapters/index.ts';
import { parseClientFrame } from '../../adapters/web/protocol.ts';
import { createTestDatabase, silentLogger, type TestDatabase } from '../helpers/database.ts';
import { startTestHub, testConfig } from '../helpers/hub.ts';
import { ServerProcess } from '../helpers/server-process.ts';
import { until } from '../helpers/until.ts';
import { TestSocket, wsUrl } from '../helpers/ws-client.ts';
import { type Route, requestsFor, routesOf, rowCounter, STREAMING } from './http-inputs.ts';
import { fuzzEnv, sign, startTargets } from './http-targets.ts';

/**
 * The live fuzz: a started hub (`switchboard start`, a child process on its own PostgreSQL
 * database, every HTTP channel on, its limits raised so that the fuzz reaches the parsers rather
 * than the rate limiters), FUZZ_LIVE_RUNS generated requests per HTTP entry point and as many
 * frames on the socket. Expected: the process never dies, no 5xx, no socket closed as an
 * internal error, and a refused request or frame leaves every table as it was. Before each
 * count, whatever an accepted input started has finished: the hub's own queue depth (/metrics)
 * is 0.
 *
 * `npm run fuzz:live` runs 1,000 each (part of `npm run fuzz`); the suite runs 20 each.
 * FUZZ_SEED replays a run.
 */
const RUNS = Number(process.env.FUZZ_LIVE_RUNS ?? 20);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
/** Tables a refused input writes by design (see http.test.ts). */
const RECORDS_OF_REFUSALS = ['agent_login_failures'];
const persisted = (counts: Record<string, number>) =>
  Object.fromEntries(Object.entries(counts).filter(([table]) => !RECORDS_OF_REFUSALS.includes(table)));

/** The tables whose row count differs, with both counts. */
const changedTables = (before: Record<string, number>, after: Record<string, number>) =>
  Object.keys(after)
    .filter((t) => before[t] !== after[t])
    .map((t) => `${t}: ${before[t]} → ${after[t]}`);

describe(`live fuzz of a started hub (${RUNS} per entry point)`, () => {
  let database: TestDatabase;
  let server: ServerProcess;
  let db: pg.Client;
  let routes: Route[];
  let targets: Awaited<ReturnType<typeof startTargets>>;
  let counts: () => Promise<Record<string, number>>;
  const statuses = new Map<number, number>();

  /** The hub's queue depth, from its metrics: 0 once every accepted input is handled. */
  // Read from the inbox itself (the server's in-process queue), not /metrics: its values are
  // cached for up to 5 s, so a 0 read there can predate work queued since.
  const queueDepth = async () =>
    (
      await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM inbox WHERE processed_at IS NULL AND failed_at IS NULL',
      )
    ).rows[0]!.n;
  const quiet = () => until(queueDepth, (d) => d === 0, 60_000);

  beforeAll(async () => {
    const env = fuzzEnv();
    // The route list, from the same code in this process.
    const listing = await startTestHub(
      { adminToken: env.ADMIN_TOKEN },
      { adapters: await loadAdapters(testConfig(), env, silentLogger) },
    );
    routes = routesOf(listing.hub.app);
    await listing.stop();

    database = await createTestDatabase();
    server = new ServerProcess({
      ...env,
      PORT: '0',
      DATABASE_URL: database.url,
      RATE_LIMIT_PER_MINUTE: '10000000',
      SESSION_CREATE_PER_MINUTE: '10000000',
      WEB_CONNECTIONS_PER_MINUTE: '10000000',
    });
    await server.start();
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
    counts = await rowCounter(db);
    targets = await startTargets(server.url, env.ADMIN_TOKEN!);
  }, 180_000);
  afterAll(async () => {
    await db?.end();
    await server?.stop();
    await database?.drop();
  });

  it(`${RUNS} requests per HTTP entry point: no 5xx, nothing persisted from a refusal`, async () => {
    const failures: string[] = [];
    for (const route of routes) {
      const key = `${route.method} ${route.path}`;
      const property = fc.asyncProperty(
        requestsFor(route, () => targets),
        async (generated) => {
          const req = sign(generated);
          // Whatever an earlier input (or a renewed target's greeting) started is finished first.
          await quiet();
          const before = persisted(await counts());
          const controller = new AbortController();
          const res = await fetch(`${server.url}${req.url}`, {
            method: req.method,
            headers: req.headers,
            ...(req.body !== undefined ? { body: req.body } : {}),
            signal: controller.signal,
            redirect: 'manual',
          });
          if (STREAMING.has(key)) controller.abort();
          else await res.arrayBuffer();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          expect(res.status, `${req.method} ${req.url}`).toBeLessThan(500);
          if (res.status >= 400)
            expect(
              changedTables(before, persisted(await counts())),
              `${req.method} ${req.url} → ${res.status}`,
            ).toEqual([]);
          await targets.refresh();
        },
      );
      try {
        await fc.assert(property, { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) });
      } catch (err) {
        const message = (err as Error).message;
        const cause = (err as { cause?: { message?: string } }).cause?.message ?? '';
        failures.push(`${key}: ${message.slice(0, 400)} … ${cause.slice(0, 1_500)}`);
      }
      expect(server.crashed, `after ${key}:\n${server.tail(40)}`).toBeUndefined();
    }
    expect(failures).toEqual([]);
    expect(server.crashed).toBeUndefined();
  }, 3_600_000);

  it(`${RUNS} frames on the socket: refused ones are answered and persist nothing`, async () => {
    const valid = [
      { type: 'hello', bot: 'default', lastSeq: 0 },
      { type: 'message', id: 'abc', text: 'hi' },
      { type: 'ack', seq: 3 },
      { type: 'authenticate', jwt: 'a.b.c' },
      { type: 'ping' },
      { type: 'end' },
    ];
    const frame = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.json(),
      fc
        .tuple(fc.constantFrom(...valid), fc.string({ maxLength: 10 }), fc.jsonValue())
        .map(([f, k, v]) => JSON.stringify({ ...f, [k]: v })),
      fc.constantFrom(...valid).map((f) => JSON.stringify(f)),
    );
    let socket = await TestSocket.open(wsUrl(server.url));
    const closes: number[] = [];
    /** Pongs this socket owes: one for every ping sent on it, a fuzzed one or the test's own. */
    let owed = 0;
    const pongs = () => socket.frames.filter((f) => f.type === 'pong').length;
    const property = fc.asyncProperty(frame, async (text) => {
      if (socket.closeEvent) {
        closes.push(socket.closeEvent.code);
        socket = await TestSocket.open(wsUrl(server.url));
        owed = 0;
      }
      const parsed = parseClientFrame(text);
      const refused = !('frame' in parsed);
      await quiet();
      const before = persisted(await counts());
      const heard = socket.frames.length;
      socket.send(text);
      if (!refused && parsed.frame.type === 'ping') owed++;
      // A socket handles its frames one after another: the pong of a ping sent behind this frame
      // comes once this frame was handled (a hello's session opened, a message queued, a refusal
      // answered). Counting every pong owed, rather than waiting for the next one, keeps a fuzzed
      // ping's own pong from being taken for it.
      socket.send({ type: 'ping' });
      owed++;
      const state = await until(
        () => (socket.closeEvent ? 'closed' : pongs() >= owed ? 'handled' : undefined),
        (s) => s !== undefined,
        30_000,
      );
      if (!refused) return;
      if (state === 'handled')
        expect(
          socket.frames.slice(heard).some((f) => f.type === 'error'),
          `an error answers ${JSON.stringify(text)}`,
        ).toBe(true);
      expect(changedTables(before, persisted(await counts())), `frame ${JSON.stringify(text)}`).toEqual([]);
    });
    try {
      await fc.assert(property, { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) });
    } finally {
      await socket.close().catch(() => undefined);
    }
    // Closed for the client's reasons (a policy, an ended session), never as an internal error.
    expect(closes.filter((c) => c === 1011)).toEqual([]);
    expect(server.crashed).toBeUndefined();
  }, 3_600_000);
});
