import { z } from 'zod';
import { type Channel, ChannelSchema } from '../envelope.ts';
import { DEFAULT_ALLOWED_FILE_TYPES } from '../files/types.ts';
import { DEFAULT_RATING_QUESTION, DEFAULT_RATING_THANKS } from './rating.ts';

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
const MEGABYTE = 1024 * 1024;

/** `sessions.fileUnavailableNotice` unless the bot says otherwise; `{name}`: the file's name. */
export const DEFAULT_FILE_UNAVAILABLE_NOTICE =
  '"{name}" could not be fetched from the chat service; please send it again';
/** The same by email, where there is no chat service: the attachment did not come with the mail. */
export const DEFAULT_EMAIL_FILE_UNAVAILABLE_NOTICE =
  'The attachment "{name}" of your mail could not be received; please send it again';

/** What may differ per channel: a WhatsApp conversation may stay open for a day, a web chat for 30 minutes. */
const ChannelRulesSchema = z
  .object({
    idleTimeoutMinutes: z.number().positive().optional(),
    messagesPerMinute: z.number().int().min(1).optional(),
  })
  .strict();

/**
 * `sessions` in `config/bots/<bot>/bot.json`: the lifecycle, retention and limits of the bot's
 * sessions. Defaults are the seeds'; `channels.<channel>` overrides the idle timeout and the
 * message rate for one channel.
 */
export const SessionSettingsSchema = z
  .object({
    /** Without a message for this long a session is idle; the next message ends it and starts a new one. */
    idleTimeoutMinutes: z.number().positive().default(30),
    /** Anonymous sessions are removed this long after their last activity; absent: ANONYMOUS_SESSION_DAYS. */
    anonymousRetentionDays: z.number().positive().optional(),
    /** Messages older than this are deleted (any session); absent: kept as long as their session. */
    keepMessagesDays: z.number().positive().optional(),
    /** Messages one session may send in any minute; absent: RATE_LIMIT_PER_MINUTE. */
    messagesPerMinute: z.number().int().min(1).optional(),
    /** Said once per minute to a person over the limit on channels that cannot show an error. */
    rateLimitNotice: z
      .string()
      .min(1)
      .max(1000)
      .default(
        "You're sending messages faster than I can read them. Please wait a moment and send that again.",
      ),
    /**
     * Said when a file the person sent could not be received from the chat service: it is gone
     * there (404, an expired media id), the bot may not read it (401/403), or the platform kept
     * failing after the retries. `{name}` is the file's name (or "photo", "voice note", "file").
     * Absent: DEFAULT_FILE_UNAVAILABLE_NOTICE, by email DEFAULT_EMAIL_FILE_UNAVAILABLE_NOTICE.
     */
    fileUnavailableNotice: z.string().min(1).max(1000).optional(),
    /** Latest messages handed to the bot's context (`ctx.history()`). */
    historyMessages: z.number().int().min(0).max(1000).default(50),
    /** Knowledge bases a session may have in use at once (`USE KB`). */
    maxKnowledgeBases: z.number().int().min(1).max(100).default(10),
    /** Largest attachment accepted with a message; larger ones are refused (listed, not kept). */
    maxFileBytes: z
      .number()
      .int()
      .min(1)
      .default(10 * MEGABYTE),
    /**
     * Types of file a person may send, as sniffed from the bytes (never the sender's word):
     * `image/png`, `image/*`, `application/vnd.oasis.opendocument.*`. Absent: pictures, sound,
     * video, PDF, plain text and office documents (`src/files/types.ts`).
     */
    allowedFileTypes: z
      .array(
        z
          .string()
          .regex(/^(\*|[a-z0-9.+-]+\/(\*|[a-z0-9.+-]+\*?))$/i, 'a MIME type such as image/png or image/*'),
      )
      .min(1)
      .max(100)
      .optional(),
    /**
     * When a conversation ends (an explicit end, the idle sweep, the bot's END, an end through the
     * API), the hub asks the person for a 1–5 rating on the conversation's channel; a rating sent
     * back within `ratingWindowMinutes` is the ended session's `rating` event, not a new session.
     */
    askRating: z.boolean().default(false),
    /** How long after the end a rating answers the ask (anything else opens a new session as always). */
    ratingWindowMinutes: z.number().positive().max(10_080).default(10),
    /** What the hub says when it asks; the channel shows 1 to 5 stars with it. */
    ratingQuestion: z.string().min(1).max(1000).default(DEFAULT_RATING_QUESTION),
    /** What the hub says when the rating arrived. */
    ratingThanks: z.string().min(1).max(1000).default(DEFAULT_RATING_THANKS),
    /** Keyed by a channel some adapter declares (`adapters/index.ts`). */
    channels: z.record(ChannelSchema, ChannelRulesSchema).default({}),
  })
  .strict();
export type SessionSettings = z.infer<typeof SessionSettingsSchema>;

/** One bot's rules on one channel, in milliseconds and counts, with the hub's defaults filled in. */
export interface SessionRules {
  idleTimeoutMs: number;
  anonymousRetentionMs: number;
  keepMessagesMs: number | null;
  messagesPerMinute: number;
  rateLimitNotice: string;
  /** With `{name}` in it (see `fileUnavailableText`). */
  fileUnavailableNotice: string;
  historyMessages: number;
  maxKnowledgeBases: number;
  maxFileBytes: number;
  allowedFileTypes: readonly string[];
  /** Null when the bot does not ask for a rating at the end of a conversation. */
  askRating: { windowMs: number; question: string; thanks: string } | null;
}

/** The hub-wide defaults from the environment. */
export interface RuleDefaults {
  anonymousSessionDays: number;
  rateLimitPerMinute: number;
}

/** `channel` absent: the bot's rules before any channel's overrides (retention, which is per bot). */
export function sessionRules(
  settings: SessionSettings,
  channel: Channel | undefined,
  defaults: RuleDefaults,
): SessionRules {
  const override = (channel === undefined ? undefined : settings.channels[channel]) ?? {};
  return {
    idleTimeoutMs: (override.idleTimeoutMinutes ?? settings.idleTimeoutMinutes) * MINUTE_MS,
    anonymousRetentionMs: (settings.anonymousRetentionDays ?? defaults.anonymousSessionDays) * DAY_MS,
    keepMessagesMs: settings.keepMessagesDays === undefined ? null : settings.keepMessagesDays * DAY_MS,
    messagesPerMinute:
      override.messagesPerMinute ?? settings.messagesPerMinute ?? defaults.rateLimitPerMinute,
    rateLimitNotice: settings.rateLimitNotice,
    fileUnavailableNotice:
      settings.fileUnavailableNotice ??
      (channel === 'email' ? DEFAULT_EMAIL_FILE_UNAVAILABLE_NOTICE : DEFAULT_FILE_UNAVAILABLE_NOTICE),
    historyMessages: settings.historyMessages,
    maxKnowledgeBases: settings.maxKnowledgeBases,
    maxFileBytes: settings.maxFileBytes,
    allowedFileTypes: settings.allowedFileTypes ?? DEFAULT_ALLOWED_FILE_TYPES,
    askRating: settings.askRating
      ? {
          windowMs: settings.ratingWindowMinutes * MINUTE_MS,
          question: settings.ratingQuestion,
          thanks: settings.ratingThanks,
        }
      : null,
  };
}

/** The end reason of a session that a late message found idle. */
export const IDLE_END_REASON = 'idle';

/** Whether a session last active at `lastActivityAt` is idle at `at`. */
export function isIdle(
  lastActivityAt: string,
  at: Date,
  rules: Pick<SessionRules, 'idleTimeoutMs'>,
): boolean {
  return at.getTime() - Date.parse(lastActivityAt) > rules.idleTimeoutMs;
}

const DEFAULT_SETTINGS = SessionSettingsSchema.parse({});

/** Every bot's rules, looked up by bot and channel; an unknown bot gets the defaults. */
export class SessionRulebook {
  /** By bot, then channel ('' for none): no key string is built per call (several per turn). */
  private readonly resolved = new Map<string, Map<string, SessionRules>>();

  constructor(
    private readonly settingsOf: (bot: string) => SessionSettings | undefined,
    private readonly defaults: RuleDefaults,
  ) {}

  for(bot: string, channel?: Channel): SessionRules {
    let byChannel = this.resolved.get(bot);
    if (!byChannel) {
      byChannel = new Map();
      this.resolved.set(bot, byChannel);
    }
    let rules = byChannel.get(channel ?? '');
    if (!rules) {
      rules = sessionRules(this.settingsOf(bot) ?? DEFAULT_SETTINGS, channel, this.defaults);
      byChannel.set(channel ?? '', rules);
    }
    return rules;
  }

  /** The rules of a bot that configures nothing (or is no longer configured). */
  defaultsFor(channel?: Channel): SessionRules {
    return sessionRules(DEFAULT_SETTINGS, channel, this.defaults);
  }
}
