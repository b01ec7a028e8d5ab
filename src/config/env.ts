import path from 'node:path';
import { z } from 'zod';
import { ATTACHMENT_RETRY_DELAYS_MS } from '../files/fetch-attempts.ts';
import { emptyAsUndefined, int, optionalString, parseEnv, serviceUrl, setting } from './env-parsing.ts';

export const ROLES = ['all', 'gateway', 'worker'] as const;
/** The highest TCP port. */
const MAX_PORT = 65_535;
export type Role = (typeof ROLES)[number];

/**
 * Every environment variable the hub reads, with its default. README's configuration table is
 * written from this schema; keep them together.
 */
export const EnvSchema = z.object({
  PORT: int(8080, 0, MAX_PORT),
  HOST: z.preprocess(emptyAsUndefined, z.string().default('0.0.0.0')),
  /** PostgreSQL connection string. Unset: embedded PGlite under DATA_DIR. */
  DATABASE_URL: serviceUrl(
    ['postgres', 'postgresql'],
    'postgres://user:password@db.example.com:5432/switchboard',
    'host',
  ),
  /** Redis connection string. Unset: in-process queue, cache and pub/sub. */
  REDIS_URL: serviceUrl(['redis', 'rediss'], 'redis://redis.example.com:6379/0'),
  /** Prefix of every Redis key, so that several hubs (or test runs) can share one Redis. */
  REDIS_PREFIX: z.preprocess(emptyAsUndefined, z.string().default('sb:')),
  DATA_DIR: z.preprocess(emptyAsUndefined, z.string().default('./data')),
  CONFIG_DIR: z.preprocess(emptyAsUndefined, z.string().default('./config')),
  LOG_LEVEL: z.preprocess(
    emptyAsUndefined,
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ),
  /** `pretty` or `json` log lines; unset: guessed from stdout (src/logger.ts reads it). */
  LOG_FORMAT: z.preprocess(emptyAsUndefined, z.enum(['json', 'pretty']).optional()),
  /** Longest accepted message text, in UTF-8 bytes. */
  MAX_TEXT_BYTES: int(16 * 1024, 1),
  /** Largest accepted HTTP request body, in bytes. */
  MAX_BODY_BYTES: int(1024 * 1024, 1024),
  /** Largest body of `POST /api/admin/broadcasts` (a `to` list of 100,000 numbers is about 1.6 MB). */
  BROADCAST_MAX_BODY_BYTES: int(16 * 1024 * 1024, 1024),
  /** How long `POST /api/chat` waits for the replies before answering 202. */
  CHAT_WAIT_MS: int(15_000, 0),
  /** Sessions the in-process queue runs at once (each session still one message at a time). */
  QUEUE_CONCURRENCY: int(256, 1),
  /** Cached session state lives this long after its last use. */
  CACHE_TTL_SECONDS: int(3600, 1),
  /** In-process cache: most sessions kept. */
  CACHE_MAX_SESSIONS: int(10_000, 1),
  /** Anonymous sessions expire this many days after their last activity. */
  ANONYMOUS_SESSION_DAYS: int(7, 1),
  /**
   * Agents' event stream (`agent_events`): events are kept this long for a console that reconnects
   * with `Last-Event-ID`; the expiry job removes older ones.
   */
  AGENT_EVENTS_KEEP_HOURS: int(24, 1),
  /**
   * A person known on a channel or signed in (user, identities, USER MEMORY) is erased once this
   * many days passed since their last session activity, with no session open. Unset: kept.
   */
  IDENTIFIED_USER_RETENTION_DAYS: setting(z.coerce.number().int().min(1).optional()),
  /**
   * Dead letters (envelopes the queues set aside, event webhooks dead-lettered, mail the email
   * channel set aside) are kept this many days for an operator to list and replay, then pruned:
   * they hold what people wrote.
   */
  DEAD_LETTER_KEEP_DAYS: int(14, 1),
  /**
   * A reply whose sends fail for a reason that passes (no answer, a 5xx, 408, 429, an SMTP 4xx or
   * a refused SMTP login) is retried until it has waited this long, then marked failed (and kept
   * for `switchboard outbox replay`). A refusal (a bad recipient, a closed messaging window) fails
   * at once.
   */
  DELIVERY_GIVE_UP_AFTER_SECONDS: int(4 * 3600, 1),
  /** Attempts for a failure no channel classified (neither passing nor a refusal) before the reply is marked failed. */
  DELIVERY_ATTEMPTS: int(8, 1),
  /** First retry delay of a failed send; doubles each attempt (with jitter) up to DELIVERY_RETRY_CAP_MS. */
  DELIVERY_RETRY_BASE_MS: int(500, 1),
  DELIVERY_RETRY_CAP_MS: int(300_000, 1),
  /** Bearer token for the operator routes (`/api/admin/*`); unset, they are closed. At least 32 characters. */
  ADMIN_TOKEN: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .refine((t) => adminTokenProblem(t) === undefined, {
        error: (i) => adminTokenProblem(i.input as string),
      })
      .optional(),
  ),
  /** PostgreSQL pool size per process. */
  DATABASE_POOL_SIZE: int(10, 1),
  /**
   * Whether `switchboard start` applies pending migrations. `false`: a separate step does
   * (`switchboard migrate`, before the processes are rolled), and a start that finds one pending
   * refuses, naming it.
   */
  MIGRATE_ON_START: z.preprocess(emptyAsUndefined, z.enum(['true', 'false']).default('true')),
  /** Bearer token `/metrics` requires; unset, it is open to anyone who reaches the port. At least 32 characters. */
  METRICS_TOKEN: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .refine((t) => adminTokenProblem(t) === undefined, {
        error: (i) => adminTokenProblem(i.input as string),
      })
      .optional(),
  ),
  /**
   * How long a stop (SIGTERM, SIGINT) may take: requests in flight are answered, turns in flight
   * finish, then every connection closes. Past it the process logs `hub.stop_timeout` and exits 1
   * (what was in flight is delivered again: the queue is at-least-once). Under Kubernetes' 30 s.
   */
  SHUTDOWN_TIMEOUT_SECONDS: int(25, 1),
  /**
   * How long the start, and an operator command, waits for PostgreSQL or Redis to answer (and for
   * each step of the start that talks to them) before it fails, naming the server and its setting.
   */
  DEPENDENCY_TIMEOUT_SECONDS: int(30, 1),
  /** Messages one session may send in any 60 seconds; more are refused (Redis-backed across gateways). */
  RATE_LIMIT_PER_MINUTE: int(60, 1),
  /**
   * Sessions one client address may open in any 60 seconds (`POST /api/session`, a widget
   * `hello` without token), and sign-ins it may try (`POST /api/session/authenticate`).
   */
  SESSION_CREATE_PER_MINUTE: int(20, 1),
  /**
   * WebSocket handshakes (`GET /ws`) one client address may make in any 60 seconds; more get 429.
   * Generous: a whole office behind one NAT reconnects at once after a network drop.
   */
  WEB_CONNECTIONS_PER_MINUTE: int(120, 1),
  /** Files one session may upload (`POST /api/session/files`) in any 60 seconds; more get 429. */
  UPLOADS_PER_MINUTE: int(30, 1),
  /**
   * Bytes of a session's uploads that no message carries yet (uploaded, not sent): an upload
   * past them gets 413. Uploads are kept as long as their session, sent or not.
   */
  UNSENT_UPLOADS_MAX_BYTES: int(100 * 1024 * 1024, 1),
  /**
   * How many proxies stand in front of the hub. 0 (default): `X-Forwarded-For` and
   * `X-Forwarded-Proto` are ignored, the socket's address is the client's.
   */
  TRUST_PROXY: int(0, 0),
  /** How often workers run the expiry job (anonymous sessions, message retention). */
  EXPIRY_INTERVAL_SECONDS: int(3600, 1),
  /** Without Redis, how often a worker looks for due scheduled jobs (the table scheduler). */
  SCHEDULER_POLL_MS: int(1000, 10),
  /** First retry delay of an envelope whose handling failed; doubles each attempt, up to 30 s. */
  QUEUE_RETRY_BASE_MS: int(200, 1),
  /**
   * With Redis, how often each worker sweeps the shared queue for lanes left without a job (a
   * missing wake job, claims of a job that is over: src/queue/lane-runner.ts).
   */
  QUEUE_SWEEP_MS: int(15_000, 10),
  /** How often workers end sessions that have been idle longer than their bot allows. */
  IDLE_SWEEP_SECONDS: int(60, 1),
  /**
   * How often a worker looks for tables whose planner statistics are stale and analyses them
   * where autovacuum does not (src/store/analyze.ts); 0 turns it off.
   */
  DB_ANALYZE_SECONDS: int(10, 0),
  /** A table is analysed by the hub at most once in this many seconds (or after anyone else analysed it). */
  DB_ANALYZE_MIN_INTERVAL_SECONDS: int(60, 1),
  /**
   * Broadcasts: the highest pace per channel, messages per second, as `channel=rate` pairs
   * (`whatsapp=200,email=5`). A channel not named keeps the cap its adapter declares.
   */
  BROADCAST_RATE_LIMITS: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .default('')
      .transform((value, ctx) => {
        const limits: Record<string, number> = {};
        for (const pair of value
          .split(',')
          .map((p) => p.trim())
          .filter(Boolean)) {
          const m = /^([a-z][a-z0-9_-]{0,31})\s*=\s*(\d+(?:\.\d+)?)$/.exec(pair);
          if (!m || Number(m[2]) <= 0) {
            ctx.addIssue({ code: 'custom', message: `"${pair}" is not channel=messages-per-second` });
            return z.NEVER;
          }
          limits[m[1]!] = Number(m[2]);
        }
        return limits;
      }),
  ),
  /** Event webhooks: one request's time limit. */
  WEBHOOK_TIMEOUT_SECONDS: int(10, 1),
  /** Event webhooks: how often a worker looks for new events to deliver. */
  WEBHOOK_POLL_MS: int(500, 10),
  /** Event webhooks: first retry delay; doubles each attempt (with jitter), up to an hour. */
  WEBHOOK_RETRY_BASE_MS: int(5000, 10),
  /** Event webhooks: an event undelivered this long after it happened is dead-lettered. */
  WEBHOOK_MAX_AGE_SECONDS: int(86_400, 1),
  /**
   * Event webhooks: a retry this long overdue (its scheduler job lost), with no worker on its
   * lane, is taken up by the delivery loop.
   */
  WEBHOOK_OVERDUE_RETRY_SECONDS: int(300, 1),
  /** Event webhooks: a running broadcast's `broadcast.progress` at most this often. */
  WEBHOOK_BROADCAST_PROGRESS_MS: int(5000, 100),
  /**
   * Sign-in (`POST /api/session/authenticate`): the host site's JWTs are checked with one of a
   * shared HS256 secret, a PEM public key (RS256 or ES256) or a local JWKS file. None set: off.
   */
  AUTH_JWT_SECRET: optionalString,
  AUTH_JWT_PUBLIC_KEY_FILE: optionalString,
  AUTH_JWKS_FILE: optionalString,
  /** The `iss` and `aud` every sign-in JWT must carry; required once a key is set. */
  AUTH_JWT_ISSUER: optionalString,
  AUTH_JWT_AUDIENCE: optionalString,
  /** Clock skew allowed on `exp` and `nbf`, in seconds. */
  AUTH_JWT_CLOCK_TOLERANCE_SECONDS: int(5, 0),
  /**
   * The hub's address as the internet sees it (`https://chat.example.com`): webhook registration
   * and signed file links. Unset: file links are relative to the hub.
   */
  PUBLIC_URL: setting(
    z
      .string()
      .refine((v) => /^https?:\/\/[^/?#\s]+/i.test(v) && URL.canParse(v), {
        error: 'must be an absolute http:// or https:// URL, such as https://chat.example.com',
      })
      .optional(),
  ),
  /** `SHOW IMAGE "https://…"`: how long the hub waits for a bot's image or file from the web. */
  MEDIA_FETCH_TIMEOUT_SECONDS: int(15, 1),
  /**
   * Host names a bot's media may be fetched from even at a private or loopback address (and over
   * plain http), comma-separated. Unset: none; only public https addresses.
   */
  MEDIA_FETCH_ALLOW_HOSTS: optionalString,
  /**
   * An inbound attachment the platform failed to hand over for a reason that may pass (a 5xx, a
   * timeout): how many times the message is tried again (the lane's retry, with its backoff)
   * before it goes on without the file and the person is told. At most 8: the queue sets a
   * message aside after 10 failed attempts.
   */
  ATTACHMENT_RETRY_ATTEMPTS: setting(z.coerce.number().int().min(0).max(8).default(3)),
  /**
   * The waits before those retries, in milliseconds, comma-separated: the first retry after the
   * first, and so on; the last repeats. The session's later messages wait behind the message (its
   * order holds), at most their sum plus the downloads' own time.
   */
  ATTACHMENT_RETRY_DELAYS_MS: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^\s*\d+\s*(,\s*\d+\s*)*$/, 'milliseconds, comma-separated, such as 1000,5000,30000')
      .transform((v) => v.split(',').map((n) => Number(n.trim())))
      .refine((ms) => ms.every((n) => n <= 600_000), 'each delay at most 600000 (10 minutes)')
      .optional(),
  ),
});
export type Env = z.infer<typeof EnvSchema>;

export interface HubConfig {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  redisPrefix: string;
  dataDir: string;
  configDir: string;
  logLevel: Env['LOG_LEVEL'];
  maxTextBytes: number;
  maxBodyBytes: number;
  broadcastMaxBodyBytes: number;
  chatWaitMs: number;
  queueConcurrency: number;
  cacheTtlSeconds: number;
  cacheMaxSessions: number;
  anonymousSessionDays: number;
  /** IDENTIFIED_USER_RETENTION_DAYS, in ms; undefined (unset): identified users are kept. */
  identifiedUserRetentionMs: number | undefined;
  agentEventsKeepMs: number;
  /** DEAD_LETTER_KEEP_DAYS, in ms. */
  deadLetterKeepMs: number;
  databasePoolSize: number;
  /** MIGRATE_ON_START: false, pending migrations stop the start instead of being applied. */
  migrateOnStart: boolean;
  /** METRICS_TOKEN: when set, `/metrics` answers only requests bearing it. */
  metricsToken: string | undefined;
  /** SHUTDOWN_TIMEOUT_SECONDS: the whole stop's limit (`src/hub/shutdown.ts`). */
  shutdownTimeoutMs: number;
  /** DEPENDENCY_TIMEOUT_SECONDS: a wait for PostgreSQL or Redis, or a start step, at most this. */
  dependencyTimeoutMs: number;
  adminToken: string | undefined;
  deliveryAttempts: number;
  deliveryGiveUpAfterMs: number;
  deliveryRetryBaseMs: number;
  deliveryRetryCapMs: number;
  rateLimitPerMinute: number;
  sessionCreatePerMinute: number;
  /** Widget WebSocket handshakes per client address and minute (WEB_CONNECTIONS_PER_MINUTE). */
  webConnectionsPerMinute: number;
  uploadsPerMinute: number;
  unsentUploadsMaxBytes: number;
  /** Proxies in front of the hub whose X-Forwarded-* headers are believed (0: none). */
  trustProxy: number;
  expiryIntervalMs: number;
  schedulerPollMs: number;
  queueRetryBaseMs: number;
  queueSweepMs: number;
  idleSweepIntervalMs: number;
  /** 0: the hub never analyses tables. */
  dbAnalyzeIntervalMs: number;
  dbAnalyzeMinIntervalMs: number;
  /** Event webhooks (see `src/webhooks/`). */
  webhookTimeoutMs: number;
  webhookPollMs: number;
  webhookRetryBaseMs: number;
  webhookMaxAgeMs: number;
  webhookOverdueRetryMs: number;
  webhookBroadcastProgressMs: number;
  /** Sign-in JWT settings; file paths are absolute. See `src/auth/sign-in-config.ts`. */
  authJwtSecret: string | undefined;
  authJwtPublicKeyFile: string | undefined;
  authJwksFile: string | undefined;
  authJwtIssuer: string | undefined;
  authJwtAudience: string | undefined;
  authJwtClockToleranceSeconds: number;
  /** PUBLIC_URL without its trailing slash. */
  publicUrl: string | undefined;
  mediaFetchTimeoutMs: number;
  mediaFetchAllowHosts: string[];
  /** Retries of a message whose attachment the platform failed to hand over for now. */
  attachmentRetryAttempts: number;
  /** The wait before each of those retries, in ms (the last repeats). */
  attachmentRetryDelaysMs: readonly number[];
  /** Broadcast pace caps by channel (messages per second), over the adapters' own. */
  broadcastRateLimits: Record<string, number>;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** An operator token short enough to guess is refused at start. */
export const ADMIN_TOKEN_MIN_LENGTH = 32;

/**
 * Why an ADMIN_TOKEN (or METRICS_TOKEN, held to the same rule) cannot be used (to follow the
 * variable's name), or undefined when it can.
 */
export function adminTokenProblem(token: string): string | undefined {
  if (token.length >= ADMIN_TOKEN_MIN_LENGTH) return undefined;
  return `must be at least ${ADMIN_TOKEN_MIN_LENGTH} characters, not ${token.length} (make one with: openssl rand -base64 32)`;
}

/** Reads the configuration from an environment; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): HubConfig {
  const e = parseEnv(EnvSchema, env, (problems) => new ConfigError(`invalid configuration: ${problems}`));
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    dataDir: path.resolve(e.DATA_DIR),
    configDir: path.resolve(e.CONFIG_DIR),
    logLevel: e.LOG_LEVEL,
    maxTextBytes: e.MAX_TEXT_BYTES,
    maxBodyBytes: e.MAX_BODY_BYTES,
    broadcastMaxBodyBytes: e.BROADCAST_MAX_BODY_BYTES,
    chatWaitMs: e.CHAT_WAIT_MS,
    queueConcurrency: e.QUEUE_CONCURRENCY,
    cacheTtlSeconds: e.CACHE_TTL_SECONDS,
    cacheMaxSessions: e.CACHE_MAX_SESSIONS,
    anonymousSessionDays: e.ANONYMOUS_SESSION_DAYS,
    identifiedUserRetentionMs:
      e.IDENTIFIED_USER_RETENTION_DAYS === undefined
        ? undefined
        : e.IDENTIFIED_USER_RETENTION_DAYS * 86_400_000,
    agentEventsKeepMs: e.AGENT_EVENTS_KEEP_HOURS * 3_600_000,
    deadLetterKeepMs: e.DEAD_LETTER_KEEP_DAYS * 86_400_000,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    migrateOnStart: e.MIGRATE_ON_START === 'true',
    metricsToken: e.METRICS_TOKEN,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_SECONDS * 1000,
    dependencyTimeoutMs: e.DEPENDENCY_TIMEOUT_SECONDS * 1000,
    adminToken: e.ADMIN_TOKEN,
    deliveryAttempts: e.DELIVERY_ATTEMPTS,
    deliveryGiveUpAfterMs: e.DELIVERY_GIVE_UP_AFTER_SECONDS * 1000,
    deliveryRetryBaseMs: e.DELIVERY_RETRY_BASE_MS,
    deliveryRetryCapMs: e.DELIVERY_RETRY_CAP_MS,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    sessionCreatePerMinute: e.SESSION_CREATE_PER_MINUTE,
    webConnectionsPerMinute: e.WEB_CONNECTIONS_PER_MINUTE,
    uploadsPerMinute: e.UPLOADS_PER_MINUTE,
    unsentUploadsMaxBytes: e.UNSENT_UPLOADS_MAX_BYTES,
    trustProxy: e.TRUST_PROXY,
    expiryIntervalMs: e.EXPIRY_INTERVAL_SECONDS * 1000,
    schedulerPollMs: e.SCHEDULER_POLL_MS,
    queueRetryBaseMs: e.QUEUE_RETRY_BASE_MS,
    queueSweepMs: e.QUEUE_SWEEP_MS,
    idleSweepIntervalMs: e.IDLE_SWEEP_SECONDS * 1000,
    dbAnalyzeIntervalMs: e.DB_ANALYZE_SECONDS * 1000,
    dbAnalyzeMinIntervalMs: e.DB_ANALYZE_MIN_INTERVAL_SECONDS * 1000,
    webhookTimeoutMs: e.WEBHOOK_TIMEOUT_SECONDS * 1000,
    webhookPollMs: e.WEBHOOK_POLL_MS,
    webhookRetryBaseMs: e.WEBHOOK_RETRY_BASE_MS,
    webhookMaxAgeMs: e.WEBHOOK_MAX_AGE_SECONDS * 1000,
    webhookOverdueRetryMs: e.WEBHOOK_OVERDUE_RETRY_SECONDS * 1000,
    webhookBroadcastProgressMs: e.WEBHOOK_BROADCAST_PROGRESS_MS,
    authJwtSecret: e.AUTH_JWT_SECRET,
    authJwtPublicKeyFile: e.AUTH_JWT_PUBLIC_KEY_FILE && path.resolve(e.AUTH_JWT_PUBLIC_KEY_FILE),
    authJwksFile: e.AUTH_JWKS_FILE && path.resolve(e.AUTH_JWKS_FILE),
    authJwtIssuer: e.AUTH_JWT_ISSUER,
    authJwtAudience: e.AUTH_JWT_AUDIENCE,
    authJwtClockToleranceSeconds: e.AUTH_JWT_CLOCK_TOLERANCE_SECONDS,
    publicUrl: e.PUBLIC_URL?.replace(/\/+$/, ''),
    mediaFetchTimeoutMs: e.MEDIA_FETCH_TIMEOUT_SECONDS * 1000,
    mediaFetchAllowHosts: (e.MEDIA_FETCH_ALLOW_HOSTS ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
    attachmentRetryAttempts: e.ATTACHMENT_RETRY_ATTEMPTS,
    attachmentRetryDelaysMs: e.ATTACHMENT_RETRY_DELAYS_MS ?? ATTACHMENT_RETRY_DELAYS_MS,
    broadcastRateLimits: e.BROADCAST_RATE_LIMITS,
  };
}
