import { createTelegramAdapter, loadTelegramConfig } from '../../adapters/telegram/index.ts';
import type { HubConfig } from '../../src/config/env.ts';
import type { HubOptions } from '../../src/hub.ts';
import { type RunningHub, startTestHub } from './hub.ts';
import { startTelegramBotApi, type TelegramBotApi } from './telegram-bot-api.ts';

/** A test hub whose one channel besides the API is Telegram, and the Bot API stand-in it talks to. */
export interface TelegramHub {
  api: TelegramBotApi;
  running: RunningHub;
}

/**
 * Starts a Bot API stand-in for `token`, then a test hub (as startTestHub, with `overrides` and
 * `options`) with the Telegram adapter against it: webhook secret `secret`, its sessions for `bot`.
 */
export async function startTelegramHub(
  telegram: { token: string; secret: string; bot: string },
  overrides: Partial<HubConfig>,
  options: Omit<HubOptions, 'config' | 'adapters'> = {},
): Promise<TelegramHub> {
  const api = await startTelegramBotApi(telegram.token);
  try {
    const config = loadTelegramConfig({
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_WEBHOOK_SECRET: telegram.secret,
      TELEGRAM_API_URL: api.url,
      TELEGRAM_BOT: telegram.bot,
    })!;
    const running = await startTestHub(overrides, { ...options, adapters: [createTelegramAdapter(config)] });
    return { api, running };
  } catch (err) {
    // The describe never learns of this stand-in, so its afterAll cannot close it.
    await api.close();
    throw err;
  }
}

/** Stops whichever of startTelegramHub's hub and stand-in exist (the hub first: nothing is sent to a closed stand-in). */
export async function stopTelegramHub(hub: Partial<TelegramHub>): Promise<void> {
  await hub.running?.stop();
  await hub.api?.close();
}

/** POSTs an update as Telegram does: JSON, with the secret token header (`null`: none). */
export function postTelegramUpdate(
  hubUrl: string,
  update: unknown,
  secret: string | null,
): Promise<Response> {
  return fetch(`${hubUrl}/webhooks/telegram`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(secret !== null ? { 'x-telegram-bot-api-secret-token': secret } : {}),
    },
    body: JSON.stringify(update),
  });
}
