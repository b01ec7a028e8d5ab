/** An HTTP client for the agent API: bearer token, or a cookie jar of one signed-in browser. */
export function agentClient(baseUrl: string, auth: { token?: string } = {}) {
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
