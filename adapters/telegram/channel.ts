import { InvalidIdentityError } from '../../src/channels/declaration.ts';
import type { ChannelPlugin } from '../../src/channels/plugin.ts';
import { telegramRequested } from './config.ts';
import { eraseTelegramOf } from './erase.ts';
import { TEXT_MAX } from './outbound.ts';

/** A Telegram id (a chat id, which for a private chat is the person's user id): an integer. */
export function normalizeTelegramId(raw: string): string {
  const trimmed = raw.trim();
  if (!/^-?\d{1,20}$/.test(trimmed)) throw new InvalidIdentityError(`"${trimmed}" is not a Telegram chat id`);
  return String(BigInt(trimmed));
}

/**
 * Telegram: a person is their private chat with the bot, an id Telegram gives them alone, so they
 * are known; replies go out through the Bot API.
 */
export const telegram: ChannelPlugin = {
  declaration: {
    name: 'telegram',
    nativeId: { kind: 'opaque', normalize: normalizeTelegramId },
    identified: true,
    sessions: 'keyed',
    delivery: 'sender',
    limits: { textLength: TEXT_MAX, messagesPerSecond: 30 },
    renders: { suggestions: true, cards: true, files: true, typing: true, streaming: false },
    // No tables of its own: what erasing a person removes from its keyed store (long button values).
    storage: { erase: eraseTelegramOf },
  },
  enabled: telegramRequested,
  async loadAdapter({ env }) {
    const { createTelegramAdapter, loadTelegramConfig } = await import('./index.ts');
    const config = loadTelegramConfig(env);
    return config ? createTelegramAdapter(config) : undefined;
  },
  command: {
    usage: `  telegram set-webhook [--drop-pending-updates]
                                               register PUBLIC_URL/webhooks/telegram with Telegram`,
    async run(args, io) {
      const { runTelegramCommand } = await import('./cli.ts');
      return runTelegramCommand(args, io.env, io.out);
    },
  },
};
