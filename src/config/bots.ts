import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { BotAuthSettingsSchema } from '../auth/settings.ts';
import type { DialogSyntaxError } from '../dialog/errors.ts';
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
import { ConfigError } from './env.ts';
import { type ConfigProblem, formatProblems } from './problems.ts';
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

/** A bot configuration `start` refuses: every problem found, one a line. */
export class BotConfigError extends ConfigError {
  override name = 'BotConfigError';
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(formatProblems(problems));
  }
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

/** A bot's bot.json, validated; a missing file is every default. */
async function readSettings(dir: string): Promise<{ settings?: BotSettings; problems: ConfigProblem[] }> {
  const file = path.join(dir, SETTINGS_FILE);
  if (!(await exists(file))) return { settings: BotSettingsSchema.parse({}), problems: [] };
  let raw: unknown;
  try {
    raw = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    return { problems: [{ file, message: `not valid JSON (${(err as Error).message})` }] };
  }
  const parsed = BotSettingsSchema.safeParse(raw);
  if (!parsed.success)
    return {
      problems: parsed.error.issues.map((i) => ({
        file,
        field: i.path.join('.') || '(root)',
        message: i.message,
      })),
    };
  return { settings: parsed.data, problems: [] };
}

function isHandler(value: unknown): value is BotHandler {
  return typeof value === 'object' && value !== null && typeof (value as BotHandler).onMessage === 'function';
}

/** A script's compile error as a problem at its file, line and column. */
const scriptProblem = (dir: string, e: DialogSyntaxError): ConfigProblem => ({
  file: path.join(dir, e.file),
  line: e.line,
  column: e.column,
  message: e.reason,
});

/**
 * esbuild's line in tsx's `TransformError` (a handler.ts that does not compile): `file:line:column:
 * ERROR: text`, the column counted from 0. The error crosses tsx's loader thread as text only.
 */
const COMPILE_ERROR = /^.+?:(\d+):(\d+): ERROR: (.+)$/m;

/** A handler module that failed to import: where it does not compile, or what it threw. */
function importProblem(file: string, err: unknown): ConfigProblem {
  const message = err instanceof Error ? err.message : String(err);
  const compile = COMPILE_ERROR.exec(message);
  if (compile)
    return {
      file,
      line: Number(compile[1]),
      column: Number(compile[2]) + 1,
      message: `cannot be loaded: ${compile[3]}`,
    };
  return { file, message: `cannot be loaded: ${message.replace(/\s*\n\s*/g, ' ')}` };
}

/**
 * The bot's code: its handler module (imported, as the hub runs it), its dialog scripts
 * (compiled), or neither (its settings answer). `scripts`: the scripts' names.
 */
async function readHandler(
  dir: string,
  settings: BotSettings,
  services: Partial<DialogServices> | undefined,
  templates: ReadonlyMap<string, SessionTemplate>,
): Promise<{ handler?: BotHandler; scripts: string[]; problems: ConfigProblem[] }> {
  const { library, errors } = await ScriptLibrary.open(dir, { templates: new Set(templates.keys()) });
  const scripts = await library.names();
  if (errors.length > 0) return { scripts, problems: errors.map((e) => scriptProblem(dir, e)) };
  for (const name of HANDLER_FILES) {
    const file = path.join(dir, name);
    if (!(await exists(file))) continue;
    if (scripts.length > 0)
      return { scripts, problems: [{ file: dir, message: `holds both ${name} and .bas scripts; keep one` }] };
    let mod: { default?: unknown };
    try {
      mod = (await importHandler(file)) as { default?: unknown };
    } catch (err) {
      return { scripts, problems: [importProblem(file, err)] };
    }
    // A handler.ts outside an ESM package is compiled as CommonJS: its default export is one level down.
    const handler = isHandler(mod.default) ? mod.default : (mod.default as { default?: unknown })?.default;
    if (!isHandler(handler))
      return {
        scripts,
        problems: [{ file, message: 'the default export must be a bot handler with onMessage' }],
      };
    return { handler, scripts, problems: [] };
  }
  if (scripts.length > 0)
    return { handler: createDialogHandler({ library, settings, services }), scripts, problems: [] };
  return { handler: settingsOnlyHandler(settings), scripts, problems: [] };
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

/** Why a bot folder's name cannot be a bot's, if it cannot. */
function folderNameProblem(dir: string, name: string): ConfigProblem | undefined {
  if (!BOT_NAME_PATTERN.test(name))
    return { file: dir, message: 'a bot name is lower-case letters, digits, - and _' };
  if (RESERVED_BOT_NAMES.has(name))
    return {
      file: dir,
      message: `"${name}" is a route of the hub (${[...RESERVED_BOT_NAMES].join(', ')} are reserved); rename the bot folder`,
    };
  return undefined;
}

/** What loading one bot folder found: the bot, or the problems that keep the hub from starting. */
export interface BotInspection {
  name: string;
  dir: string;
  /** Undefined when the bot cannot be loaded (`problems` says why). */
  bot?: Bot;
  /** Its dialog scripts (`*.bas`), by name. */
  scripts: string[];
  problems: ConfigProblem[];
}

export interface BotLoadOptions {
  dialogServices?: (bot: string, settings: BotSettings) => Partial<DialogServices>;
  ruleDefaults?: RuleDefaults;
}

/**
 * Loads one bot folder as `start` does, collecting what is wrong rather than stopping at it: its
 * name, bot.json, session templates, scripts (compiled) and handler module (imported). A handler
 * is checked even when bot.json is not valid (with the defaults), so one run names both.
 */
export async function inspectBot(
  root: string,
  name: string,
  options: BotLoadOptions = {},
): Promise<BotInspection> {
  const dir = path.join(root, name);
  const nameProblem = folderNameProblem(dir, name);
  if (nameProblem) return { name, dir, scripts: [], problems: [nameProblem] };
  const read = await readSettings(dir);
  const settings = read.settings ?? BotSettingsSchema.parse({});
  const services = read.settings ? options.dialogServices?.(name, settings) : undefined;
  const { templates, errors } = await loadSessionTemplates(dir);
  const code = await readHandler(dir, settings, services, templates);
  const problems: ConfigProblem[] = [
    ...read.problems,
    ...errors.map((e) => ({ ...e, file: path.join(dir, e.file) })),
    ...code.problems,
  ];
  if (problems.length > 0 || !read.settings || !code.handler)
    return { name, dir, scripts: code.scripts, problems };
  return {
    name,
    dir,
    scripts: code.scripts,
    problems,
    bot: { name, dir, settings: read.settings, handler: code.handler, templates },
  };
}

/** The bot folders under `<configDir>/bots/`, by name (none when the folder is missing). */
export async function botFolders(configDir: string): Promise<string[]> {
  const root = path.join(configDir, BOTS_DIR);
  const entries = await fs.readdir(root, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

/** The bot the hub always has: built in when no folder of that name holds one. */
export const DEFAULT_BOT = 'default';

/**
 * Loads every bot under `<configDir>/bots/`. Any problem of any bot (a folder name that is not a
 * bot name, a bot.json that does not validate, a script that does not compile, a handler that
 * does not load) is a BotConfigError naming them all. `dialogServices` gives script bots their
 * LLM and fallback.
 */
export async function loadBots(configDir: string, options: BotLoadOptions = {}): Promise<BotRegistry> {
  const root = path.join(configDir, BOTS_DIR);
  const bots: Bot[] = [];
  const problems: ConfigProblem[] = [];
  for (const name of await botFolders(configDir)) {
    const inspected = await inspectBot(root, name, options);
    problems.push(...inspected.problems);
    if (inspected.bot) bots.push(inspected.bot);
  }
  if (problems.length > 0) throw new BotConfigError(problems);
  if (!bots.some((b) => b.name === DEFAULT_BOT)) {
    // The widget at `/` talks to `default`: there is always one.
    const settings = BotSettingsSchema.parse({});
    bots.push({
      name: DEFAULT_BOT,
      dir: path.join(root, DEFAULT_BOT),
      settings,
      handler: settingsOnlyHandler(settings),
      templates: new Map(),
    });
  }
  return new BotRegistry(bots, options.ruleDefaults);
}
