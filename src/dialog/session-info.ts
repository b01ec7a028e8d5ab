import type { SessionInfo } from '../engine/bot.ts';
import type { Envelope } from '../envelope.ts';
import type { Value } from './values.ts';

type Reader = (session: SessionInfo, envelope: Envelope) => Value;

const id: Reader = (s) => s.id;
const messageCount: Reader = (s) => s.messageCount;
const createdAt: Reader = (s) => s.createdAt;

/**
 * What `GET SESSION "key"` (and `GET "session.key"`) can read. `last_interaction` is when the
 * person was last here before this message, in this session or their previous one with the bot:
 * empty the first time ever.
 */
const READERS: ReadonlyMap<string, Reader> = new Map<string, Reader>([
  ['channel', (s) => s.channel],
  ['user_id', (s) => s.userId ?? ''],
  ['user_name', (_s, e) => e.from.name ?? ''],
  ['auth_level', (s) => s.authLevel],
  ['last_interaction', (s) => s.lastInteractionAt ?? ''],
  ['bot', (s) => s.bot],
  ['id', id],
  ['session_id', id],
  ['session.id', id],
  ['message_count', messageCount],
  ['session.message_count', messageCount],
  ['created_at', createdAt],
  // In ON TRANSFER END: why people gave the session back (released, timeout, agent_offline).
  ['transfer_end_reason', (_s, e) => (e.kind === 'transfer_end' ? (e.end?.reason ?? '') : '')],
  ['session.created_at', createdAt],
  // The files the person sent with this message: a list of {id, name, type, size} (type sniffed).
  [
    'files',
    (_s, e) =>
      e.attachments.flatMap((a) =>
        a.fileId ? [{ id: a.fileId, name: a.name ?? 'file', type: a.type, size: a.size ?? 0 }] : [],
      ),
  ],
]);

export const SESSION_KEYS: readonly string[] = [...READERS.keys()];

export function isSessionKey(key: string): boolean {
  return READERS.has(key.toLowerCase());
}

export function readSession(key: string, session: SessionInfo, envelope: Envelope): Value | undefined {
  return READERS.get(key.toLowerCase())?.(session, envelope);
}
