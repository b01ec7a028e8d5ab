import path from 'node:path';
import type WebSocket from 'ws';
import { createWebAdapter, loadWebConfig, type WebConfig } from '../../adapters/web/index.ts';
import type { HubConfig } from '../../src/config/env.ts';
import type { AdapterHost, ChannelAdapter } from '../../src/ports.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from './hub.ts';
import { TestSocket, wsUrl } from './ws-client.ts';

export const WEB_FIXTURES = path.join(REPO_ROOT, 'test/fixtures/web');

export interface WebHub extends RunningHub {
  ws: string;
  host: AdapterHost;
}

/** A hub in this process with the web adapter, on the web tests' bots; `host` is what adapters get. */
export async function startWebHub(
  overrides: Partial<HubConfig> = {},
  web: Partial<WebConfig> = {},
): Promise<WebHub> {
  let host: AdapterHost | undefined;
  const probe: ChannelAdapter = {
    channel: 'web',
    async setup(h) {
      host = h;
    },
  };
  const running = await startTestHub(
    { configDir: WEB_FIXTURES, ...overrides },
    { adapters: [createWebAdapter({ ...loadWebConfig({}), ...web }), probe] },
  );
  return { ...running, ws: wsUrl(running.url), host: host! };
}

/** Opens sockets and terminates them all at the end (`closeAll`). */
export function socketPool() {
  const sockets: TestSocket[] = [];
  return {
    async connect(hub: { ws: string }, options?: WebSocket.ClientOptions): Promise<TestSocket> {
      const s = await TestSocket.open(hub.ws, options);
      sockets.push(s);
      return s;
    },
    closeAll() {
      for (const s of sockets) s.ws.terminate();
    },
  };
}
