import { addressBlock } from './address-block.ts';

/** What one hit against a limit decided. */
export interface RateDecision {
  allowed: boolean;
  /** When refused: how long until a hit would be allowed again. 0 when allowed. */
  retryAfterMs: number;
  /** Hits still allowed in the current window after this one. */
  remaining: number;
}

/**
 * A sliding-window rate limiter: at most `limit` allowed hits under one key in any `windowMs`.
 * A refused hit is not counted, so hammering a closed limit does not keep it closed.
 * Implementations: Redis (shared by every process of a hub) and in-process.
 */
export interface RateLimiter {
  /**
   * `hitId` names what is being counted (a message's envelope id): the same id allowed again
   * within the window (a platform redelivering a webhook) is allowed without counting twice.
   */
  hit(key: string, limit: number, windowMs: number, hitId?: string): Promise<RateDecision>;
  /** What a hit would decide now, without counting one (is this key closed?). */
  peek(key: string, limit: number, windowMs: number): Promise<RateDecision>;
  /** Drops everything recorded under a key (a person's data is erased; the key names them). */
  forget(key: string): Promise<void>;
}

export class RateLimitArgumentError extends Error {
  override name = 'RateLimitArgumentError';
}

/** Both implementations refuse the same nonsense the same way. */
export function checkLimitArguments(key: string, limit: number, windowMs: number): void {
  if (key === '') throw new RateLimitArgumentError('a rate limit key must not be empty');
  if (!Number.isInteger(limit) || limit < 1)
    throw new RateLimitArgumentError(`a rate limit is a whole number of hits >= 1, not ${limit}`);
  if (!Number.isInteger(windowMs) || windowMs < 1)
    throw new RateLimitArgumentError(
      `a rate limit window is a whole number of milliseconds >= 1, not ${windowMs}`,
    );
}

export const MINUTE_MS = 60_000;

/**
 * The key of a session's message limit: its lane (`bot|channel|native key`, for token sessions
 * the session id is the native key), so every gateway counts the same messages.
 */
export const sessionMessagesKey = (lane: string) => `session:${lane}:messages`;
/** The key that lets one rate-limit notice a minute through to a session over its limit. */
export const rateNoticeKey = (lane: string) => `session:${lane}:rate-notice`;
/** The key of a session's uploads (UPLOADS_PER_MINUTE): its id, which its token names on every gateway. */
export const sessionUploadsKey = (sessionId: string) => `session:${sessionId}:uploads`;

/**
 * The keys of what one client address may do per minute (SESSION_CREATE_PER_MINUTE): open
 * sessions, and try sign-ins. An address is personal data too, kept only for the window. An IPv6
 * client is counted by its /64 (`addressBlock`).
 */
export const sessionCreateKey = (address: string) => `address:${addressBlock(address)}:sessions`;
export const signInAttemptKey = (address: string) => `address:${addressBlock(address)}:sign-ins`;
/** The key of a client address's widget WebSocket handshakes (WEB_CONNECTIONS_PER_MINUTE). */
export const webConnectionKey = (address: string) => `address:${addressBlock(address)}:web-connections`;

/** Seconds for a `Retry-After` header: whole, at least 1. */
export const retryAfterSeconds = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)));

/** The key of a recipient's delivery pace on a channel (a phone number, an address: personal data). */
export const recipientKey = (channel: string, recipient: string) => `recipient:${channel}:${recipient}`;

/** Who a session's replies go to, where the sender does not say: the identity part of its key. */
export const defaultRecipient = (nativeKey: string): string => nativeKey.split('#', 1)[0] ?? nativeKey;
