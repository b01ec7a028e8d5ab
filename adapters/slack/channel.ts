import { InvalidIdentityError } from '../../src/channels/declaration.ts';
import type { ChannelPlugin } from '../../src/channels/plugin.ts';
import { slackRequested } from './config.ts';
import { BUTTON_TEXT_MAX, MAX_BUTTONS, TEXT_MAX } from './outbound.ts';

/** A workspace user: `<team id>:<user id>` (`T123ABC456:U061F7AUR`), upper case as Slack writes them. */
export function normalizeSlackUser(raw: string): string {
  const id = raw.trim().toUpperCase();
  if (!/^[TE][A-Z0-9]{2,}:[UW][A-Z0-9]{2,}$/.test(id))
    throw new InvalidIdentityError(`"${raw.trim()}" is not a Slack user (<team id>:<user id>)`);
  return id;
}

/**
 * Slack: a person is a workspace user, known to the workspace; a direct message is keyed by
 * them, a mention by them in its thread; replies go out through the Web API.
 */
export const slack: ChannelPlugin = {
  declaration: {
    name: 'slack',
    nativeId: { kind: 'opaque', normalize: normalizeSlackUser },
    identified: true,
    sessions: 'keyed',
    delivery: 'sender',
    limits: {
      textLength: TEXT_MAX,
      buttons: MAX_BUTTONS,
      buttonTextLength: BUTTON_TEXT_MAX,
      messagesPerSecond: 10,
    },
    renders: { suggestions: true, cards: true, files: true, typing: false, streaming: false },
  },
  enabled: slackRequested,
  async loadAdapter({ env }) {
    const { createSlackAdapter, loadSlackConfig } = await import('./index.ts');
    const config = loadSlackConfig(env);
    return config ? createSlackAdapter(config) : undefined;
  },
};
