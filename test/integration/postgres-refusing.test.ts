import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentVia } from '../helpers/agents.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { openApiContract } from '../helpers/openapi-contract.ts';
import { until } from '../helpers/until.ts';
import { TEST_DATABASE_URL } from '../setup/services.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-refusing-database-tests';

const UNAVAILABLE = {
  status: 503,
  retryAfter: '2',
  body: {
    error: {
      code: 'unavailable',
      message: 'a service the hub depends on is not reachable right now; retry shortly',
    },
  },
};

/**
 * A database that refuses connections (`ALLOW_CONNECTIONS false`, as during maintenance: "database
 * … is not currently accepting connections") is a dependency away, as a stopped server is: every
 * route answers 503 `unavailable` with Retry-After, not 500 `internal`, and serves again once it
 * takes connections.
 */
describe('the HTTP API while PostgreSQL refuses connections to its database', () => {
  let database: TestDatabase;
  let running: RunningHub;
  let contract: ReturnType<typeof openApiContract>;
  const breaches: string[] = [];
  const name = () => new URL(database.url).pathname.slice(1);
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    running = await startTestHub({ databaseUrl: database.url, adminToken: ADMIN_TOKEN });
    contract = openApiContract(await (await fetch(`${running.url}/openapi.json`)).json());
  });
  afterAll(async () => {
    await running?.stop();
    await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS true`).catch(() => undefined);
    await database?.drop();
  });

  it('answers 503 unavailable with Retry-After on every route group, then serves again', async () => {
    const session = (await (await fetch(`${running.url}/api/session`, { method: 'POST' })).json()) as {
      token: string;
    };
    const agent = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Sue',
      email: 'sue@refusing.test',
      role: 'supervisor',
      bots: ['*'],
    });
    const calls: [string, string, Record<string, string>][] = [
      ['POST', '/api/session', {}],
      ['GET', '/api/session', { authorization: `Bearer ${session.token}` }],
      ['GET', '/api/session/messages', { authorization: `Bearer ${session.token}` }],
      ['GET', '/api/admin/sessions', { authorization: `Bearer ${ADMIN_TOKEN}` }],
      ['GET', '/api/admin/agents', { authorization: `Bearer ${ADMIN_TOKEN}` }],
      ['GET', '/api/agent/me', { authorization: `Bearer ${agent.token}` }],
      ['GET', '/api/admin/audit', { authorization: `Bearer ${agent.token}` }],
    ];
    const answers = async () =>
      Promise.all(
        calls.map(async ([method, path, headers]) => {
          const res = await fetch(`${running.url}${path}`, { method, headers });
          const body = (await res.json()) as unknown;
          breaches.push(...contract.check({ method, path, status: res.status, responseBody: body }));
          return {
            route: `${method} ${path}`,
            status: res.status,
            retryAfter: res.headers.get('retry-after'),
            body,
          };
        }),
      );

    await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS false`);
    // The pool's open connections go too, so every query needs a new one, which is refused.
    await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name()}'`);
    // Twice: the first round may meet connections as they are cut (also 503), the second only refusals.
    for (let round = 0; round < 2; round++)
      expect(await answers()).toEqual(
        calls.map(([method, path]) => ({ route: `${method} ${path}`, ...UNAVAILABLE })),
      );

    await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS true`);
    const back = await until(
      answers,
      (all) => all.every((a) => a.status === 200 || a.status === 201),
      30_000,
      200,
    );
    expect(back.map((a) => a.status)).toEqual([201, 200, 200, 200, 200, 200, 200]);
    // The 503s are the document's: each route lists it (with Retry-After).
    expect(breaches).toEqual([]);
  });
});
