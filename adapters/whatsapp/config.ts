import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../../src/config/env.ts';
import { emptyAsUndefined, int, optionalString, parseEnv } from '../../src/config/env-parsing.ts';
import { BOT_NAME_PATTERN } from '../../src/envelope.ts';

/** `<phone_number_id>:<bot>,<phone_number_id>:<bot>` — which bot answers on which business number. */
const NumbersSchema = z.preprocess(
  emptyAsUndefined,
  z
    .string()
    .default('')
    .transform((raw, ctx) => {
      const map = new Map<string, string>();
      for (const item of raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)) {
        const match = /^(\d+):([^:]+)$/.exec(item);
        if (!match || !BOT_NAME_PATTERN.test(match[2]!)) {
          ctx.addIssue({
            code: 'custom',
            message: `"${item}" is not <phone_number_id>:<bot> (digits, a colon, a bot name)`,
          });
          continue;
        }
        map.set(match[1]!, match[2]!);
      }
      return map;
    }),
);

/** Every WhatsApp variable, with its default. README's WhatsApp section is written from this. */
export const WhatsAppEnvSchema = z.object({
  /** Cloud API: the access token (a system user token). Setting it turns the Cloud API on. */
  WHATSAPP_ACCESS_TOKEN: optionalString,
  /** Cloud API: the Meta app secret that signs webhooks (X-Hub-Signature-256). */
  WHATSAPP_APP_SECRET: optionalString,
  /** Cloud API: the verify token typed into the webhook setup in Meta's App Dashboard. */
  WHATSAPP_VERIFY_TOKEN: optionalString,
  WHATSAPP_GRAPH_URL: z.preprocess(emptyAsUndefined, z.url().default('https://graph.facebook.com')),
  WHATSAPP_GRAPH_VERSION: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^v\d+\.\d+$/, 'a Graph API version looks like v23.0')
      .default('v23.0'),
  ),
  WHATSAPP_NUMBERS: NumbersSchema,
  /** Cloud API: a person's reaction is `ignore`d, or a `message` whose text is the emoji. */
  WHATSAPP_REACTIONS: z.preprocess(emptyAsUndefined, z.enum(['ignore', 'message']).default('ignore')),
  /** The bot for business numbers not in WHATSAPP_NUMBERS, and for the WhatsApp Web session. */
  WHATSAPP_BOT: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(BOT_NAME_PATTERN, 'a bot name is lower-case letters, digits, - and _')
      .default('default'),
  ),
  /** Least time between two messages to the same person (both transports), per process. */
  WHATSAPP_RECIPIENT_INTERVAL_MS: int(0, 0),
  /** Longest wait for one Graph API request. */
  WHATSAPP_SEND_TIMEOUT_MS: int(15_000, 100),
  /** whatsapp-web.js: `off`, `on` (a gateway holds the linked session), `relay` (send through the gateway that holds it). */
  WHATSAPP_WEB: z.preprocess(emptyAsUndefined, z.enum(['off', 'on', 'relay']).default('off')),
  /**
   * whatsapp-web.js: group messages are `ignore`d, `accept`ed when they mention the linked account
   * or reply to it, or `all` answered (a session per person per group).
   */
  WHATSAPP_WEB_GROUPS: z.preprocess(emptyAsUndefined, z.enum(['ignore', 'accept', 'all']).default('ignore')),
  /** whatsapp-web.js: the Chromium it drives (Debian's package by default). */
  WHATSAPP_WEB_CHROMIUM: z.preprocess(emptyAsUndefined, z.string().default('/usr/bin/chromium')),
  /** whatsapp-web.js: the name of the linked session under DATA_DIR/whatsapp-web. */
  WHATSAPP_WEB_CLIENT_ID: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^[-_\w]+$/, 'letters, digits, - and _')
      .default('switchboard'),
  ),
  /** whatsapp-web.js: how long a worker waits for the gateway to confirm a send before retrying. */
  WHATSAPP_WEB_SEND_TIMEOUT_MS: int(20_000, 100),
});

export interface CloudConfig {
  accessToken: string;
  appSecret: string;
  verifyToken: string;
  graphUrl: string;
  graphVersion: string;
  /** phone_number_id → bot. */
  numbers: Map<string, string>;
  requestTimeoutMs: number;
  /** A person's reaction: skipped (`ignore`), or a message whose text is the emoji. */
  reactions: 'ignore' | 'message';
}

export interface WebConfig {
  /** `on`: this process may hold the linked session (gateway roles start it); `relay`: never. */
  mode: 'on' | 'relay';
  groups: 'ignore' | 'accept' | 'all';
  chromiumPath: string;
  clientId: string;
  /** Where LocalAuth keeps the linked session. */
  authDir: string;
  sendTimeoutMs: number;
}

export interface WhatsAppConfig {
  /** The bot for unmapped business numbers and for WhatsApp Web. */
  defaultBot: string;
  recipientIntervalMs: number;
  cloud?: CloudConfig;
  web?: WebConfig;
}

/**
 * Reads the WhatsApp variables. Undefined when neither transport is turned on, so the hub never
 * loads the adapter. Throws ConfigError naming every bad or missing variable.
 */
export function loadWhatsAppConfig(env: NodeJS.ProcessEnv, dataDir: string): WhatsAppConfig | undefined {
  const e = parseEnv(
    WhatsAppEnvSchema,
    env,
    (problems) => new ConfigError(`invalid WhatsApp configuration: ${problems}`),
  );
  const cloudWanted = Boolean(e.WHATSAPP_ACCESS_TOKEN || e.WHATSAPP_APP_SECRET || e.WHATSAPP_VERIFY_TOKEN);
  if (!cloudWanted && e.WHATSAPP_WEB === 'off') return undefined;
  const config: WhatsAppConfig = {
    defaultBot: e.WHATSAPP_BOT,
    recipientIntervalMs: e.WHATSAPP_RECIPIENT_INTERVAL_MS,
  };
  if (cloudWanted) {
    const missing = (
      ['WHATSAPP_ACCESS_TOKEN', 'WHATSAPP_APP_SECRET', 'WHATSAPP_VERIFY_TOKEN'] as const
    ).filter((name) => !e[name]);
    if (missing.length > 0)
      throw new ConfigError(`the WhatsApp Cloud API needs ${missing.join(', ')} as well`);
    config.cloud = {
      accessToken: e.WHATSAPP_ACCESS_TOKEN!,
      appSecret: e.WHATSAPP_APP_SECRET!,
      verifyToken: e.WHATSAPP_VERIFY_TOKEN!,
      graphUrl: e.WHATSAPP_GRAPH_URL.replace(/\/+$/, ''),
      graphVersion: e.WHATSAPP_GRAPH_VERSION,
      numbers: e.WHATSAPP_NUMBERS,
      requestTimeoutMs: e.WHATSAPP_SEND_TIMEOUT_MS,
      reactions: e.WHATSAPP_REACTIONS,
    };
  }
  if (e.WHATSAPP_WEB !== 'off') {
    config.web = {
      mode: e.WHATSAPP_WEB,
      groups: e.WHATSAPP_WEB_GROUPS,
      chromiumPath: e.WHATSAPP_WEB_CHROMIUM,
      clientId: e.WHATSAPP_WEB_CLIENT_ID,
      authDir: path.join(dataDir, 'whatsapp-web'),
      sendTimeoutMs: e.WHATSAPP_WEB_SEND_TIMEOUT_MS,
    };
  }
  return config;
}

/** Which variables turn the adapter on, so the hub can decide without loading it. */
export function whatsAppRequested(env: NodeJS.ProcessEnv): boolean {
  return Boolean(
    env.WHATSAPP_ACCESS_TOKEN ||
      env.WHATSAPP_APP_SECRET ||
      env.WHATSAPP_VERIFY_TOKEN ||
      (env.WHATSAPP_WEB && env.WHATSAPP_WEB !== 'off'),
  );
}
