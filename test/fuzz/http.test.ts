import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdapters } from '../../adapters/index.ts';
import { silentLogger } from '../helpers/database.ts';
import { apiClient, type RunningHub, startTestHub, testConfig } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import { type FuzzRequest, type Route, requestsFor, routesOf, rowCounter, STREAMING } from './http-inputs.ts';
import { fuzzEnv, sign, startTargets } from './http-targets.ts';

/**
 * Property test of every HTTP route of a hub in this process (the REST API, the operator and
 * agent APIs, outbound, identity, the console, the widget, and the Teams, WhatsApp, Telegram
 * and Slack webhooks): generated bodies, query strings, path parameters and credentials go
 * through the real app (its zod parsing, its auth, its handlers) over loopback HTTP. Whatever
 * arrives: no 5xx, and a refused request (4xx) leaves every table as it was.
 *
 * FUZZ_RUNS (500 in the suite, 10,000 in `npm run fuzz`) sets the requests per route: one
 * twentieth of it, at least 20 (25 per route in the suite, 500 in `npm run fuzz`). FUZZ_SEED
 * replays a run; a failure found is kept in REGRESSIONS with its seed and path.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 500);
const PER_ROUTE = Math.max(20, Math.ceil(RUNS / 20));
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

/**
 * Tables a refused request writes by design: the sign-in throttle counts wrong passwords (that
 * is what throttles them).
 */
const RECORDS_OF_REFUSALS = ['agent_login_failures'];
const persisted = (counts: Record<string, number>) =>
  Object.fromEntries(Object.entries(counts).filter(([table]) => !RECORDS_OF_REFUSALS.includes(table)));

/** Seeds (with their paths) of failures found once, by route; replayed on every run. */
const REGRESSIONS: { route: string; seed: number; path?: string }[] = [
  // JSON nested thousands deep: 500 (the stack overflowed walking it for invalid text); now 400.
  { route: 'POST /api/session', seed: -60547789, path: '15:0:1' },
  { route: 'POST /api/session/authenticate', seed: -1466580211, path: '18:0' },
  { route: 'POST /api/admin/messages', seed: -1633843481, path: '18:0:2' },
  // /console/assets/toString found Object.prototype.toString as an asset: 503; now 404.
  { route: 'GET /console/assets/:name', seed: 12514199, path: '12:77:77' },
];

describe(`every HTTP route refuses what it cannot use, without a 5xx (${PER_ROUTE} requests per route)`, () => {
  let running: RunningHub;
  let routes: Route[];
  let targets: Awaited<ReturnType<typeof startTargets>>;
  let counts: () => Promise<Record<string, number>>;

  beforeAll(async () => {
    const env = fuzzEnv();
    const config = testConfig({ adminToken: env.ADMIN_TOKEN });
    running = await startTestHub(
      {
        adminToken: env.ADMIN_TOKEN,
        authJwtSecret: env.AUTH_JWT_SECRET,
        authJwtIssuer: env.AUTH_JWT_ISSUER,
        authJwtAudience: env.AUTH_JWT_AUDIENCE,
      },
      { adapters: await loadAdapters(config, env, silentLogger) },
    );
    routes = routesOf(running.hub.app);
    targets = await startTargets(running.url, env.ADMIN_TOKEN!);
    counts = await rowCounter(running.hub.db);
  }, 120_000);
  afterAll(async () => {
    await running?.stop();
  });

  /** Sends one request; resolves with its status (a stream's once its headers arrived). */
  async function send(route: Route, req: FuzzRequest): Promise<number> {
    const signed = sign(req);
    const controller = new AbortController();
    const res = await fetch(`${running.url}${signed.url}`, {
      method: signed.method,
      headers: signed.headers,
      ...(signed.body !== undefined ? { body: signed.body } : {}),
      signal: controller.signal,
      redirect: 'manual',
    });
    if (STREAMING.has(`${route.method} ${route.path}`)) controller.abort();
    else await res.arrayBuffer();
    return res.status;
  }

  it('covers the routes the hub serves', () => {
    const keys = routes.map((r) => `${r.method} ${r.path}`);
    for (const key of [
      'POST /api/session',
      'POST /api/chat',
      'GET /api/session/messages',
      'GET /api/admin/sessions',
      'POST /api/admin/agents',
      'POST /api/agent/conversations/:id/messages',
      'POST /api/admin/messages',
      'POST /api/messages',
      'POST /webhooks/whatsapp',
      'POST /webhooks/telegram',
      'POST /webhooks/slack',
    ])
      expect(keys).toContain(key);
  });

  it('no route answers 5xx, and a refused request persists nothing', async () => {
    const failures: string[] = [];
    for (const route of routes) {
      const key = `${route.method} ${route.path}`;
      const property = fc.asyncProperty(
        requestsFor(route, () => targets),
        async (req) => {
          // Whatever an accepted request started (a turn) is finished before counting.
          await until(
            () => running.hub.queue.depth(),
            (d) => d === 0,
            30_000,
          );
          const before = persisted(await counts());
          const status = await send(route, req);
          expect(status, `${req.method} ${req.url}`).toBeLessThan(500);
          if (status >= 400)
            expect(persisted(await counts()), `${req.method} ${req.url} → ${status}`).toEqual(before);
          // A request may have ended the session or replaced the agent's token: renew what died.
          await targets.refresh();
        },
      );
      try {
        await fc.assert(property, { numRuns: PER_ROUTE, ...(SEED === undefined ? {} : { seed: SEED }) });
        for (const r of REGRESSIONS.filter((x) => x.route === key))
          await fc.assert(property, { seed: r.seed, ...(r.path ? { path: r.path } : {}), numRuns: 1 });
      } catch (err) {
        // fast-check's report: the seed and path, the counterexample (cut), and what failed.
        const message = (err as Error).message;
        const cause = (err as { cause?: { message?: string } }).cause?.message ?? '';
        failures.push(`${key}: ${message.slice(0, 400)} … ${cause.slice(0, 1_500)}`);
      }
    }
    expect(failures).toEqual([]);
  }, 900_000);

  it('names of Object.prototype are not console assets (found by the fuzz: a 503 before)', async () => {
    for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty'])
      expect((await fetch(`${running.url}/console/assets/${name}`)).status).toBe(404);
  });

  it('the API client still works after the fuzz (the hub is healthy)', async () => {
    const api = apiClient(running.url);
    const s = await api.createSession();
    expect((await api.chat(s.token, 'hello')).status).toBe(200);
  });
});
