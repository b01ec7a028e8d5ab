import { z } from 'zod';
import { ConfigError } from '../../src/config/env.ts';
import { emptyAsUndefined, optionalString, parseEnv } from '../../src/config/env-parsing.ts';
import { BOT_NAME_PATTERN } from '../../src/envelope.ts';
import { SECRET_TOKEN_PATTERN } from './webhook/verify.ts';

/** `123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw`: the bot's numeric id, a colon, the secret part. */
export const BOT_TOKEN_PATTERN = /^(\d+):[A-Za-z0-9_-]{20,}$/;

/** Every Telegram variable, with its default. README's Telegram section is written from this. */
export const TelegramEnvSchema = z.object({
  /** The token @BotFather gave. Setting it turns the channel on. */
  TELEGRAM_BOT_TOKEN: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(BOT_TOKEN_PATTERN, 'a bot token looks like 123456789:AAH…, as @BotFather gives it')
      .optional(),
  ),
  /** Sent back by Telegram in X-Telegram-Bot-Api-Secret-Token with every update. */
  TELEGRAM_WEBHOOK_SECRET: z.preprocess(
    emptyAsUndefined,
    z.string().regex(SECRET_TOKEN_PATTERN, '1 to 256 of A-Z, a-z, 0-9, _ and -').optional(),
  ),
  /** The Bot API's address (a local Bot API server, or a test's stand-in). */
  TELEGRAM_API_URL: z.preprocess(emptyAsUndefined, z.url().default('https://api.telegram.org')),
  /** The bot that answers on Telegram. */
  TELEGRAM_BOT: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(BOT_NAME_PATTERN, 'a bot name is lower-case letters, digits, - and _')
      .default('default'),
  ),
  /**
   * Group chats: `ignore`d (the default); `accept`ed, answering the messages meant for the bot (a
   * mention, a reply to it, its /command); or `all` answered. A session per person per group.
   */
  TELEGRAM_GROUPS: z.preprocess(emptyAsUndefined, z.enum(['ignore', 'accept', 'all']).default('ignore')),
  /** Longest wait for one Bot API request, in milliseconds. */
  TELEGRAM_SEND_TIMEOUT_MS: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(100).default(15_000)),
  /** The hub's address as the internet sees it: `switchboard telegram set-webhook` registers it. */
  PUBLIC_URL: optionalString,
});

export interface TelegramConfig {
  token: string;
  /** The bot's own user id: the part of the token before the colon. */
  botUserId: string;
  webhookSecret: string;
  apiUrl: string;
  bot: string;
  groups: 'ignore' | 'accept' | 'all';
  requestTimeoutMs: number;
  /** The hub's public address, without a trailing slash, when set. */
  publicUrl: string | undefined;
}

/**
 * Reads the Telegram variables. Undefined when no Telegram variable is set, so the hub never
 * loads the adapter. Throws ConfigError naming every bad or missing variable.
 */
export function loadTelegramConfig(env: NodeJS.ProcessEnv): TelegramConfig | undefined {
  const e = parseEnv(
    TelegramEnvSchema,
    env,
    (problems) => new ConfigError(`invalid Telegram configuration: ${problems}`),
  );
  if (!telegramRequested(env)) return undefined;
  const missing = (['TELEGRAM_BOT_TOKEN', 'TELEGRAM_WEBHOOK_SECRET'] as const).filter((name) => !e[name]);
  if (missing.length > 0) throw new ConfigError(`the Telegram channel needs ${missing.join(', ')} as well`);
  if (e.PUBLIC_URL !== undefined && !z.url().safeParse(e.PUBLIC_URL).success)
    throw new ConfigError('invalid Telegram configuration: PUBLIC_URL: not a URL');
  return {
    token: e.TELEGRAM_BOT_TOKEN!,
    botUserId: BOT_TOKEN_PATTERN.exec(e.TELEGRAM_BOT_TOKEN!)![1]!,
    webhookSecret: e.TELEGRAM_WEBHOOK_SECRET!,
    apiUrl: e.TELEGRAM_API_URL.replace(/\/+$/, ''),
    bot: e.TELEGRAM_BOT,
    groups: e.TELEGRAM_GROUPS,
    requestTimeoutMs: e.TELEGRAM_SEND_TIMEOUT_MS,
    publicUrl: e.PUBLIC_URL?.replace(/\/+$/, ''),
  };
}

/** Which variables turn the channel on, so the hub can decide without loading it. */
export function telegramRequested(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.TELEGRAM_BOT_TOKEN?.trim() || env.TELEGRAM_WEBHOOK_SECRET?.trim());
}
