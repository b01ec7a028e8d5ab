import type { AdapterHost, ChannelAdapter } from '../../src/ports.ts';
import { API_CHANNEL } from './channel.ts';
import { sessionApiRoutes } from './routes.ts';

/**
 * The REST API channel: `POST /api/session`, `POST /api/chat`, `GET /api/session/messages`, ...
 * Its clients read their replies themselves, so it has no sender.
 */
export function createApiAdapter(): ChannelAdapter {
  let host: AdapterHost | undefined;
  return {
    channel: API_CHANNEL,
    async setup(h) {
      host = h;
    },
    routes() {
      if (!host) throw new Error('the api adapter is set up before its routes are mounted');
      return sessionApiRoutes(host);
    },
  };
}
