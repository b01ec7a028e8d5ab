import type { SessionSnapshot } from '../store/records.ts';

/**
 * Read-through, write-through cache of active sessions. PostgreSQL is the truth: every method
 * may lose data (eviction, a Redis restart) and callers fall back to the database. A snapshot
 * read from a cache must not be changed in place: it may be the cached object itself.
 */
export interface SessionCache {
  /** `trustLocal`: a copy in this process is current (see `DeliveryInfo.followsInLane`), use it unchecked. */
  get(sessionId: string, options?: { trustLocal?: boolean }): Promise<SessionSnapshot | undefined>;
  /**
   * `localOnly`: this process takes the session's next turn right after, so a shared layer
   * (Redis) is written only with the last of them; until then it holds an older version, which
   * its version check refuses.
   */
  set(snapshot: SessionSnapshot, options?: { localOnly?: boolean }): Promise<void>;
  delete(sessionId: string): Promise<void>;
  /** The open session id for a session key, to skip the key lookup on the hot path. */
  getSessionId(lane: string): Promise<string | undefined>;
  setSessionId(lane: string, sessionId: string): Promise<void>;
  deleteSessionId(lane: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
