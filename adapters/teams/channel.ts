import { normalizeOpaqueId } from '../../src/channels/native-id.ts';
import type { ChannelPlugin } from '../../src/channels/plugin.ts';
import { DEFAULT_MAX_TEXT_CHARS, teamsRequested } from './config.ts';

/** Microsoft Teams: a work account (AAD object id or Teams user id); replies through the Bot Connector. */
export const teams: ChannelPlugin = {
  declaration: {
    name: 'teams',
    nativeId: { kind: 'opaque', normalize: normalizeOpaqueId },
    identified: true,
    sessions: 'keyed',
    delivery: 'sender',
    limits: { textLength: DEFAULT_MAX_TEXT_CHARS, buttons: 3, messagesPerSecond: 30 },
    renders: { suggestions: true, cards: false, files: true, typing: true, streaming: false },
  },
  enabled: teamsRequested,
  async loadAdapter({ config: hub, env }) {
    const { createTeamsAdapter, loadTeamsConfig } = await import('./index.ts');
    const config = loadTeamsConfig(env, hub.host);
    return config ? createTeamsAdapter(config) : undefined;
  },
};
