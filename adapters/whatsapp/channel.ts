import { normalizePhoneNumber } from '../../src/channels/native-id.ts';
import type { ChannelPlugin } from '../../src/channels/plugin.ts';
import { whatsAppRequested } from './config.ts';
import { eraseWhatsAppOf } from './erase.ts';

/** WhatsApp: a phone number WhatsApp has verified, so the person is known; replies by the Cloud API or a linked client. */
export const whatsapp: ChannelPlugin = {
  declaration: {
    name: 'whatsapp',
    nativeId: { kind: 'phone', normalize: normalizePhoneNumber },
    identified: true,
    sessions: 'keyed',
    delivery: 'sender',
    // The Cloud API's own limits (cloud/outbound.ts splits and trims to them).
    limits: { textLength: 4096, buttons: 3, buttonTextLength: 20, messagesPerSecond: 80 },
    renders: { suggestions: true, cards: false, files: true, typing: true, streaming: false },
    // No tables of its own: what erasing a person removes from its keyed store (numbered choices).
    storage: { erase: eraseWhatsAppOf },
  },
  enabled: whatsAppRequested,
  async loadAdapter({ config, env }) {
    const { createWhatsAppAdapter, loadWhatsAppConfig } = await import('./index.ts');
    const options = loadWhatsAppConfig(env, config.dataDir);
    return options ? createWhatsAppAdapter(options) : undefined;
  },
};
