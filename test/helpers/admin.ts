import type { Ingress } from '../../src/ports.ts';
import type { Db } from '../../src/store/db.ts';
import type { ApiExchange } from './hub.ts';
import { until } from './until.ts';

/** An HTTP client for the operator API, with or without the admin token. */
export function adminClient(
  baseUrl: string,
  token: string | undefined,
  onExchange?: (exchange: ApiExchange) => void,
) {
  return async (method: string, route: string, body?: unknown, extraHeaders: Record<string, string> = {}) => {
    const headers: Record<string, string> = { ...extraHeaders };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${baseUrl}${route}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON came back
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    onExchange?.({
      method,
      path: route,
      status: res.status,
      ...(body !== undefined ? { requestBody: body } : {}),
      ...(json !== undefined ? { responseBody: json } : {}),
    });
    return { status: res.status, headers: res.headers, json, text };
  };
}

/** Polls until `check` returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  try {
    return (await until(check, (value) => value !== undefined && value !== false, timeoutMs, 50)) as T;
  } catch {
    throw new Error(`timed out waiting for ${what}`);
  }
}

/** Waits until the engine has recorded an envelope (its inbound history row exists). */
export async function processed(db: Db, envelopeId: string): Promise<void> {
  await eventually(async () => {
    const { rows } = await db.query('SELECT 1 FROM messages WHERE envelope_id = $1', [envelopeId]);
    return rows.length > 0;
  }, `envelope ${envelopeId} to be processed`);
}

/** Accepts an envelope through the hub's ingress, waits until the engine recorded it: its session. */
export async function sessionOfAccepted(
  hub: { ingress: Ingress; db: Db },
  envelope: Parameters<Ingress['accept']>[0],
): Promise<string> {
  await hub.ingress.accept(envelope);
  await processed(hub.db, envelope.id);
  const { rows } = await hub.db.query<{ session_id: string }>(
    'SELECT session_id FROM messages WHERE envelope_id = $1',
    [envelope.id],
  );
  return rows[0]!.session_id;
}

/**
 * The rows of every table of the public schema whose text mentions one of `needles` (`table: row`,
 * the row cut at 200 characters), and the tables read: where an erasure must leave nothing.
 */
export async function rowsMentioningAny(
  db: Db,
  needles: string[],
): Promise<{ tables: string[]; found: string[] }> {
  const { rows: tables } = await db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`,
  );
  const found: string[] = [];
  for (const { table_name } of tables) {
    const { rows } = await db.query<{ row: string }>(`SELECT t::text AS row FROM ${table_name} t`);
    for (const { row } of rows)
      if (needles.some((n) => row.includes(n))) found.push(`${table_name}: ${row.slice(0, 200)}`);
  }
  return { tables: tables.map((t) => t.table_name), found };
}
