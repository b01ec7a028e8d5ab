import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { BotAuthSettingsSchema } from '../auth/settings.ts';
import { ScriptLibrary } from '../dialog/library.ts';
import { createDialogHandler, type DialogServices } from '../dialog/runtime.ts';
import type { BotHandler } from '../engine/bot.ts';
import { BOT_NAME_PATTERN, type Channel } from '../envelope.ts';
import {
  type RuleDefaults,
  SessionRulebook,
  type SessionRules,
  SessionSettingsSchema,
} from '../lifecycle/rules.ts';
import { LlmSettingsSchema } from '../llm/settings.ts';
import { RUNNING_BUILD } from '../package-root.ts';
import { WebhooksSettingsSchema } from '../webhooks/settings.ts';
import { loadSessionTemplates, type SessionTemplate } from './session-templates.ts';

export const BOTS_DIR = 'bots';
/** The seeds' defaults, for registries made without a hub configuration (tests, `switchboard check`). */
const DEFAULT_RULES: RuleDefaults = { anonymousSessionDays: 7, rateLimitPerMinute: 60 };
export const SETTINGS_FILE = 'bot.json';
const HANDLER_FILES = ['handler.ts', 'handler.js'];

/**
 * A bot's handler module. The build runs as plain JavaScript, with no TypeScript loader: a
 * `handler.ts` is then imported through tsx's `tsImport`, for that file and what it imports only
 * (tsx is loaded only by a hub that has such a bot).
 */
async function importHandler(file: string): Promise<unknown> {
  const url = pathToFileURL(file).href;
  if (!file.endsWith('.ts') || !RUNNING_BUILD) return import(url);
  const { tsImport } = await import('tsx/esm/api');
  return tsImport(url, import.meta.url);
}

/** `config/bots/<name>/bot.json`. Every key is optional. */
export const BotSettingsSchema = z
  .object({
    displayName: z.string().min(1).max(200).optional(),
    /** Said when a session starts, unless the bot's own code greets. */
    greeting: z.string().max(4000).default('Hello! How can I help?'),
    /** Said to a message when nothing else answers. */
    defaultReply: z.string().max(4000).default("I'm here, but I don't have an answer for that yet."),
    /** Said when the bot's code fails during a turn; the session goes on. */
    apology: z.string().max(4000).default('Sorry, something went wrong on my side. Please try again.'),
    /** Limits of dialog scripts (`*.bas`). */
    dialog: z
      .object({
        /** Session variables a session may hold. */
        maxVariables: z.number().int().min(1).default(100),
        /** JSON bytes of a session's variables (and, separately, of a waiting script's locals). */
        maxVariableBytes: z
          .number()
          .int()
          .min(1024)
          .default(1024 * 1024),
        /** Instructions one turn may run: a loop that never waits is stopped with a logged error. */
        maxStepsPerTurn: z.number().int().min(100).default(100_000),
        /** Invalid answers to one HEAR before the script goes on with an empty answer. */
        maxHearTries: z.number().int().min(1).max(20).default(3),
        /** Nested FUNCTION, SUB and RUN calls. */
        maxCallDepth: z.number().int().min(2).max(1000).default(64),
        /** `SET CONTEXT` entries a session may hold (their JSON bytes count against maxVariableBytes). */
        maxContextEntries: z.number().int().min(1).default(100),
        /** `ADD SUGGESTION`s a session may hold: 50, as many as one operator message may carry. */
        maxSuggestions: z.number().int().min(1).default(50),
        /** `USE TOOL` names a session may hold: 128, as many tools as OpenAI takes in one request. */
        maxTools: z.number().int().min(1).default(128),
      })
      .strict()
      .prefault({}),
    /** Idle timeout, retention and limits of the bot's sessions (see README, "Session lifecycle"). */
    sessions: SessionSettingsSchema.prefault({}),
    /** The bot's LLM (see README, "LLM and knowledge bases"); absent, the bot has none. */
    llm: LlmSettingsSchema.optional(),
    /** The bot's own sign-in key (see README, "Sign-in and identities"); absent, the global one. */
    auth: BotAuthSettingsSchema.optional(),
    /** Human handoff (see README, "Human handoff"). */
    handoff: z
      .object({
        /** Said to the person when an agent takes the conversation; `{name}` is the agent's name. */
        joinedText: z.string().max(4000).default('{name} joined the conversation'),
        /** A conversation nobody takes in this long goes back to the bot. */
        waitTimeoutMinutes: z.number().min(0.01).max(10_080).default(10),
      })
      .strict()
      .prefault({}),
    /** Messages the bot sends first (see README, "Outbound messages"): opt-out words and their answers. */
    outbound: z
      .object({
        /** A message that is one of these (any case) opts the person out on that channel; no bot turn. */
        stopWords: z.array(z.string().min(1).max(50)).max(20).default(['STOP', 'UNSUBSCRIBE']),
        /** ...and one of these opts them back in. */
        startWords: z.array(z.string().min(1).max(50)).max(20).default(['START']),
        stopText: z
          .string()
          .max(1000)
          .default("You won't get messages from us here any more. Send START to get them again."),
        startText: z.string().max(1000).default('You will get our messages here again.'),
      })
      .strict()
      .prefault({}),
    /** `DEBUG SHOW …` also tells the person (always written to the session's debug log). */
    debug: z.boolean().default(false),
    /** Signed event webhooks (see README, "Event webhooks"). */
    webhooks: WebhooksSettingsSchema,
  })
  .strict();
export type BotSettings = z.infer<typeof BotSettingsSchema>;

export interface Bot {
  name: string;
  dir: string;
  settings: BotSettings;
  handler: BotHandler;
  /** `session-templates/<name>.json`, validated at load (APPLY SESSION TEMPLATE). */
  templates?: ReadonlyMap<string, SessionTemplate>;
}

/** Bot names that are the hub's own routes (`/<bot>` serves a bot's widget). */
export const RESERVED_BOT_NAMES: ReadonlySet<string> = new Set([
  'api',
  'console',
  'docs',
  'webhooks',
  'ws',
  'healthz',
  'readyz',
  'metrics',
  'widget',
  'static',
  'assets',
]);

export class BotConfigError extends Error {
  override name = 'BotConfigError';
}

export class UnknownBotError extends Error {
  override name = 'UnknownBotError';
  constructor(readonly bot: string) {
    super(`no bot named "${bot}"`);
  }
}

/**
 * A bot with no code of its own answers with its LLM when it has one, else its default reply
 * (and, like every bot without onStart, says its greeting).
 */
export function settingsOnlyHandler(settings: BotSettings): BotHandler {
  return {
    async onMessage(ctx) {
      if (settings.llm && ctx.llm.configured) await ctx.llm.reply();
      else ctx.talk(settings.defaultReply);
    },
  };
}

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(
    () => true,
    () => false,
  );
}

async function readSettings(dir: string): Promise<BotSettings> {
  const file = path.join(dir, SETTINGS_FILE);
  if (!(await exists(file))) return BotSettingsSchema.parse({});
  let raw: unknown;
  try {
    raw = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new BotConfigError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  const parsed = BotSettingsSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new BotConfigError(`${file}: ${problems}`);
  }
  return parsed.data;
}

function isHandler(value: unknown): value is BotHandler {
  return typeof value === 'object' && value !== null && typeof (value as BotHandler).onMessage === 'function';
}

async function readHandler(
  dir: string,
  settings: BotSettings,
  services: Partial<DialogServices> | undefined,
  templates: ReadonlyMap<string, SessionTemplate>,
): Promise<BotHandler> {
  const { library, errors } = await ScriptLibrary.open(dir, { templates: new Set(templates.keys()) });
  const hasScripts = (await library.names()).length > 0;
  if (errors.length > 0) throw new BotConfigError(errors.map((e) => path.join(dir, e.message)).join('\n'));
  for (const name of HANDLER_FILES) {
    const file = path.join(dir, name);
    if (!(await exists(file))) continue;
    if (hasScripts) throw new BotConfigError(`${dir}: holds both ${name} and .bas scripts; keep one`);
    const mod = (await importHandler(file)) as { default?: unknown };
    // A handler.ts outside an ESM package is compiled as CommonJS: its default export is one level down.
    const handler = isHandler(mod.default) ? mod.default : (mod.default as { default?: unknown })?.default;
    if (!isHandler(handler))
      throw new BotConfigError(`${file}: the default export must be a bot handler with onMessage`);
    return handler;
  }
  if (hasScripts) return createDialogHandler({ library, settings, services });
  return settingsOnlyHandler(settings);
}

export class BotRegistry {
  private readonly bots: Map<string, Bot>;
  private readonly rulebook: SessionRulebook;

  constructor(bots: Bot[], defaults: RuleDefaults = DEFAULT_RULES) {
    this.bots = new Map(bots.map((b) => [b.name, b]));
    this.rulebook = new SessionRulebook((name) => this.bots.get(name)?.settings.sessions, defaults);
  }

  has(name: string): boolean {
    return this.bots.has(name);
  }

  /** The bot, or UnknownBotError. */
  get(name: string): Bot {
    const bot = this.bots.get(name);
    if (!bot) throw new UnknownBotError(name);
    return bot;
  }

  /** The bot's session rules on a channel (absent: no channel's overrides), the hub's defaults filled in. */
  rules(bot: string, channel?: Channel): SessionRules {
    return this.rulebook.for(bot, channel);
  }

  /** The rules of a bot that configures nothing: what sessions of a removed bot live by. */
  defaultRules(channel?: Channel): SessionRules {
    return this.rulebook.defaultsFor(channel);
  }

  names(): string[] {
    return [...this.bots.keys()].sort();
  }
}

/**
 * Loads every bot under `<configDir>/bots/`. A directory whose name is not a valid bot name is
 * an error, and so is a script that does not compile. `dialogServices` gives script bots their
 * LLM and fallback.
 */
export async function loadBots(
  configDir: string,
  options: {
    dialogServices?: (bot: string, settings: BotSettings) => Partial<DialogServices>;
    ruleDefaults?: RuleDefaults;
  } = {},
): Promise<BotRegistry> {
  const root = path.join(configDir, BOTS_DIR);
  const entries = await fs.readdir(root, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  const bots: Bot[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    if (!BOT_NAME_PATTERN.test(entry.name)) {
      throw new BotConfigError(
        `${path.join(root, entry.name)}: a bot name is lower-case letters, digits, - and _`,
      );
    }
    if (RESERVED_BOT_NAMES.has(entry.name)) {
      throw new BotConfigError(
        `${path.join(root, entry.name)}: "${entry.name}" is a route of the hub (${[...RESERVED_BOT_NAMES].join(', ')} are reserved); rename the bot folder`,
      );
    }
    const dir = path.join(root, entry.name);
    const settings = await readSettings(dir);
    const services = options.dialogServices?.(entry.name, settings);
    const { templates, errors } = await loadSessionTemplates(dir);
    if (errors.length > 0) throw new BotConfigError(errors.map((e) => path.join(dir, e)).join('\n'));
    bots.push({
      name: entry.name,
      dir,
      settings,
      handler: await readHandler(dir, settings, services, templates),
      templates,
    });
  }
  if (!bots.some((b) => b.name === 'default')) {
    // The widget at `/` talks to `default`: there is always one.
    const settings = BotSettingsSchema.parse({});
    bots.push({
      name: 'default',
      dir: path.join(root, 'default'),
      settings,
      handler: settingsOnlyHandler(settings),
      templates: new Map(),
    });
  }
  return new BotRegistry(bots, options.ruleDefaults);
}
