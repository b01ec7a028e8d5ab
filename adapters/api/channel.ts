import { normalizeOpaqueId } from '../../src/channels/native-id.ts';
import type { ChannelPlugin } from '../../src/channels/plugin.ts';

/**
 * The REST API (`POST /api/session`, `POST /api/chat`): a client holding a session token, which
 * reads the replies itself (the answer to its request, the history).
 */
export const API_CHANNEL = 'api';

export const api: ChannelPlugin = {
  declaration: {
    name: API_CHANNEL,
    nativeId: { kind: 'opaque', normalize: normalizeOpaqueId },
    identified: false,
    sessions: 'explicit',
    delivery: 'client',
    limits: {},
    renders: { suggestions: true, cards: false, files: true, typing: false, streaming: false },
  },
  enabled: () => true,
  async loadAdapter() {
    const { createApiAdapter } = await import('./index.ts');
    return createApiAdapter();
  },
};
