import type { ApiExchange } from './hub.ts';
import { until } from './until.ts';

/** An HTTP client for the agent API: bearer token, or a cookie jar of one signed-in browser. */
export function agentClient(
  baseUrl: string,
  auth: { token?: string; onExchange?: (exchange: ApiExchange) => void } = {},
) {
  let cookie: string | undefined;
  const call = async (
    method: string,
    route: string,
    options: { body?: unknown; headers?: Record<string, string>; token?: string | null } = {},
  ) => {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === null ? undefined : (options.token ?? auth.token);
    if (token) headers.authorization = `Bearer ${token}`;
    if (cookie && !token) headers.cookie = cookie;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${baseUrl}${route}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const setCookie = res.headers.get('set-cookie');
    if (setCookie) {
      const pair = setCookie.split(';', 1)[0]!;
      cookie = pair.endsWith('=') ? undefined : pair;
    }
    const text = await res.text();
    // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON came back
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    auth.onExchange?.({
      method,
      path: route,
      status: res.status,
      ...(options.body !== undefined ? { requestBody: options.body } : {}),
      ...(json !== undefined ? { responseBody: json } : {}),
    });
    return { status: res.status, headers: res.headers, json, text };
  };
  return {
    call,
    get cookie() {
      return cookie;
    },
    login: (email: string, password: string) =>
      call('POST', '/api/agent/login', { body: { email, password } }),
  };
}

/** Creates an agent through the management API with the operator token; returns its id and token. */
export async function createAgentVia(
  baseUrl: string,
  adminToken: string,
  agent: {
    name: string;
    email: string;
    password?: string;
    role?: string;
    bots?: string[];
    queues?: string[];
    capacity?: number;
  },
): Promise<{ agent_id: string; token: string }> {
  const res = await fetch(`${baseUrl}/api/admin/agents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ password: 'correct horse battery', ...agent }),
  });
  const json = (await res.json()) as { agent_id: string; token: string };
  if (res.status !== 201) throw new Error(`POST /api/admin/agents: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/**
 * An agent of `bots` made through the admin API (a fresh address from its name), with a client on
 * its token, its status set to `status`; throws unless the hub took both.
 */
export async function agentWithStatus(
  baseUrl: string,
  adminToken: string,
  agent: { name: string; bots: string[] },
  status: 'available' | 'away',
): Promise<{ made: { agent_id: string; token: string }; client: ReturnType<typeof agentClient> }> {
  const made = await createAgentVia(baseUrl, adminToken, {
    ...agent,
    email: `${agent.name.toLowerCase()}-${Date.now()}@example.com`,
  });
  const client = agentClient(baseUrl, { token: made.token });
  const set = await client.call('PUT', '/api/agent/status', { body: { status } });
  if (set.status !== 200) throw new Error(`PUT /api/agent/status: ${set.status} ${set.text}`);
  return { made, client };
}

export interface SseEvent {
  id?: string;
  event: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON came back
  data: any;
}

/**
 * Follows `GET /api/agent/events` like a console: every event it got, in order, and how to wait
 * for one. `lastEventId` resumes a stream. `auth` is an agent token, or a signed-in cookie
 * (`{ cookie }`, as `agentClient(…).cookie` holds it).
 */
export type EventsAuth = string | { cookie: string };

/** The request headers of an agent token, or of a signed-in cookie. */
const credentialHeaders = (auth: EventsAuth): Record<string, string> =>
  typeof auth === 'string' ? { authorization: `Bearer ${auth}` } : { cookie: auth.cookie };

/** The status `GET /api/agent/events` answers `auth` with (the stream, if any, is dropped). */
export async function eventsStatus(baseUrl: string, auth: EventsAuth): Promise<number> {
  const res = await fetch(`${baseUrl}/api/agent/events`, { headers: credentialHeaders(auth) });
  await res.body?.cancel();
  return res.status;
}

export async function followEvents(baseUrl: string, auth: EventsAuth, lastEventId?: string) {
  const controller = new AbortController();
  const res = await fetch(`${baseUrl}/api/agent/events`, {
    headers: { ...credentialHeaders(auth), ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
    signal: controller.signal,
  });
  if (res.status !== 200 || !res.body) throw new Error(`GET /api/agent/events: ${res.status}`);
  const events: SseEvent[] = [];
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut = buffer.indexOf('\n\n');
      while (cut >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        cut = buffer.indexOf('\n\n');
        const e: Partial<SseEvent> & { lines: string[] } = { lines: [] };
        for (const line of block.split('\n')) {
          if (line.startsWith('id:')) e.id = line.slice(3).trim();
          else if (line.startsWith('event:')) e.event = line.slice(6).trim();
          else if (line.startsWith('data:')) e.lines.push(line.slice(5).trim());
        }
        if (e.event)
          events.push({ id: e.id, event: e.event, data: JSON.parse(e.lines.join('\n') || 'null') });
      }
    }
  })();
  let aborted = false;
  /** Settles when the stream has ended: true when the hub ended it (not `close`). */
  const ended = pump.then(() => !aborted);
  return {
    events,
    headers: res.headers,
    /** True when the hub ended the stream within `ms`; false while it is still open. */
    async endsWithin(ms: number): Promise<boolean> {
      let timer: NodeJS.Timeout | undefined;
      const stillOpen = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      });
      try {
        return await Promise.race([ended, stillOpen]);
      } finally {
        clearTimeout(timer);
      }
    },
    async waitFor(match: (e: SseEvent) => boolean, timeoutMs = 15_000): Promise<SseEvent> {
      try {
        return (await until(
          () => events.find(match),
          (found) => found !== undefined,
          timeoutMs,
        )) as SseEvent;
      } catch {
        throw new Error(
          `no such event; got ${JSON.stringify(events.map((e) => [e.event, e.data?.session_id]))}`,
        );
      }
    },
    async close() {
      aborted = true;
      controller.abort();
      await pump;
    },
  };
}
