import addressparser from 'nodemailer/lib/addressparser';
import { z } from 'zod';
import { ConfigError } from '../../src/config/env.ts';
import { emptyAsUndefined, parseEnv } from '../../src/config/env-parsing.ts';
import { BotNameSchema } from '../../src/envelope.ts';
import {
  DEFAULT_LOOP_MAX_REPEATS,
  DEFAULT_LOOP_MAX_REPLIES,
  DEFAULT_LOOP_WINDOW_MINUTES,
  type LoopLimits,
} from './loop-guard.ts';

export const DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024;
/**
 * A mail larger than this (its size on the server, attachments base64-encoded) is not fetched
 * whole: IMAP hands a mail over in one piece, into memory, and then it is parsed there. Three
 * attachments at the default attachment limit, encoded, fit.
 */
export const DEFAULT_MAX_MAIL_BYTES = 50 * 1024 * 1024;

/**
 * How a connection is secured: `implicit` TLS from the first byte (IMAP 993, SMTP 465),
 * `starttls` (plain connect, then a required upgrade: SMTP 587, IMAP 143), or `none` (loopback
 * and tests only: credentials travel in clear text).
 */
export const TlsModeSchema = z.enum(['implicit', 'starttls', 'none']);
export type TlsMode = z.infer<typeof TlsModeSchema>;

export interface MailboxSpec {
  /** The IMAP folder, e.g. `INBOX`. */
  folder: string;
  /** The bot that answers mail arriving in it. */
  bot: string;
}

export interface EmailAddress {
  address: string;
  name?: string;
}

export interface EmailConfig {
  imap: {
    host: string;
    port: number;
    tls: TlsMode;
    user: string;
    password?: string;
    accessToken?: string;
    /** A file holding the access token, read again at every connection (a sidecar refreshes it). */
    accessTokenFile?: string;
  };
  mailboxes: MailboxSpec[];
  /** Processed mail is moved here; unset, it is flagged \Seen where it is. */
  processedFolder?: string;
  smtp: {
    host: string;
    port: number;
    tls: TlsMode;
    user?: string;
    password?: string;
    accessToken?: string;
    /** A file holding the access token, read again for every mail (a sidecar refreshes it). */
    accessTokenFile?: string;
  };
  from: EmailAddress;
  /** The right-hand side of the Message-IDs we generate; mail carrying it is our own. */
  messageIdDomain: string;
  maxAttachmentBytes: number;
  /** A mail larger than this on the server is read without its attachments (header and text only). */
  maxMailBytes: number;
  /**
   * The authserv-id of the mail server that receives our mail and writes Authentication-Results
   * (`mx.example.com`). Unset, no mail is verified: every sender is treated as unknown.
   */
  trustedAuthservId?: string;
  /** A mail whose handling failed this many times is set aside and the mailbox moves on. */
  maxFailures: number;
  /** Mail set aside is moved here; unset, it is flagged where it is. */
  unusableFolder?: string;
  /** Which mail already in a folder is answered when its stored state is missing or stale. */
  firstScan: FirstScanPolicy;
  /** Mail loop protection: answers per sender address, and per repeated text, in a window. */
  loop: LoopLimits;
}

export const DEFAULT_MAX_FAILURES = 3;
export const DEFAULT_FIRST_SCAN_HOURS = 24;

/**
 * What a folder's first scan answers: with no stored state (the first start) or after the server
 * renumbered the folder (a new UIDVALIDITY), the mail already there is a backlog of any age.
 * `recent`: the unprocessed mail that arrived within the last `hours` (by INTERNALDATE);
 * `unread`: all unprocessed mail (unread, or every mail when processed mail is moved away);
 * `none`: nothing, only mail arriving from then on. Mail not answered is left untouched.
 */
export type FirstScanPolicy = { mode: 'recent'; hours: number } | { mode: 'unread' } | { mode: 'none' };
export const FirstScanModeSchema = z.enum(['recent', 'unread', 'none']);

const optional = z.preprocess(emptyAsUndefined, z.string().optional());
const required = (name: string) =>
  z.preprocess(emptyAsUndefined, z.string({ error: `${name} is required` }).min(1));
const port = (def: number) =>
  z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).max(65535).default(def));
const tls = (def: TlsMode) => z.preprocess(emptyAsUndefined, TlsModeSchema.default(def));

/** `INBOX=default,Support=support`: folder, and the bot serving it (`default` when omitted). */
const MailboxesSchema = z.preprocess(
  emptyAsUndefined,
  z
    .string()
    .default('INBOX=default')
    .transform((value, ctx) => {
      const specs: MailboxSpec[] = [];
      for (const entry of value
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean)) {
        const at = entry.lastIndexOf('=');
        const folder = (at >= 0 ? entry.slice(0, at) : entry).trim();
        const bot = (at >= 0 ? entry.slice(at + 1) : 'default').trim();
        if (!folder || !BotNameSchema.safeParse(bot).success) {
          ctx.addIssue({ code: 'custom', message: `"${entry}" is not <folder>=<bot>` });
          return z.NEVER;
        }
        if (specs.some((s) => s.folder === folder)) {
          ctx.addIssue({ code: 'custom', message: `folder "${folder}" is listed twice` });
          return z.NEVER;
        }
        specs.push({ folder, bot });
      }
      if (specs.length === 0) {
        ctx.addIssue({ code: 'custom', message: 'no mailbox listed' });
        return z.NEVER;
      }
      return specs;
    }),
);

const AddressSchema = z.string().transform((value, ctx) => {
  const [first, ...rest] = addressparser(value, { flatten: true });
  if (!first?.address?.includes('@') || rest.length > 0) {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}" is not one address ("Name <a@b.example>" or a@b.example)`,
    });
    return z.NEVER;
  }
  return { address: first.address.toLowerCase(), ...(first.name ? { name: first.name } : {}) };
});

export const EmailEnvSchema = z
  .object({
    EMAIL_IMAP_HOST: required('EMAIL_IMAP_HOST'),
    EMAIL_IMAP_PORT: port(993),
    EMAIL_IMAP_TLS: tls('implicit'),
    EMAIL_IMAP_USER: required('EMAIL_IMAP_USER'),
    EMAIL_IMAP_PASSWORD: optional,
    EMAIL_IMAP_ACCESS_TOKEN: optional,
    EMAIL_IMAP_ACCESS_TOKEN_FILE: optional,
    EMAIL_MAILBOXES: MailboxesSchema,
    EMAIL_PROCESSED_FOLDER: optional,
    EMAIL_SMTP_HOST: required('EMAIL_SMTP_HOST'),
    EMAIL_SMTP_PORT: port(587),
    EMAIL_SMTP_TLS: tls('starttls'),
    EMAIL_SMTP_USER: optional,
    EMAIL_SMTP_PASSWORD: optional,
    EMAIL_SMTP_ACCESS_TOKEN: optional,
    EMAIL_SMTP_ACCESS_TOKEN_FILE: optional,
    EMAIL_FROM: z.preprocess(emptyAsUndefined, AddressSchema),
    EMAIL_MESSAGE_ID_DOMAIN: z.preprocess(
      emptyAsUndefined,
      z
        .string()
        .regex(/^[a-z0-9.-]+$/i, 'a domain name')
        .optional(),
    ),
    EMAIL_MAX_ATTACHMENT_BYTES: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(0).default(DEFAULT_MAX_ATTACHMENT_BYTES),
    ),
    EMAIL_MAX_MAIL_BYTES: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(1024).default(DEFAULT_MAX_MAIL_BYTES),
    ),
    EMAIL_TRUSTED_AUTHSERV_ID: optional,
    EMAIL_MAX_FAILURES: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(1).max(100).default(DEFAULT_MAX_FAILURES),
    ),
    EMAIL_UNUSABLE_FOLDER: optional,
    EMAIL_FIRST_SCAN: z.preprocess(emptyAsUndefined, FirstScanModeSchema.default('recent')),
    EMAIL_FIRST_SCAN_HOURS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().positive().default(DEFAULT_FIRST_SCAN_HOURS),
    ),
    EMAIL_LOOP_MAX_REPLIES: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(0).default(DEFAULT_LOOP_MAX_REPLIES),
    ),
    EMAIL_LOOP_MAX_REPEATS: z.preprocess(
      emptyAsUndefined,
      z.coerce.number().int().min(0).default(DEFAULT_LOOP_MAX_REPEATS),
    ),
    EMAIL_LOOP_WINDOW_MINUTES: z.preprocess(
      emptyAsUndefined,
      // Up to a week: the window is how long an address (personal data) is kept in the limiter.
      z.coerce
        .number()
        .int()
        .min(1)
        .max(7 * 24 * 60)
        .default(DEFAULT_LOOP_WINDOW_MINUTES),
    ),
  })
  .superRefine((env, ctx) => {
    if (!env.EMAIL_IMAP_PASSWORD && !env.EMAIL_IMAP_ACCESS_TOKEN && !env.EMAIL_IMAP_ACCESS_TOKEN_FILE)
      ctx.addIssue({
        code: 'custom',
        path: ['EMAIL_IMAP_PASSWORD'],
        message: 'set EMAIL_IMAP_PASSWORD, EMAIL_IMAP_ACCESS_TOKEN or EMAIL_IMAP_ACCESS_TOKEN_FILE',
      });
    if (
      env.EMAIL_SMTP_USER &&
      !env.EMAIL_SMTP_PASSWORD &&
      !env.EMAIL_SMTP_ACCESS_TOKEN &&
      !env.EMAIL_SMTP_ACCESS_TOKEN_FILE
    )
      ctx.addIssue({
        code: 'custom',
        path: ['EMAIL_SMTP_PASSWORD'],
        message:
          'EMAIL_SMTP_USER needs EMAIL_SMTP_PASSWORD, EMAIL_SMTP_ACCESS_TOKEN or EMAIL_SMTP_ACCESS_TOKEN_FILE',
      });
    for (const side of ['IMAP', 'SMTP'] as const)
      if (env[`EMAIL_${side}_ACCESS_TOKEN`] && env[`EMAIL_${side}_ACCESS_TOKEN_FILE`])
        ctx.addIssue({
          code: 'custom',
          path: [`EMAIL_${side}_ACCESS_TOKEN_FILE`],
          message: `set EMAIL_${side}_ACCESS_TOKEN or EMAIL_${side}_ACCESS_TOKEN_FILE, not both`,
        });
    if (env.EMAIL_SMTP_ACCESS_TOKEN_FILE && !env.EMAIL_SMTP_USER)
      ctx.addIssue({
        code: 'custom',
        path: ['EMAIL_SMTP_USER'],
        message: 'EMAIL_SMTP_ACCESS_TOKEN_FILE needs EMAIL_SMTP_USER (the account the token is for)',
      });
    if (
      env.EMAIL_PROCESSED_FOLDER &&
      env.EMAIL_MAILBOXES.some((m) => m.folder === env.EMAIL_PROCESSED_FOLDER)
    )
      ctx.addIssue({
        code: 'custom',
        path: ['EMAIL_PROCESSED_FOLDER'],
        message: 'the processed folder cannot be a watched mailbox',
      });
    if (env.EMAIL_UNUSABLE_FOLDER && env.EMAIL_MAILBOXES.some((m) => m.folder === env.EMAIL_UNUSABLE_FOLDER))
      ctx.addIssue({
        code: 'custom',
        path: ['EMAIL_UNUSABLE_FOLDER'],
        message: 'the folder for unusable mail cannot be a watched mailbox',
      });
  });

export class EmailConfigError extends ConfigError {
  override name = 'EmailConfigError';
}

export { emailEnabled } from './enabled.ts';

/** Reads the channel's configuration; throws EmailConfigError naming every bad variable (never a value). */
export function loadEmailConfig(env: NodeJS.ProcessEnv): EmailConfig {
  const e = parseEnv(
    EmailEnvSchema,
    env,
    (problems) => new EmailConfigError(`email channel configuration: ${problems}`),
  );
  return {
    imap: {
      host: e.EMAIL_IMAP_HOST,
      port: e.EMAIL_IMAP_PORT,
      tls: e.EMAIL_IMAP_TLS,
      user: e.EMAIL_IMAP_USER,
      ...(e.EMAIL_IMAP_PASSWORD ? { password: e.EMAIL_IMAP_PASSWORD } : {}),
      ...(e.EMAIL_IMAP_ACCESS_TOKEN ? { accessToken: e.EMAIL_IMAP_ACCESS_TOKEN } : {}),
      ...(e.EMAIL_IMAP_ACCESS_TOKEN_FILE ? { accessTokenFile: e.EMAIL_IMAP_ACCESS_TOKEN_FILE } : {}),
    },
    mailboxes: e.EMAIL_MAILBOXES,
    ...(e.EMAIL_PROCESSED_FOLDER ? { processedFolder: e.EMAIL_PROCESSED_FOLDER } : {}),
    smtp: {
      host: e.EMAIL_SMTP_HOST,
      port: e.EMAIL_SMTP_PORT,
      tls: e.EMAIL_SMTP_TLS,
      ...(e.EMAIL_SMTP_USER ? { user: e.EMAIL_SMTP_USER } : {}),
      ...(e.EMAIL_SMTP_PASSWORD ? { password: e.EMAIL_SMTP_PASSWORD } : {}),
      ...(e.EMAIL_SMTP_ACCESS_TOKEN ? { accessToken: e.EMAIL_SMTP_ACCESS_TOKEN } : {}),
      ...(e.EMAIL_SMTP_ACCESS_TOKEN_FILE ? { accessTokenFile: e.EMAIL_SMTP_ACCESS_TOKEN_FILE } : {}),
    },
    from: e.EMAIL_FROM,
    messageIdDomain: (e.EMAIL_MESSAGE_ID_DOMAIN ?? e.EMAIL_FROM.address.split('@')[1]!).toLowerCase(),
    maxAttachmentBytes: e.EMAIL_MAX_ATTACHMENT_BYTES,
    maxMailBytes: e.EMAIL_MAX_MAIL_BYTES,
    ...(e.EMAIL_TRUSTED_AUTHSERV_ID ? { trustedAuthservId: e.EMAIL_TRUSTED_AUTHSERV_ID.trim() } : {}),
    maxFailures: e.EMAIL_MAX_FAILURES,
    ...(e.EMAIL_UNUSABLE_FOLDER ? { unusableFolder: e.EMAIL_UNUSABLE_FOLDER } : {}),
    firstScan:
      e.EMAIL_FIRST_SCAN === 'recent'
        ? { mode: 'recent', hours: e.EMAIL_FIRST_SCAN_HOURS }
        : { mode: e.EMAIL_FIRST_SCAN },
    loop: {
      maxReplies: e.EMAIL_LOOP_MAX_REPLIES,
      maxRepeats: e.EMAIL_LOOP_MAX_REPEATS,
      windowMs: e.EMAIL_LOOP_WINDOW_MINUTES * 60_000,
    },
  };
}
