import type { Server } from 'node:http';
import type { Context, Hono } from 'hono';
import type { SignIn } from './auth/sign-in-service.ts';
import type { Bus } from './bus/bus.ts';
import type { AdapterStore, HistoryReader, TokenSessions } from './channels/host-services.ts';
import type { BotRegistry } from './config/bots.ts';
import type { HubConfig } from './config/env.ts';
import type { ChannelSender } from './delivery/sender.ts';
import type { Attachment, Channel, Envelope, EnvelopeInput } from './envelope.ts';
import type { FetchedAttachment } from './files/inbound.ts';
import type { FileStore } from './files/store.ts';
import type { RateLimiter } from './limits/rate-limiter.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { ChannelOutbound } from './outbound/capability.ts';
import type { DeliveryStatus } from './store/records.ts';

/**
 * A group of HTTP routes: a Hono sub-app, of any environment (a group may type its own context
 * variables, as routes behind `requireSession` do), mounted with `app.route`.
 */
// biome-ignore lint/suspicious/noExplicitAny: a Hono env is invariant in its Variables; any admits every sub-app's.
export type RouteGroup = Hono<any>;

export interface AcceptResult {
  status: 'accepted' | 'duplicate';
  envelopeId: string;
}

/** Where adapters hand in what arrives. Resolves once the envelope is durably queued. */
export interface Ingress {
  /** Validates (zod) and enqueues; throws InvalidEnvelopeError for bad input. */
  accept(envelope: EnvelopeInput): Promise<AcceptResult>;
}

/** What the hub gives an adapter. */
export interface AdapterHost {
  config: HubConfig;
  logger: Logger;
  metrics: Metrics;
  bots: BotRegistry;
  ingress: Ingress;
  bus: Bus;
  /** Token sessions, shared with the REST API (channels whose sessions are explicit). */
  sessions: TokenSessions;
  /** The conversation as its person sees it. */
  history: HistoryReader;
  /** This adapter's own storage: a keyed store, and its own tables (`declaration.storage`). */
  store: AdapterStore;
  /**
   * The file store: what a person sends goes in (`put`, within the bot's `sessions.maxFileBytes`
   * and `allowedFileTypes`), what a bot sends comes out (`stream`, `bytes`, `signedPath`).
   */
  files: FileStore;
  /** Shared by every process of the hub when Redis is configured; per session limit: `config.rateLimitPerMinute`. */
  rateLimiter: RateLimiter;
  /** The sign-in upgrade (gateways with AUTH_JWT_* or a bot's `auth` configured). */
  signIn?: SignIn;
  /**
   * Aborted once the hub begins to stop: a request that waits on something (a chat for its
   * replies, a stream of events) stops waiting and answers, so that the server can close.
   */
  stopping: AbortSignal;
  /** Applies a delivery status the platform reported for a message we sent. */
  applyStatus(channelMessageId: string, status: DeliveryStatus, error?: string): Promise<void>;
  /** A live client showed the session's replies through `seq`: `sent` becomes `delivered`. */
  deliveredThrough(sessionId: string, seq: number): Promise<void>;
}

/**
 * One channel. Adapters live in `adapters/<channel>/` and export one factory returning this.
 * Gateway processes mount routes and run inbound connections; worker processes send.
 */
/** A bot a channel answers with, and the setting that names it. */
export interface ChannelBot {
  bot: string;
  /** The variable that names it (`TEAMS_BOT`, `EMAIL_MAILBOXES`). */
  setting: string;
  /** Which of the setting's entries names it, when it holds several (`folder "Support"`). */
  entry?: string;
}

export interface ChannelAdapter {
  readonly channel: Channel;
  /**
   * The bots it answers with, as its configuration names them: the hub refuses to start with one
   * that does not exist, before anything is opened, and `switchboard check` reports it
   * (`src/channels/channel-bots.ts`). Absent: the channel names no bot of its own (the person
   * or the client chooses).
   */
  readonly bots?: readonly ChannelBot[];
  /** Called first, in every role. */
  setup?(host: AdapterHost): Promise<void>;
  /**
   * Gateway: HTTP routes (webhooks, pages) as a Hono sub-app with absolute paths; the hub mounts
   * it with `app.route('/', …)` after the core's routes, in registration order. Called once,
   * after `setup`.
   */
  routes?(): RouteGroup;
  /**
   * Gateway: a session token that a request carries other than as `Authorization: Bearer` (the
   * web channel's own page: its HttpOnly cookie), for the hub's session routes (file uploads).
   */
  requestToken?(c: Context): string | undefined;
  /** Gateway: once the HTTP server listens (WebSocket upgrades). */
  attach?(server: Server): void;
  /**
   * Gateway: the HTTP server is about to close. Ends what `attach` holds open (web sockets, told
   * to reconnect), which would otherwise keep the server from closing.
   */
  detach?(): Promise<void>;
  /** Gateway: long-lived inbound connections (IMAP IDLE, a linked WhatsApp Web client). */
  start?(): Promise<void>;
  /**
   * Worker: the bytes of an inbound attachment the gateway queued as `pending` (a platform media
   * id, a hosted URL), fetched before the turn; undefined when it has none. Called again after a
   * crash (the queue redelivers): it must be safe to repeat.
   */
  fetchAttachment?(attachment: Attachment, envelope: Envelope): Promise<FetchedAttachment | undefined>;
  /** Worker: how replies leave. Absent: the channel's clients read replies themselves. */
  sender?: ChannelSender;
  /** Gateway: the channel's rules for messages the business sends first (`POST /api/admin/messages`). */
  outbound?: ChannelOutbound;
  /**
   * The channel's own connections (IMAP, a linked WhatsApp Web client); throws when one is down.
   * Reported in `/readyz`'s body as `connected`/`disconnected`, never gating it: a third party
   * being away must not take the whole gateway out of rotation.
   */
  ping?(): Promise<void>;
  stop?(): Promise<void>;
}
