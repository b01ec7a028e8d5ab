import type { Redis } from 'ioredis';
import { OUTBOUND_QUEUE } from '../delivery/redis-outbox.ts';
import { INBOUND_QUEUE } from './redis-lane-queue.ts';
import { RedisLanes } from './redis-lanes.ts';

/**
 * Forgets the Redis queues' dead letters set aside more than `olderThanMs` ago: the inbound
 * queue's hold whole envelopes (what people wrote, their names and addresses), the outbound
 * queue's a session's id. `switchboard queue failed|replay` work on those still kept.
 */
export async function pruneQueueDeadLetters(
  redis: Redis,
  prefix: string,
  olderThanMs: number,
): Promise<{ inbound: number; outbound: number }> {
  const prune = (name: string) => new RedisLanes(redis, { prefix, name }).pruneDeadLetters(olderThanMs);
  return { inbound: await prune(INBOUND_QUEUE), outbound: await prune(OUTBOUND_QUEUE) };
}
