import createClient, { type ClientOptions, type Middleware } from 'openapi-fetch';
import type { components, operations, paths } from './api.ts';

export type { components, Middleware, operations, paths };

/**
 * A typed client of the hub's API, for Node and browsers: `import { switchboardClient } from
 * 'switchboard/client'`. Paths, parameters, bodies and answers are typed from the OpenAPI
 * document (`GET /openapi.json`); errors are the API's `{"error": {"code", "message"}}`.
 *
 * ```ts
 * const hub = switchboardClient({ baseUrl: 'http://localhost:8080' });
 * const { data: session } = await hub.POST('/api/session', { body: {} });
 * const chat = switchboardClient({ baseUrl: 'http://localhost:8080', token: session!.token });
 * const { data } = await chat.POST('/api/chat', { body: { text: 'hello' } });
 * ```
 */
export function switchboardClient(options: ClientOptions & { token?: string }) {
  const { token, headers, ...rest } = options;
  return createClient<paths>({
    ...rest,
    headers: {
      ...(headers as Record<string, string> | undefined),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
  });
}

export type SwitchboardClient = ReturnType<typeof switchboardClient>;
/** A shape the document names (`Message`, `Session`, `Error`, …). */
export type Schema<N extends keyof components['schemas']> = components['schemas'][N];
