import type { Redis } from 'ioredis';
import { OUTBOUND_QUEUE } from '../delivery/redis-outbox.ts';
import { INBOUND_QUEUE } from './redis-lane-queue.ts';
import { RedisLanes } from './redis-lanes.ts';

/**
 * Removes what the Redis queues remember of erased sessions, without moving live queue state:
 * the inbound dedupe marks whose envelope id names a session (`api:<id>:…`, `web:<id>:…`), and
 * the dead letters of their inbound lanes (`bot|channel|native_key`) and outbound lanes (the
 * session id). Lanes still holding items, their schedule marks and BullMQ jobs are left alone:
 * they drain on their own (the engine finds no session for an envelope of an erased API or web
 * session, and drops one that would open a session for an erased contact), and empty lanes leave
 * no key behind.
 */
export async function eraseQueueTraces(
  redis: Redis,
  prefix: string,
  sessions: readonly { id: string; lane: string }[],
): Promise<{ dedupeMarks: number; deadLetters: number }> {
  if (sessions.length === 0) return { dedupeMarks: 0, deadLetters: 0 };
  const ids = sessions.map((s) => s.id);
  const lanes = new Set(sessions.map((s) => s.lane));
  const inbound = new RedisLanes(redis, { prefix, name: INBOUND_QUEUE });
  const outbound = new RedisLanes(redis, { prefix, name: OUTBOUND_QUEUE });
  const dedupeMarks = await inbound.forgetSeen((envelopeId) => ids.some((id) => envelopeId.includes(id)));
  const deadLetters =
    (await inbound.dropDeadLetters((lane) => lanes.has(lane))) +
    (await outbound.dropDeadLetters((lane) => ids.includes(lane)));
  return { dedupeMarks, deadLetters };
}
