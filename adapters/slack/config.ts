import { z } from 'zod';
import { ConfigError } from '../../src/config/env.ts';
import { emptyAsUndefined, parseEnv } from '../../src/config/env-parsing.ts';
import { BOT_NAME_PATTERN } from '../../src/envelope.ts';

/** Every Slack variable, with its default. README's Slack section is written from this. */
export const SlackEnvSchema = z.object({
  /** Basic Information → App Credentials → Signing Secret: signs every request Slack sends. */
  SLACK_SIGNING_SECRET: z.preprocess(emptyAsUndefined, z.string().min(8).optional()),
  /** OAuth & Permissions → Bot User OAuth Token (`xoxb-…`): replies are sent with it. */
  SLACK_BOT_TOKEN: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^xox[bp]-[A-Za-z0-9-]+$/, 'a bot token starts with xoxb-')
      .optional(),
  ),
  /** The Web API's address (a test's stand-in). */
  SLACK_API_URL: z.preprocess(emptyAsUndefined, z.url().default('https://slack.com/api')),
  /** The bot that answers on Slack. */
  SLACK_BOT: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(BOT_NAME_PATTERN, 'a bot name is lower-case letters, digits, - and _')
      .default('default'),
  ),
  /** Longest wait for one Web API request, in milliseconds. */
  SLACK_SEND_TIMEOUT_MS: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(100).default(15_000)),
});

export interface SlackConfig {
  signingSecret: string;
  botToken: string;
  /** The Web API's base, ending with a slash (as @slack/web-api wants `slackApiUrl`). */
  apiUrl: string;
  bot: string;
  requestTimeoutMs: number;
}

/**
 * Reads the Slack variables. Undefined when none is set, so the hub never loads the adapter.
 * Throws ConfigError naming every bad or missing variable.
 */
export function loadSlackConfig(env: NodeJS.ProcessEnv): SlackConfig | undefined {
  const e = parseEnv(
    SlackEnvSchema,
    env,
    (problems) => new ConfigError(`invalid Slack configuration: ${problems}`),
  );
  if (!slackRequested(env)) return undefined;
  const missing = (['SLACK_SIGNING_SECRET', 'SLACK_BOT_TOKEN'] as const).filter((name) => !e[name]);
  if (missing.length > 0) throw new ConfigError(`the Slack channel needs ${missing.join(', ')} as well`);
  return {
    signingSecret: e.SLACK_SIGNING_SECRET!,
    botToken: e.SLACK_BOT_TOKEN!,
    apiUrl: `${e.SLACK_API_URL.replace(/\/+$/, '')}/`,
    bot: e.SLACK_BOT,
    requestTimeoutMs: e.SLACK_SEND_TIMEOUT_MS,
  };
}

/** Which variables turn the channel on, so the hub can decide without loading it. */
export function slackRequested(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.SLACK_SIGNING_SECRET?.trim() || env.SLACK_BOT_TOKEN?.trim());
}
