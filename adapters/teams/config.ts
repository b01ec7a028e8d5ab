import { z } from 'zod';
import { ConfigError } from '../../src/config/env.ts';
import { emptyAsUndefined, int, optionalString, parseEnv } from '../../src/config/env-parsing.ts';
import { BOT_NAME_PATTERN } from '../../src/envelope.ts';
import { isLoopbackHost } from './loopback.ts';

/** The three ways an Azure Bot resource can hold its identity (botbuilder's `MicrosoftAppType`). */
export const APP_TYPES = ['MultiTenant', 'SingleTenant', 'UserAssignedMSI'] as const;
export type AppType = (typeof APP_TYPES)[number];

/**
 * Teams' bot message limit is documented as 28 KB, then 40 KB, now 100 KB of UTF-16 including
 * the activity around the text. 12,000 UTF-16 units (24 KB) stays under all of them, with room
 * for the envelope and a card of suggestions.
 */
export const DEFAULT_MAX_TEXT_CHARS = 12_000;

/** Every Teams variable, with its default. README's Microsoft Teams section is written from this. */
export const TeamsEnvSchema = z.object({
  /** `true` turns the channel on without an app id: no authentication (the Bot Framework Emulator, local development). */
  TEAMS_ENABLED: z.preprocess(emptyAsUndefined, z.enum(['true', 'false']).default('false')),
  /** The Azure Bot's Microsoft App ID. Setting it turns the channel on, with authentication. */
  TEAMS_APP_ID: optionalString,
  /** The app registration's client secret (MultiTenant and SingleTenant). */
  TEAMS_APP_PASSWORD: optionalString,
  /** The Entra ID tenant of the app registration (SingleTenant and UserAssignedMSI). */
  TEAMS_APP_TENANT_ID: optionalString,
  /** `MultiTenant`, `SingleTenant` or `UserAssignedMSI`; unset: SingleTenant when a tenant id is set. */
  TEAMS_APP_TYPE: z.preprocess(emptyAsUndefined, z.enum(APP_TYPES).optional()),
  /** The bot that answers on Teams. */
  TEAMS_BOT: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(BOT_NAME_PATTERN, 'a bot name is lower-case letters, digits, - and _')
      .default('default'),
  ),
  /** Longest wait for one Bot Connector request; no answer is retried. */
  TEAMS_SEND_TIMEOUT_MS: int(15_000, 100),
  /** Longest text of one Teams message, in UTF-16 units; longer replies are split. */
  TEAMS_MAX_TEXT_CHARS: int(DEFAULT_MAX_TEXT_CHARS, 100),
  /** Private clouds (and tests): where the channel's token signing keys are published. */
  TEAMS_OPENID_METADATA_URL: z.preprocess(emptyAsUndefined, z.url().optional()),
  /** Private clouds (and tests): the issuer of the channel's tokens. */
  TEAMS_TOKEN_ISSUER: optionalString,
  /**
   * Private clouds (and tests): the Entra ID authority that issues the bot's own tokens for the
   * Bot Connector (https, with the tenant: `https://login.example/botframework.com`).
   */
  TEAMS_LOGIN_URL: z.preprocess(
    emptyAsUndefined,
    z
      .url()
      .refine((u) => u.startsWith('https://'), 'the login authority must be an https URL')
      .optional(),
  ),
});

export interface TeamsAuthConfig {
  appId: string;
  appType: AppType;
  password: string | undefined;
  tenantId: string | undefined;
  openIdMetadataUrl: string | undefined;
  tokenIssuer: string | undefined;
  /** The authority the bot's Bot Connector tokens come from; undefined: the public cloud's. */
  loginUrl: string | undefined;
}

export interface TeamsConfig {
  bot: string;
  /** Undefined: authentication is off (no app id): local development and the Emulator only. */
  auth: TeamsAuthConfig | undefined;
  sendTimeoutMs: number;
  maxTextChars: number;
}

/** Which variables turn the adapter on, so the hub can decide without loading botbuilder. */
export function teamsRequested(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.TEAMS_APP_ID) || env.TEAMS_ENABLED === 'true';
}

/**
 * Reads the Teams variables. Undefined when the channel is not turned on. Throws ConfigError
 * naming every bad or missing variable (before botbuilder's own assertions could), and when
 * the channel would run without authentication on an address other machines can reach:
 * `listenHost` is the hub's `HOST`.
 */
export function loadTeamsConfig(env: NodeJS.ProcessEnv, listenHost: string): TeamsConfig | undefined {
  const e = parseEnv(
    TeamsEnvSchema,
    env,
    (problems) => new ConfigError(`invalid Teams configuration: ${problems}`),
  );
  if (!e.TEAMS_APP_ID && e.TEAMS_ENABLED !== 'true') return undefined;
  if (!e.TEAMS_APP_ID && !isLoopbackHost(listenHost))
    throw new ConfigError(
      `TEAMS_ENABLED=true without TEAMS_APP_ID authenticates no one, so the hub must listen on a loopback address only: ` +
        `set HOST=127.0.0.1 (it is ${listenHost}), or set TEAMS_APP_ID and its credentials`,
    );
  return {
    bot: e.TEAMS_BOT,
    auth: e.TEAMS_APP_ID ? authConfig(e.TEAMS_APP_ID, e) : undefined,
    sendTimeoutMs: e.TEAMS_SEND_TIMEOUT_MS,
    maxTextChars: e.TEAMS_MAX_TEXT_CHARS,
  };
}

function authConfig(appId: string, e: z.infer<typeof TeamsEnvSchema>): TeamsAuthConfig {
  const appType: AppType = e.TEAMS_APP_TYPE ?? (e.TEAMS_APP_TENANT_ID ? 'SingleTenant' : 'MultiTenant');
  const needs = (ok: boolean, what: string) => {
    if (!ok) throw new ConfigError(`TEAMS_APP_TYPE=${appType} ${what}`);
  };
  if (appType === 'UserAssignedMSI') {
    needs(Boolean(e.TEAMS_APP_TENANT_ID), 'needs TEAMS_APP_TENANT_ID');
    needs(!e.TEAMS_APP_PASSWORD, 'takes no TEAMS_APP_PASSWORD (the managed identity has none)');
    needs(!e.TEAMS_LOGIN_URL, 'takes no TEAMS_LOGIN_URL (the managed identity gets its tokens from Azure)');
  } else {
    needs(Boolean(e.TEAMS_APP_PASSWORD), 'needs TEAMS_APP_PASSWORD (the client secret)');
    if (appType === 'SingleTenant') needs(Boolean(e.TEAMS_APP_TENANT_ID), 'needs TEAMS_APP_TENANT_ID');
  }
  return {
    appId,
    appType,
    password: e.TEAMS_APP_PASSWORD,
    tenantId: e.TEAMS_APP_TENANT_ID,
    openIdMetadataUrl: e.TEAMS_OPENID_METADATA_URL,
    tokenIssuer: e.TEAMS_TOKEN_ISSUER,
    loginUrl: e.TEAMS_LOGIN_URL,
  };
}
