import type { Bot, BotRegistry } from '../config/bots.ts';
import type { HubConfig } from '../config/env.ts';
import type { Logger } from '../logger.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { Db } from '../store/db.ts';
import { WebhookDispatcher, type WebhookEndpoint } from './dispatcher.ts';
import { endpointKey } from './settings.ts';
import { syncEndpoints } from './store.ts';

const RETRY_MAX_MS = 60 * 60 * 1000;
const CONCURRENCY = 16;

export interface EventWebhooks {
  /** Every role: makes the database's endpoint list the configured one (the triggers read it). */
  sync(): Promise<void>;
  /** Workers: starts delivering. */
  start(): void;
  stop(): Promise<void>;
}

/** A webhook endpoint whose signing secret's variable is not set: none of its events could be sent. */
export interface UnsetWebhookSecret {
  bot: string;
  /** Its place in the bot's `webhooks` list. */
  index: number;
  url: string;
  secretEnv: string;
}

/** The bots' webhook endpoints whose `secretEnv` names a variable that is unset or empty in `env`. */
export function unsetWebhookSecrets(
  bots: readonly Pick<Bot, 'name' | 'settings'>[],
  env: Readonly<Record<string, string | undefined>>,
): UnsetWebhookSecret[] {
  return bots.flatMap((bot) =>
    bot.settings.webhooks.flatMap((w, index) =>
      env[w.secretEnv] ? [] : [{ bot: bot.name, index, url: w.url, secretEnv: w.secretEnv }],
    ),
  );
}

/** `webhooks.0.secretEnv`, and what is wrong with it, as `switchboard check` and a refused start say it. */
export function unsetWebhookSecretProblem(unset: UnsetWebhookSecret): { field: string; message: string } {
  return {
    field: `webhooks.${unset.index}.secretEnv`,
    message: `names ${unset.secretEnv}, which is not set: the events for ${unset.url} could not be signed, so none would be delivered`,
  };
}

/** The bots' event webhooks: the configured endpoints, and the worker loop that delivers to them. */
export function createEventWebhooks(deps: {
  db: Db;
  scheduler: Scheduler;
  logger: Logger;
  bots: BotRegistry;
  config: HubConfig;
  env?: Readonly<Record<string, string | undefined>>;
}): EventWebhooks {
  const endpoints = new Map<string, WebhookEndpoint & { events: readonly string[] }>();
  for (const bot of deps.bots.names())
    for (const w of deps.bots.get(bot).settings.webhooks)
      endpoints.set(endpointKey(bot, w.url), { bot, url: w.url, secretEnv: w.secretEnv, events: w.events });
  const env = deps.env ?? process.env;
  for (const e of endpoints.values())
    if (!env[e.secretEnv])
      deps.logger.warn({ event: 'webhook.secret_missing', bot: e.bot, url: e.url, secretEnv: e.secretEnv });
  const dispatcher = new WebhookDispatcher({
    db: deps.db,
    scheduler: deps.scheduler,
    logger: deps.logger,
    endpoints,
    env,
    timeoutMs: deps.config.webhookTimeoutMs,
    pollMs: deps.config.webhookPollMs,
    retryBaseMs: deps.config.webhookRetryBaseMs,
    retryMaxMs: RETRY_MAX_MS,
    maxAgeMs: deps.config.webhookMaxAgeMs,
    overdueRetryMs: deps.config.webhookOverdueRetryMs,
    concurrency: CONCURRENCY,
  });
  return {
    sync: () =>
      syncEndpoints(
        deps.db,
        [...endpoints].map(([endpoint, e]) => ({ endpoint, bot: e.bot, url: e.url, events: e.events })),
      ),
    start: () => dispatcher.start(),
    stop: () => dispatcher.stop(),
  };
}
