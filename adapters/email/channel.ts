import { normalizeEmailAddress } from '../../src/channels/native-id.ts';
import type { ChannelPlugin } from '../../src/channels/plugin.ts';
import { emailEnabled } from './config.ts';

/**
 * Email: an address, known by default; a mail that fails authentication is not (the adapter sets
 * `identityVerified: false` on it). Suggestions are written into the mail as lines to reply with.
 */
export const email: ChannelPlugin = {
  declaration: {
    name: 'email',
    nativeId: { kind: 'email', normalize: normalizeEmailAddress },
    identified: true,
    sessions: 'keyed',
    delivery: 'sender',
    limits: { messagesPerSecond: 10 },
    renders: { suggestions: true, cards: false, files: false, typing: false, streaming: false },
  },
  enabled: emailEnabled,
  async loadAdapter({ env }) {
    const { createEmailAdapter, loadEmailConfig } = await import('./index.ts');
    return createEmailAdapter(loadEmailConfig(env));
  },
};
