import { normalizeOpaqueId } from '../../src/channels/native-id.ts';
import type { ChannelPlugin } from '../../src/channels/plugin.ts';

/**
 * The REST API (`POST /api/session`, `POST /api/chat`): a client holding a session token, which
 * reads the replies itself (the answer to its request, the history).
 */
export const api: ChannelPlugin = {
  declaration: {
    name: 'api',
    nativeId: { kind: 'opaque', normalize: normalizeOpaqueId },
    identified: false,
    sessions: 'explicit',
    delivery: 'client',
    limits: {},
    renders: { suggestions: true, cards: false, files: true, typing: false, streaming: false },
  },
  enabled: () => true,
  // Its routes are still mounted by the hub itself (src/http/session-api.ts).
  async loadAdapter() {
    return undefined;
  },
};
