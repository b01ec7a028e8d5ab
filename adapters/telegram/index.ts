import type { AdapterHost, ChannelAdapter } from '../../src/ports.ts';
import { type BotApi, createBotApi } from './bot-api.ts';
import { botUsernameOf } from './bot-username.ts';
import type { TelegramConfig } from './config.ts';
import { telegramFileSource } from './files.ts';
import { TelegramSender } from './sender.ts';
import { webhookRoutes } from './webhook/routes.ts';

export type { TelegramConfig } from './config.ts';
export { loadTelegramConfig, telegramRequested } from './config.ts';

/**
 * The Telegram channel, in webhook mode: updates arrive at `POST /webhooks/telegram` (checked
 * with the secret token), replies leave with `sendMessage`. A person is their private chat id.
 */
export function createTelegramAdapter(config: TelegramConfig): ChannelAdapter {
  let host: AdapterHost | undefined;
  let api: BotApi | undefined;
  let sender: TelegramSender | undefined;
  const ready = () => {
    if (!sender) throw new Error('the Telegram adapter was not set up');
    return sender;
  };

  return {
    channel: 'telegram',
    bots: [{ bot: config.bot, setting: 'TELEGRAM_BOT' }],
    sender: {
      send: (batch) => ready().send(batch),
      typing: (session) => ready().typing(session),
    },

    // A person's file, queued as pending: fetched by the worker (getFile, then the file path) before the turn.
    async fetchAttachment(a) {
      if (!api) throw new Error('the Telegram adapter was not set up');
      return telegramFileSource({
        api,
        token: config.token,
        apiUrl: config.apiUrl,
        timeoutMs: config.requestTimeoutMs,
      })(a);
    },

    async setup(h: AdapterHost) {
      host = h;
      api = createBotApi({ token: config.token, apiUrl: config.apiUrl, timeoutMs: config.requestTimeoutMs });
      sender = new TelegramSender(api, h.logger, { files: h.files, store: h.store });
      h.logger.info({ event: 'telegram.configured', bot: config.bot, groups: config.groups });
    },

    routes() {
      if (!host || !api) throw new Error('the Telegram adapter was not set up');
      return webhookRoutes({ config, host, api, botUsername: botUsernameOf(api) });
    },
  };
}
