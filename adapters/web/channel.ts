import { normalizeOpaqueId } from '../../src/channels/native-id.ts';
import type { ChannelPlugin } from '../../src/channels/plugin.ts';

/**
 * The web widget: an anonymous browser holding a session token; replies pushed over the web
 * socket as they happen (typing, streamed LLM tokens).
 */
export const web: ChannelPlugin = {
  declaration: {
    name: 'web',
    nativeId: { kind: 'opaque', normalize: normalizeOpaqueId },
    identified: false,
    sessions: 'explicit',
    delivery: 'live',
    limits: {},
    renders: { suggestions: true, cards: false, files: true, typing: true, streaming: true },
  },
  // Needs no credentials and no SDK: on unless WEB_ENABLED=false (loadWebConfig reads it).
  enabled: () => true,
  async loadAdapter({ env }) {
    const { createWebAdapter, loadWebConfig } = await import('./index.ts');
    const config = loadWebConfig(env);
    return config.enabled ? createWebAdapter(config) : undefined;
  },
};
