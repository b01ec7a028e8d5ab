import { randomUUID } from 'node:crypto';
import { emptyState, type SessionRecord, type SessionSnapshot } from '../../src/store/records.ts';

/** A new anonymous session with an empty state, as a turn reads it; `session` overrides its fields. */
export function freshSnapshot(session: Partial<SessionRecord> = {}): SessionSnapshot {
  const now = new Date().toISOString();
  return {
    session: {
      id: randomUUID(),
      bot: 'test',
      channel: 'api',
      nativeKey: 'k',
      userId: null,
      authLevel: 'anonymous',
      replyTo: null,
      meta: {},
      createdAt: now,
      lastActivityAt: now,
      expiresAt: null,
      endedAt: null,
      messageCount: 0,
      lastSeq: 0,
      ...session,
    },
    state: emptyState(),
  };
}
