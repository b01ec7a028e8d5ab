/**
 * What a channel is, declared by the adapter that owns it (`adapters/<name>/channel.ts`) and read
 * by the core, which never names a channel itself. A declaration is plain data plus one pure
 * function: loading it loads no platform SDK and starts nothing.
 */

/** A channel's name: lower-case letters, digits, `-` and `_` (it is part of ids, keys and labels). */
export const CHANNEL_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;

/**
 * What a channel's native id is. Sign-in links the identities a JWT verified to the channels
 * whose ids are of that kind: a verified email address to `email` channels, a verified phone
 * number to `phone` channels.
 */
export type NativeIdKind = 'email' | 'phone' | 'opaque';

/**
 * How sessions begin. `explicit`: a client opens one and holds it by token (`POST /api/session`,
 * the web widget); a message never opens one, idle sessions are not ended by the next message
 * (the token's expiry governs), and only these sessions can be signed in. `keyed`: the first
 * message for `(bot, channel, from.id[, thread])` opens one.
 */
export type SessionStart = 'explicit' | 'keyed';

/**
 * How replies reach the person. `live`: pushed to connected clients through the bus, with typing
 * and streamed chunks (the web socket). `client`: the client reads them itself (the REST answer,
 * the history). `sender`: a worker's sender delivers them through the platform. On `live` and
 * `client` channels the sender of a message hears the answer to it, so a message over the rate
 * limit is refused at once (HTTP 429, an error frame); on `sender` channels the platform has
 * already delivered it, so it is recorded as refused and a notice goes out once a minute.
 */
export type DeliveryMode = 'live' | 'client' | 'sender';

/** The platform's limits on what one reply may hold; absent: no limit the hub knows of. */
export interface ChannelLimits {
  /** Characters in one text message. */
  readonly textLength?: number;
  /** Buttons (suggestions) shown with one message. */
  readonly buttons?: number;
  /** Characters in one button's title. */
  readonly buttonTextLength?: number;
  /** Bytes in one file sent or received. */
  readonly mediaBytes?: number;
  /**
   * Messages per second the platform takes from one bot to different people: a broadcast's
   * default and highest pace on the channel (`BROADCAST_RATE_LIMITS` overrides it).
   */
  readonly messagesPerSecond?: number;
}

/** What the channel can show the person. */
export interface ChannelRendering {
  /** Suggested replies as buttons or a keyboard (otherwise, at most, as text). */
  readonly suggestions: boolean;
  /** Cards (rich attachments with a title, text, image and actions). */
  readonly cards: boolean;
  /** Files and media sent to the person. */
  readonly files: boolean;
  /** A typing indicator while the bot works. */
  readonly typing: boolean;
  /** A reply growing as the bot produces it (LLM tokens). */
  readonly streaming: boolean;
}

export interface ChannelDeclaration {
  /** `envelope.channel`, part of the session key, a metrics label, `sessions.channels.<name>` in bot.json. */
  readonly name: string;
  readonly nativeId: {
    readonly kind: NativeIdKind;
    /**
     * The stored form of a native id (`user_identities`, session keys): a phone number in E.164,
     * an address in lower case. Throws InvalidIdentityError saying what is wrong.
     */
    normalize(raw: string): string;
    /**
     * The native id the channel gives messages that claim to come from this (stored) id but
     * could not prove it (email: `unverified:<address>`), when it keeps those apart. Never linked
     * to an identity; erasing the identity's owner erases its sessions too, since they may be theirs.
     */
    unverified?(nativeId: string): string;
  };
  /**
   * Whether the person behind a native id is known (a phone number, an address, a work account):
   * a user record at first contact, USER MEMORY, identity linking. It is the channel's default;
   * an envelope's `identityVerified` overrides it for one message.
   */
  readonly identified: boolean;
  readonly sessions: SessionStart;
  readonly delivery: DeliveryMode;
  readonly limits: ChannelLimits;
  readonly renders: ChannelRendering;
  /** The channel's own tables, when it keeps any beyond its keyed store (`AdapterHost.store`). */
  readonly storage?: ChannelStorage;
}

/** What an erasure removes, as a channel's `erase` hook is told of it. */
export interface ErasedSessions {
  sessionIds: string[];
  /** The same sessions, with what a channel keys its own rows by. */
  sessions: readonly { id: string; bot: string; channel: string; nativeKey: string }[];
  envelopeIds: string[];
}

/**
 * What the expiry job removes, as a channel's `expire` hook is told of it: anonymous sessions past
 * their retention. The person is not gone (they may have another session on the same key, now or
 * later), so a hook removes only what these sessions hold, never what their key names.
 */
export interface ExpiredSessions {
  sessionIds: string[];
  /** The same sessions, with what a channel keys its own rows by. */
  sessions: readonly { id: string; bot: string; channel: string; nativeKey: string }[];
  /** The envelopes these sessions received that became their messages. */
  envelopeIds: string[];
}

/** The bounds of the prune job a channel's `prune` hook keeps to. */
export interface PruneBounds {
  /** What was set aside (the channel's dead letters) is kept this long (DEAD_LETTER_KEEP_DAYS). */
  deadLetterKeepMs: number;
}

/** SQL on a channel's own tables: what `AdapterStore.query` and an `erase` hook get. */
export interface ChannelQueryable {
  query<Row = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<{ rows: Row[]; rowCount: number }>;
}

/**
 * A channel's own tables: its migrations, run by `migrate` after the core's (whether or not the
 * channel is configured, so every process of a hub sees one schema), and what erasing a person,
 * expiring a session and pruning remove from them.
 */
export interface ChannelStorage {
  /**
   * The folder of its migrations (`adapters/<name>/migrations/NNNN_name.sql`), applied in file-name
   * order and recorded in `schema_migrations` as `<channel>/NNNN_name`. Never renumber or edit one
   * that was released: add another. Absent: no tables of its own, only an `erase` hook (for
   * what it keeps in the keyed store, `channel_values`).
   */
  readonly migrationsDir?: string;
  /**
   * Core migrations that made these tables before the channel owned them, by the channel
   * migration that now makes them: a database that applied the core one records the channel one
   * as applied without running it (`db.migration_adopted`).
   */
  readonly adopts?: Readonly<Record<string, string>>;
  /**
   * Erasing a person: deletes what the channel keeps about these sessions (and the envelopes
   * they received), inside the erasure's transaction. `sessions`: each one's bot, channel and
   * native key, for what is kept by them (the hook reads no core table).
   */
  erase?(q: ChannelQueryable, erased: ErasedSessions): Promise<void>;
  /**
   * The expiry job removes anonymous sessions past their retention: deletes what the channel
   * keeps about these sessions (and the envelopes that became their messages), inside the
   * transaction that removes them. Like `erase`, it reads no core table.
   */
  expire?(q: ChannelQueryable, expired: ExpiredSessions): Promise<void>;
  /**
   * The prune job (every worker, every 15 minutes): deletes what the channel keeps that no session
   * holds and that is past its bound (mail it set aside, after `deadLetterKeepMs`).
   */
  prune?(q: ChannelQueryable, bounds: PruneBounds): Promise<void>;
}

/** A native id that is not one on its channel. */
export class InvalidIdentityError extends Error {
  override name = 'InvalidIdentityError';
}
