import path from 'node:path';
import { loadSignInVerifiers } from '../auth/sign-in-config.ts';
import { checkScripts } from '../dialog/library.ts';
import { unsetApiKeyVariable } from '../llm/settings.ts';
import { BotTools, TOOLS_DIR, ToolConfigError } from '../llm/tools.ts';
import { rateLimitChannelsProblem } from '../outbound/rate-limit-channels.ts';
import { unsetWebhookSecretProblem, unsetWebhookSecrets } from '../webhooks/webhooks.ts';
import {
  BOTS_DIR,
  type Bot,
  BotRegistry,
  botFolders,
  inspectBot,
  SETTINGS_FILE,
  UnknownBotError,
} from './bots.ts';
import { ConfigError, type HubConfig } from './env.ts';
import type { ConfigProblem } from './problems.ts';

/** One bot folder's part of `switchboard check`. */
export interface BotCheck {
  bot: string;
  dir: string;
  /** Its dialog scripts and tool scripts (`tools/x.bas`), by name. */
  scripts: string[];
  problems: ConfigProblem[];
}

export interface ConfigurationCheck {
  bots: BotCheck[];
  /** Problems of the environment, not of one bot. */
  problems: ConfigProblem[];
}

/** A ConfigError of the sign-in keys as a problem, at the bot's bot.json when it is the bot's. */
function signInProblem(err: unknown, bot?: Bot): ConfigProblem {
  if (!(err instanceof ConfigError)) throw err;
  if (!bot) return { message: err.message };
  const prefix = `bot "${bot.name}": `;
  return {
    file: path.join(bot.dir, SETTINGS_FILE),
    message: err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message,
  };
}

/** The bot's own sign-in key, read as a gateway reads it at start (the global key left out). */
async function botSignInProblems(
  config: HubConfig,
  bot: Bot,
  env: NodeJS.ProcessEnv,
): Promise<ConfigProblem[]> {
  if (!bot.settings.auth) return [];
  const ownOnly = {
    ...config,
    authJwtSecret: undefined,
    authJwtPublicKeyFile: undefined,
    authJwksFile: undefined,
  };
  try {
    await loadSignInVerifiers(ownOnly, new BotRegistry([bot]), env);
    return [];
  } catch (err) {
    return [signInProblem(err, bot)];
  }
}

/**
 * The variable the bot's `llm.apiKeyEnv` names, not set: start only warns (the hub's other bots
 * run), but every request of this bot would go without its key, so the check fails.
 */
function apiKeyProblems(bot: Bot, env: NodeJS.ProcessEnv): ConfigProblem[] {
  const unset = bot.settings.llm && unsetApiKeyVariable(bot.settings.llm, env);
  if (!unset) return [];
  return [
    {
      file: path.join(bot.dir, SETTINGS_FILE),
      field: 'llm.apiKeyEnv',
      message: `names ${unset}, which is not set: the bot's requests to its LLM would carry no key, and each one the API refuses is answered with the bot's apology`,
    },
  ];
}

/** The bot's LLM tools, loaded as its LLM is set up at start. */
async function toolProblems(bot: Bot, env: NodeJS.ProcessEnv): Promise<ConfigProblem[]> {
  if (!bot.settings.llm) return [];
  try {
    await BotTools.load(bot.dir, bot.settings, env);
    return [];
  } catch (err) {
    if (!(err instanceof ToolConfigError)) throw err;
    return [{ file: path.join(bot.dir, SETTINGS_FILE), field: 'llm.tools', message: err.message }];
  }
}

/**
 * What `start` refuses in the bots' configuration, found without starting anything: each bot
 * folder is loaded as the hub loads it (its name, bot.json, session templates, scripts, and its
 * handler module, imported), then its tool scripts are compiled and its tools, sign-in key and
 * webhook secrets checked as the roles that use them check them at start, and its LLM key's
 * variable must be set (start only warns of that one). Then what the start
 * refuses of the environment beyond its form (loadConfig): BROADCAST_RATE_LIMITS's channels, the
 * global sign-in key. `only`: one bot.
 */
export async function checkConfiguration(
  config: HubConfig,
  options: { only?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ConfigurationCheck> {
  const env = options.env ?? process.env;
  const folders = await botFolders(config.configDir);
  if (options.only !== undefined && !folders.includes(options.only)) throw new UnknownBotError(options.only);
  const root = path.join(config.configDir, BOTS_DIR);
  const bots: BotCheck[] = [];
  for (const name of options.only === undefined ? folders : [options.only]) {
    const inspected = await inspectBot(root, name, {});
    const problems = [...inspected.problems];
    const scripts = [...inspected.scripts];
    // Every tool script compiles, declared or not (src/llm/tools.ts runs the declared ones).
    const templates = new Set(inspected.bot?.templates?.keys() ?? []);
    const tools = await checkScripts(path.join(inspected.dir, TOOLS_DIR), templates);
    scripts.push(...tools.scripts.map((s) => `${TOOLS_DIR}/${s}`));
    problems.push(
      ...tools.errors.map((e) => ({
        file: path.join(inspected.dir, TOOLS_DIR, e.file),
        line: e.line,
        column: e.column,
        message: e.reason,
      })),
    );
    const bot = inspected.bot;
    if (bot) {
      // A broken tool script is reported once, above.
      if (tools.errors.length === 0) problems.push(...(await toolProblems(bot, env)));
      problems.push(...apiKeyProblems(bot, env));
      problems.push(...(await botSignInProblems(config, bot, env)));
      for (const unset of unsetWebhookSecrets([bot], env))
        problems.push({ file: path.join(bot.dir, SETTINGS_FILE), ...unsetWebhookSecretProblem(unset) });
    }
    bots.push({ bot: name, dir: inspected.dir, scripts, problems });
  }
  const problems: ConfigProblem[] = [];
  const rateLimitProblem = rateLimitChannelsProblem(config.broadcastRateLimits);
  if (rateLimitProblem) problems.push({ field: 'BROADCAST_RATE_LIMITS', message: rateLimitProblem });
  try {
    // The global sign-in key alone (each bot's own was read above).
    await loadSignInVerifiers(config, new BotRegistry([]), env);
  } catch (err) {
    problems.push(signInProblem(err));
  }
  return { bots, problems };
}
