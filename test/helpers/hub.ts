import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApiAdapter } from '../../adapters/api/index.ts';
import { type HubConfig, loadConfig } from '../../src/config/env.ts';
import { createHub, type Hub, type HubOptions } from '../../src/hub.ts';
import { createTestDatabase, silentLogger } from './database.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A configuration for tests: port 0 (any free one), loopback, silent, the repo's bots. */
export function testConfig(overrides: Partial<HubConfig> = {}): HubConfig {
  return {
    ...loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      // Test files run side by side on one PostgreSQL: small pools keep them under max_connections.
      DATABASE_POOL_SIZE: '4',
      CONFIG_DIR: path.join(REPO_ROOT, 'config'),
      LOG_LEVEL: 'silent',
      // Every test client comes from 127.0.0.1; a test of the limit sets its own.
      SESSION_CREATE_PER_MINUTE: '1000000',
      WEB_CONNECTIONS_PER_MINUTE: '1000000',
    }),
    ...overrides,
  };
}

export interface RunningHub {
  hub: Hub;
  url: string;
  stop(): Promise<void>;
}

/** A whole hub in this process on its own PostgreSQL database; `stop` also drops the database. */
export async function startTestHub(
  overrides: Partial<HubConfig> = {},
  options: Omit<HubOptions, 'config'> = {},
): Promise<RunningHub> {
  const database = overrides.databaseUrl ? undefined : await createTestDatabase();
  const config = testConfig({ databaseUrl: database?.url, ...overrides });
  // The REST API is a channel like the others; every test hub serves it, as `switchboard start` does.
  const adapters = options.adapters ?? [];
  const withApi = adapters.some((a) => a.channel === 'api') ? adapters : [createApiAdapter(), ...adapters];
  const hub = await createHub({ config, logger: silentLogger, ...options, adapters: withApi });
  let port: number;
  try {
    ({ port } = await hub.start());
  } catch (err) {
    // A start refused (a test of that): nothing of it stays open.
    await hub.stop().catch(() => undefined);
    await database?.drop();
    throw err;
  }
  return {
    hub,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      await hub.stop();
      await database?.drop();
    },
  };
}

/** `switchboard_inbound_file_failures_total` for one channel and outcome. */
export async function inboundFileFailures(
  running: RunningHub,
  channel: string,
  outcome: string,
): Promise<number> {
  return (
    (await running.hub.metrics.inboundFileFailures.get()).values.find(
      (v) => v.labels.channel === channel && v.labels.outcome === outcome,
    )?.value ?? 0
  );
}

/** What `apiClient` saw of one call (for a contract check against the OpenAPI document). */
export interface ApiExchange {
  method: string;
  path: string;
  status: number;
  requestBody?: unknown;
  responseBody?: unknown;
}

const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

/** A small HTTP client for the session API; `onExchange` hears every call it made. */
export function apiClient(baseUrl: string, options: { onExchange?: (exchange: ApiExchange) => void } = {}) {
  const call = async (
    method: string,
    route: string,
    request: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
  ) => {
    const headers: Record<string, string> = { ...request.headers };
    if (request.token) headers.authorization = `Bearer ${request.token}`;
    let body: string | undefined = request.raw;
    if (request.body !== undefined) {
      body = JSON.stringify(request.body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(`${baseUrl}${route}`, { method, headers, body });
    const text = await res.text();
    // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON came back (as the admin and agent helpers; the typed client, switchboard/client, is for what checks types)
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    options.onExchange?.({
      method,
      path: route,
      status: res.status,
      ...(body !== undefined ? { requestBody: safeJson(body) } : {}),
      ...(json !== undefined ? { responseBody: json } : {}),
    });
    return { status: res.status, headers: res.headers, json, text };
  };
  return {
    call,
    async createSession(bot?: string) {
      const res = await call('POST', '/api/session', bot ? { body: { bot } } : {});
      if (res.status !== 201) throw new Error(`POST /api/session: ${res.status} ${res.text}`);
      return res.json as { session_id: string; token: string; expires_at: string; bot: string };
    },
    chat: (token: string, text: string, extra: Record<string, unknown> = {}, query = '') =>
      call('POST', `/api/chat${query}`, { token, body: { text, ...extra } }),
    history: (token: string, query = '') => call('GET', `/api/session/messages${query}`, { token }),
  };
}
