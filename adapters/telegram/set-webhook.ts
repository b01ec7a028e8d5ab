import type { BotApi } from './bot-api.ts';
import { ALLOWED_UPDATES } from './webhook/parse.ts';
import { WEBHOOK_PATH } from './webhook/routes.ts';

export interface WebhookRegistration {
  url: string;
  allowedUpdates: string[];
  /** What Telegram reports afterwards (`getWebhookInfo`). */
  pendingUpdateCount: number;
  lastErrorMessage?: string;
}

/**
 * Registers `<PUBLIC_URL>/webhooks/telegram` with Telegram (`setWebhook`): the secret it must send
 * back in X-Telegram-Bot-Api-Secret-Token, and the update types the hub handles (messages and
 * button presses). Then reads the registration back, so the operator sees what Telegram holds.
 */
export async function registerWebhook(
  api: BotApi,
  o: { publicUrl: string; secret: string; dropPendingUpdates?: boolean },
): Promise<WebhookRegistration> {
  const url = `${o.publicUrl.replace(/\/+$/, '')}${WEBHOOK_PATH}`;
  if (!url.startsWith('https://'))
    throw new Error(`Telegram only delivers webhooks to https:// addresses; PUBLIC_URL gives ${url}`);
  await api.raw.setWebhook({
    url,
    secret_token: o.secret,
    allowed_updates: [...ALLOWED_UPDATES],
    ...(o.dropPendingUpdates ? { drop_pending_updates: true } : {}),
  });
  const info = await api.raw.getWebhookInfo();
  if (info.url !== url) throw new Error(`Telegram holds the webhook ${info.url || '(none)'}, not ${url}`);
  return {
    url: info.url,
    allowedUpdates: info.allowed_updates ?? [...ALLOWED_UPDATES],
    pendingUpdateCount: info.pending_update_count,
    ...(info.last_error_message ? { lastErrorMessage: info.last_error_message } : {}),
  };
}
