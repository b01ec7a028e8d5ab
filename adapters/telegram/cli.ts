import { parseArgs } from 'node:util';
import { UsageError } from '../../src/cli-usage.ts';
import { ConfigError } from '../../src/config/env.ts';
import { botApiFailure, createBotApi } from './bot-api.ts';
import { loadTelegramConfig } from './config.ts';
import { registerWebhook, type WebhookRegistration } from './set-webhook.ts';

/**
 * `switchboard telegram <command>`. `set-webhook` registers the hub's webhook with the secret
 * token and the update types it handles, and prints what Telegram then holds. Returns the exit
 * code; what the operator must fix (configuration, a token or address Telegram refuses) is a
 * ConfigError, a command it does not know a UsageError.
 */
export async function runTelegramCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  out: NodeJS.WritableStream,
): Promise<number> {
  const [command, ...rest] = args;
  if (command !== 'set-webhook')
    throw new UsageError(`unknown telegram command "${command ?? ''}"; try: telegram set-webhook`);
  const { values } = parseArgs({
    args: rest,
    options: { 'drop-pending-updates': { type: 'boolean', default: false } },
    strict: true,
  });
  const config = loadTelegramConfig(env);
  if (!config) throw new ConfigError('set TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET first');
  if (!config.publicUrl)
    throw new ConfigError('set PUBLIC_URL to the hub’s address as the internet sees it (https://…)');
  const api = createBotApi({
    token: config.token,
    apiUrl: config.apiUrl,
    timeoutMs: config.requestTimeoutMs,
  });
  let registered: WebhookRegistration;
  try {
    registered = await registerWebhook(api, {
      publicUrl: config.publicUrl,
      secret: config.webhookSecret,
      dropPendingUpdates: values['drop-pending-updates'],
    });
  } catch (err) {
    const failure = botApiFailure(err);
    if (!failure) throw new ConfigError((err as Error).message);
    throw new ConfigError(
      `Telegram refused: ${failure.code !== undefined ? `${failure.code} ` : ''}${failure.description}`,
    );
  }
  out.write(
    `webhook set: ${registered.url}\nallowed updates: ${registered.allowedUpdates.join(', ')}\npending updates: ${registered.pendingUpdateCount}\n`,
  );
  if (registered.lastErrorMessage)
    out.write(`Telegram's last delivery error: ${registered.lastErrorMessage}\n`);
  return 0;
}
