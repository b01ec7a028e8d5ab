import { fileURLToPath } from 'node:url';
import { normalizeEmailAddress } from '../../src/channels/native-id.ts';
import type { ChannelPlugin } from '../../src/channels/plugin.ts';
import { emailEnabled } from './enabled.ts';
import { eraseEmailOf } from './erase.ts';
import { expireEmailOf, pruneEmailFailures } from './retention.ts';
import { unverifiedSenderId } from './unverified.ts';

/**
 * Email: an address, known by default; a mail that fails authentication is not (the adapter sets
 * `identityVerified: false` on it). Suggestions are written into the mail as lines to reply with.
 */
export const email: ChannelPlugin = {
  declaration: {
    name: 'email',
    nativeId: { kind: 'email', normalize: normalizeEmailAddress, unverified: unverifiedSenderId },
    identified: true,
    sessions: 'keyed',
    delivery: 'sender',
    limits: { messagesPerSecond: 10 },
    renders: { suggestions: true, cards: false, files: false, typing: false, streaming: false },
    // Mailboxes read, mail seen and sent, attachments, failures: its own tables, its own migrations
    // (once the core's 0006_email and 0011_email_failures; databases that applied those adopt them).
    storage: {
      migrationsDir: fileURLToPath(new URL('./migrations/', import.meta.url)),
      adopts: { '0001_email': '0006_email', '0002_email_failures': '0011_email_failures' },
      erase: eraseEmailOf,
      expire: expireEmailOf,
      prune: pruneEmailFailures,
    },
  },
  enabled: emailEnabled,
  async loadAdapter({ env }) {
    const { createEmailAdapter, loadEmailConfig } = await import('./index.ts');
    return createEmailAdapter(loadEmailConfig(env));
  },
};
