import fc from 'fast-check';
import type { Hono } from 'hono';
import * as teamsDoc from '../fixtures/teams/activities.ts';

/**
 * Generated HTTP requests for every route of the hub, shared by the in-process fuzz (through
 * `app.request`) and the live run (through `fetch` to a started hub). A request is mostly right
 * and a little wrong: a route's own method and path with its parameters filled (an id that
 * exists, a UUID, garbage), a query string of the names the routes read and others, a body
 * that is a valid example with some leaves replaced, arbitrary JSON, or not JSON at all, and
 * each of the credentials the hub knows (or none, or a wrong one).
 */

export interface Route {
  method: string;
  path: string;
}

export interface FuzzRequest {
  method: string;
  /** Path and query string. */
  url: string;
  headers: Record<string, string>;
  body?: string;
  /** Signed as the platform would sign it (webhooks; see http-targets.ts). */
  signed: boolean;
}

/** Live credentials and ids to aim at; read at generation time (they may be replaced). */
export interface Targets {
  sessionToken: string;
  sessionId: string;
  adminToken: string;
  agentToken: string;
  agentId: string;
  userId: string;
}

/** The routes a Hono app serves (middleware excluded), each once. */
export function routesOf(app: Hono): Route[] {
  const seen = new Map<string, Route>();
  for (const r of app.routes) {
    if (r.method === 'ALL' || r.path === '/*' || r.path === '*') continue;
    seen.set(`${r.method} ${r.path}`, { method: r.method, path: r.path });
  }
  return [...seen.values()];
}

/** Routes whose answer is a stream that does not end (server-sent events, the socket upgrade). */
export const STREAMING = new Set(['GET /api/agent/events', 'GET /ws']);

type Json = unknown;

/** Valid bodies per route (method and path), the seeds of the mutated ones. */
const EXAMPLES: Record<string, Json[]> = {
  'POST /api/session': [{}, { bot: 'default' }, { bot: 'support' }],
  'POST /api/chat': [{ text: 'hello' }, { text: 'order status', message_id: 'm-1' }],
  'POST /api/session/authenticate': [{ jwt: 'eyJhbGciOiJIUzI1NiJ9.e30.c2ln' }],
  'POST /api/admin/sessions/:id/end': [{}, { reason: 'operator' }],
  'POST /api/admin/agents': [
    { name: 'Fuzz', email: 'fuzz@example.com', password: 'a long enough password', bots: ['*'], capacity: 2 },
  ],
  'PATCH /api/admin/agents/:id': [{ name: 'Renamed', capacity: 3, bots: ['default'] }],
  'POST /api/admin/users/:id/identities': [{ channel: 'whatsapp', native_id: '+15550001111' }],
  'POST /api/admin/messages': [
    { bot: 'default', channel: 'api', to: 'someone', text: 'hello' },
    { channel: 'whatsapp', to: '+15550001111', text: 'hi', send_at: '2030-01-01T00:00:00Z' },
  ],
  'POST /api/agent/login': [{ email: 'fuzz@example.com', password: 'a long enough password' }],
  'PUT /api/agent/status': [{ status: 'online' }, { status: 'away' }],
  'POST /api/agent/conversations/:id/messages': [{ text: 'agent says' }],
  'POST /api/agent/conversations/:id/notes': [{ text: 'a note' }],
  'POST /api/agent/conversations/:id/transfer': [{ agent_id: '00000000-0000-4000-8000-000000000000' }],
  'POST /api/messages': (Object.values(teamsDoc) as Json[]).filter(
    (v) => typeof v === 'object' && v !== null,
  ),
};

const QUERY_NAMES = [
  'limit',
  'before',
  'after',
  'cursor',
  'state',
  'bot',
  'channel',
  'user',
  'user_id',
  'wait',
  'from',
  'to',
  'since',
  'until',
  'q',
  'hub.mode',
  'hub.verify_token',
  'hub.challenge',
  'token',
];

/** Every leaf path of a JSON value. */
function leafPaths(value: Json, at: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== 'object') return [at];
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  if (entries.length === 0) return [at];
  return entries.flatMap(([k, v]) => leafPaths(v, [...at, k]));
}

function replaceAt(value: Json, at: (string | number)[], by: Json): Json {
  if (at.length === 0) return by;
  const [head, ...rest] = at;
  const copy = (Array.isArray(value) ? [...value] : { ...(value as object) }) as Record<
    string | number,
    Json
  >;
  copy[head!] = replaceAt(copy[head!], rest, by);
  return copy;
}

/** A valid example with some of its leaves replaced by arbitrary JSON (or removed), or a field added. */
function mutated(examples: Json[]): fc.Arbitrary<Json> {
  return fc
    .tuple(
      fc.constantFrom(...examples),
      fc.array(fc.tuple(fc.nat(), fc.oneof(fc.jsonValue(), fc.constant(undefined))), { maxLength: 3 }),
      fc.option(fc.tuple(fc.string({ maxLength: 12 }), fc.jsonValue()), { freq: 5 }),
    )
    .map(([doc, changes, extra]) => {
      let out = structuredClone(doc);
      for (const [index, by] of changes) {
        const paths = leafPaths(out);
        out = replaceAt(out, paths[index % paths.length]!, by);
      }
      if (extra && out && typeof out === 'object' && !Array.isArray(out))
        (out as Record<string, Json>)[extra[0]] = extra[1];
      return out;
    });
}

const garbage = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.constantFrom(
    '',
    '..',
    '%00',
    '%zz',
    '\u0000',
    'null',
    '-1',
    '1e999',
    'a'.repeat(400),
    '../../etc/passwd',
  ),
);

/** A path parameter: an id that exists, a UUID, or garbage (percent-encoded, or raw where legal). */
function param(name: string, t: () => Targets): fc.Arbitrary<string> {
  const real = fc.constantFrom('session', 'agent', 'user').map((k) => {
    const targets = t();
    return k === 'session' ? targets.sessionId : k === 'agent' ? targets.agentId : targets.userId;
  });
  return fc.oneof(
    { arbitrary: real, weight: 3 },
    { arbitrary: fc.uuid(), weight: 2 },
    { arbitrary: garbage.map((g) => encodeURIComponent(g)), weight: 2 },
    { arbitrary: fc.constantFrom('main.js', 'main.css', 'x', name), weight: 1 },
  );
}

function fillPath(path: string, t: () => Targets): fc.Arbitrary<string> {
  const parts = path.split('/');
  return fc
    .tuple(
      ...parts.map((part) => {
        if (part.startsWith(':')) return param(part.slice(1).replace(/\{.*$/, ''), t);
        if (part === '*')
          return fc.oneof(
            fc.constant('x'),
            garbage.map((g) => encodeURIComponent(g)),
          );
        return fc.constant(part);
      }),
    )
    .map((filled) => filled.join('/'));
}

const queryString: fc.Arbitrary<string> = fc.oneof(
  fc.constant(''),
  fc
    .array(
      fc.tuple(
        fc.oneof({ arbitrary: fc.constantFrom(...QUERY_NAMES), weight: 4 }, fc.string({ maxLength: 8 })),
        fc.oneof(
          fc.constantFrom(
            '0',
            '1',
            '-1',
            '50',
            '201',
            '1e3',
            'NaN',
            'true',
            'false',
            'waiting',
            'mine',
            'all',
          ),
          fc.integer().map(String),
          fc.string({ unit: 'binary', maxLength: 40 }),
        ),
      ),
      { maxLength: 4 },
    )
    .map((pairs) => (pairs.length ? `?${new URLSearchParams(pairs).toString()}` : '')),
  // Not encoded as it should be.
  fc.string({ maxLength: 40 }).map((s) => `?${s.replace(/[#\s]/g, '')}`),
);

function bodyFor(key: string): fc.Arbitrary<string | undefined> {
  const examples = EXAMPLES[key];
  const json = fc.oneof(...(examples ? [{ arbitrary: mutated(examples), weight: 4 }] : []), {
    arbitrary: fc.jsonValue(),
    weight: 2,
  });
  return fc.oneof(
    { arbitrary: json.map((j) => JSON.stringify(j) ?? 'null'), weight: 6 },
    { arbitrary: fc.constant(undefined), weight: 1 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 200 }), weight: 1 },
    // Deep nesting, and JSON cut short.
    { arbitrary: fc.nat({ max: 5_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`), weight: 1 },
    { arbitrary: json.map((j) => (JSON.stringify(j) ?? '').slice(0, -1)), weight: 1 },
  );
}

function authorization(t: () => Targets): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    fc.constant(undefined),
    fc.constantFrom('session', 'admin', 'agent').map((k) => {
      const targets = t();
      return `Bearer ${k === 'session' ? targets.sessionToken : k === 'admin' ? targets.adminToken : targets.agentToken}`;
    }),
    fc.constantFrom('Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'Bearer a.b.c', `Bearer ${'x'.repeat(5000)}`),
    // Header values are printable ASCII (fetch refuses others before they are sent).
    fc.string({ maxLength: 80 }),
  );
}

const contentType = fc.oneof(
  { arbitrary: fc.constant('application/json'), weight: 6 },
  {
    arbitrary: fc.constantFrom(
      undefined,
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/json; charset=utf-16',
      'garbage',
    ),
    weight: 2,
  },
);

/** Requests for `route`, with the credentials and ids of `targets` (read when each is made). */
export function requestsFor(route: Route, targets: () => Targets): fc.Arbitrary<FuzzRequest> {
  const key = `${route.method} ${route.path}`;
  const withBody = !['GET', 'HEAD', 'OPTIONS'].includes(route.method);
  return fc
    .tuple(
      fillPath(route.path, targets),
      queryString,
      withBody ? bodyFor(key) : fc.constant(undefined),
      authorization(targets),
      contentType,
      fc.boolean(),
      fc.boolean(),
    )
    .map(([path, query, body, auth, type, csrf, signed]) => {
      const headers: Record<string, string> = {};
      if (auth !== undefined) headers.authorization = auth;
      if (body !== undefined && type !== undefined) headers['content-type'] = type;
      // The console's cookie routes want this header; the fuzz sometimes sends it.
      if (csrf) headers['x-requested-with'] = 'switchboard-console';
      return {
        method: route.method,
        url: `${path || '/'}${query}`,
        headers,
        signed,
        ...(body !== undefined ? { body } : {}),
      };
    });
}

/** What `rowCounter` needs of a database client (pg's, or the hub's Db). */
export interface Queryable {
  // biome-ignore lint/suspicious/noExplicitAny: pg's and the hub's query signatures differ in their generics
  query(sql: string): Promise<{ rows: any[] }>;
}

/**
 * The number of rows of every table of the database, in one query: what a refused request must
 * leave as it was.
 */
export async function rowCounter(db: Queryable): Promise<() => Promise<Record<string, number>>> {
  const { rows } = (await db.query(
    `SELECT table_name FROM information_schema.tables
      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`,
  )) as { rows: { table_name: string }[] };
  const names = rows.map((r) => r.table_name);
  const sql = `SELECT ${names.map((n, i) => `(SELECT count(*)::int FROM "${n}") AS c${i}`).join(', ')}`;
  return async () => {
    const counts = (await db.query(sql)).rows[0] as Record<string, number>;
    return Object.fromEntries(names.map((n, i) => [n, counts[`c${i}`]!]));
  };
}
