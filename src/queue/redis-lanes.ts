import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Keyed FIFO lanes in Redis: the per-session order that open-source BullMQ lacks.
 *
 * Every lane (a session, or a session's outbox) is a Redis list. A lane that has items is
 * "scheduled" under an epoch, and exactly one BullMQ job (id `<sha1(lane)>-<epoch>`) drains it.
 * All state changes are single Lua scripts, so these hold at every instant:
 * - an item is marked seen (dedupe) in the same step that queues it — never before;
 * - a lane with items is scheduled, and a scheduled lane has a job or is about to get one (the
 *   producer adds it right after `push`; if it dies in between, `stale` finds the lane and any
 *   worker re-adds the job);
 * - a drainer unschedules its lane only in the same step that sees it empty, so an item pushed
 *   a moment later schedules a new epoch, with a new job id that BullMQ cannot mistake for the
 *   finishing one;
 * - only the current epoch's drainer may read or unschedule; items leave the list only when
 *   their handling is done (acknowledged by exact value), so a drainer that dies loses nothing.
 */

const PUSH = `
-- KEYS: dedupe, lane, sched, scheduled, epoch, depth   ARGV: item, dedupeTtlMs, lane, now, useDedupe
if ARGV[5] == '1' and redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) == false then return {0, 0} end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[6])
if redis.call('EXISTS', KEYS[3]) == 1 then return {1, 0} end
local epoch = redis.call('INCR', KEYS[5])
redis.call('SET', KEYS[3], epoch)
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
return {2, epoch}
`;

const READ = `
-- KEYS: lane, sched   ARGV: epoch, count
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
return redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
`;

const ACK = `
-- KEYS: lane, depth   ARGV: items in order
local popped = 0
for i = 1, #ARGV do
  if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[i] then break end
  redis.call('LPOP', KEYS[1])
  popped = popped + 1
end
if popped > 0 then redis.call('DECRBY', KEYS[2], popped) end
return popped
`;

const ACK_FINISH = `
-- KEYS: lane, depth, sched, scheduled   ARGV: epoch, lane, items in order
-- Acknowledges, and unschedules the lane in the same step if that left it empty.
local popped = 0
for i = 3, #ARGV do
  if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[i] then break end
  redis.call('LPOP', KEYS[1])
  popped = popped + 1
end
if popped > 0 then redis.call('DECRBY', KEYS[2], popped) end
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
if redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[4], ARGV[2])
end
return 1
`;

const FINISH = `
-- KEYS: lane, sched, scheduled   ARGV: epoch, lane
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
end
return 1
`;

const HANDBACK = `
-- KEYS: sched, epoch, scheduled   ARGV: epoch, lane, now
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], epoch)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return epoch
`;

const DEAD_LETTER = `
-- KEYS: lane, dead, depth   ARGV: item, record
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[1])
redis.call('DECRBY', KEYS[3], 1)
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
`;

interface LaneCommands {
  lanePush(...args: (string | number)[]): Promise<[number, number]>;
  laneRead(...args: (string | number)[]): Promise<string[] | null>;
  laneAck(...args: (string | number)[]): Promise<number>;
  laneAckFinish(...args: (string | number)[]): Promise<number>;
  laneFinish(...args: (string | number)[]): Promise<number>;
  laneHandback(...args: (string | number)[]): Promise<number>;
  laneDeadLetter(...args: (string | number)[]): Promise<number>;
}

function defineCommands(redis: Redis): Redis & LaneCommands {
  const r = redis as Redis & Partial<LaneCommands>;
  if (!r.lanePush) {
    redis.defineCommand('lanePush', { numberOfKeys: 6, lua: PUSH });
    redis.defineCommand('laneRead', { numberOfKeys: 2, lua: READ });
    redis.defineCommand('laneAck', { numberOfKeys: 2, lua: ACK });
    redis.defineCommand('laneAckFinish', { numberOfKeys: 4, lua: ACK_FINISH });
    redis.defineCommand('laneFinish', { numberOfKeys: 3, lua: FINISH });
    redis.defineCommand('laneHandback', { numberOfKeys: 3, lua: HANDBACK });
    redis.defineCommand('laneDeadLetter', { numberOfKeys: 3, lua: DEAD_LETTER });
  }
  return redis as Redis & LaneCommands;
}

export type PushResult = { status: 'duplicate' } | { status: 'accepted'; scheduleEpoch?: number };

export interface DeadLetter {
  lane: string;
  item: string;
  error: string;
  attempts: number;
  at: string;
}

/** The BullMQ job id of a lane's drain at an epoch (BullMQ ids may not contain ':'). */
export function laneJobId(lane: string, epoch: number): string {
  return `${createHash('sha1').update(lane).digest('hex')}-${epoch}`;
}

/** A literal string inside a SCAN MATCH pattern. */
const escapeGlob = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');

export class RedisLanes {
  private readonly redis: Redis & LaneCommands;
  private readonly base: string;

  constructor(redis: Redis, options: { prefix: string; name: string }) {
    this.redis = defineCommands(redis);
    this.base = `${options.prefix}${options.name}:`;
  }

  private laneKey = (lane: string) => `${this.base}lane:${lane}`;
  private schedKey = (lane: string) => `${this.base}sched:${lane}`;
  private get scheduledKey() {
    return `${this.base}scheduled`;
  }
  private get epochKey() {
    return `${this.base}epoch`;
  }
  private get depthKey() {
    return `${this.base}depth`;
  }
  private get deadKey() {
    return `${this.base}dead`;
  }
  private get failsKey() {
    return `${this.base}fails`;
  }

  /** Queues an item; with a dedupe id, refuses one seen within `dedupeTtlMs`. */
  async push(lane: string, item: string, dedupe?: { id: string; ttlMs: number }): Promise<PushResult> {
    const [status, epoch] = await this.redis.lanePush(
      `${this.base}dedupe:${dedupe?.id ?? ''}`,
      this.laneKey(lane),
      this.schedKey(lane),
      this.scheduledKey,
      this.epochKey,
      this.depthKey,
      item,
      dedupe?.ttlMs ?? 0,
      lane,
      Date.now(),
      dedupe ? '1' : '0',
    );
    if (status === 0) return { status: 'duplicate' };
    return status === 2 ? { status: 'accepted', scheduleEpoch: Number(epoch) } : { status: 'accepted' };
  }

  /** The next items of a lane, or null when `epoch` no longer owns it. */
  async read(lane: string, epoch: number, count: number): Promise<string[] | null> {
    return this.redis.laneRead(this.laneKey(lane), this.schedKey(lane), epoch, count);
  }

  /** Removes handled items from the head, each only if it is still there. */
  async ack(lane: string, items: readonly string[]): Promise<number> {
    if (items.length === 0) return 0;
    return this.redis.laneAck(this.laneKey(lane), this.depthKey, ...items);
  }

  /**
   * Acknowledges handled items and, if that empties the lane, unschedules it in the same step
   * (one round trip instead of three for the common lane of one message). True when finished.
   */
  async ackAndFinish(lane: string, epoch: number, items: readonly string[]): Promise<boolean> {
    const done = await this.redis.laneAckFinish(
      this.laneKey(lane),
      this.depthKey,
      this.schedKey(lane),
      this.scheduledKey,
      epoch,
      lane,
      ...items,
    );
    return done === 1;
  }

  /** Unschedules the lane if it is empty; false when items arrived meanwhile. */
  async finish(lane: string, epoch: number): Promise<boolean> {
    return (
      (await this.redis.laneFinish(
        this.laneKey(lane),
        this.schedKey(lane),
        this.scheduledKey,
        epoch,
        lane,
      )) === 1
    );
  }

  /** Hands a lane on to a new epoch (shutdown); the caller adds its job. Undefined when not the owner. */
  async handback(lane: string, epoch: number): Promise<number | undefined> {
    const next = await this.redis.laneHandback(
      this.schedKey(lane),
      this.epochKey,
      this.scheduledKey,
      epoch,
      lane,
      Date.now(),
    );
    return next === 0 ? undefined : Number(next);
  }

  /** Lanes scheduled before `before` (ms), with their epoch: candidates for a lost job. */
  async scheduledBefore(before: number, limit: number): Promise<{ lane: string; epoch: number }[]> {
    const lanes = await this.redis.zrangebyscore(this.scheduledKey, 0, before, 'LIMIT', 0, limit);
    if (lanes.length === 0) return [];
    const epochs = await this.redis.mget(...lanes.map(this.schedKey));
    return lanes.flatMap((lane, i) => (epochs[i] ? [{ lane, epoch: Number(epochs[i]) }] : []));
  }

  /** Marks a scheduled lane as checked now. */
  async touch(lane: string): Promise<void> {
    await this.redis.zadd(this.scheduledKey, 'XX', Date.now(), lane);
  }

  /** Counts one more failed attempt at an item; returns the count. */
  async recordFailure(itemId: string): Promise<number> {
    return this.redis.hincrby(this.failsKey, itemId, 1);
  }

  async clearFailure(itemId: string): Promise<void> {
    await this.redis.hdel(this.failsKey, itemId);
  }

  /** Moves the lane's head item to the dead letters, where an operator can see and replay it. */
  async deadLetter(lane: string, item: string, error: string, attempts: number): Promise<boolean> {
    const record: DeadLetter = { lane, item, error, attempts, at: new Date().toISOString() };
    return (
      (await this.redis.laneDeadLetter(
        this.laneKey(lane),
        this.deadKey,
        this.depthKey,
        item,
        JSON.stringify(record),
      )) === 1
    );
  }

  async deadLetters(): Promise<DeadLetter[]> {
    return (await this.redis.lrange(this.deadKey, 0, -1)).map((raw) => JSON.parse(raw) as DeadLetter);
  }

  /** Takes every dead letter out (to replay them). */
  async takeDeadLetters(): Promise<DeadLetter[]> {
    const raw = (await this.redis.multi().lrange(this.deadKey, 0, -1).del(this.deadKey).exec()) ?? [];
    const list = (raw[0]?.[1] as string[] | undefined) ?? [];
    return list.map((r) => JSON.parse(r) as DeadLetter);
  }

  /**
   * Forgets the dedupe marks of envelope ids that `matches` picks (an erased person's envelope
   * ids name their session). A mark is only read when an envelope is pushed: no queue state moves.
   */
  async forgetSeen(matches: (envelopeId: string) => boolean): Promise<number> {
    const head = `${this.base}dedupe:`;
    let cursor = '0';
    let forgotten = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${escapeGlob(head)}*`, 'COUNT', 1000);
      cursor = next;
      const picked = keys.filter((k) => matches(k.slice(head.length)));
      if (picked.length > 0) forgotten += await this.redis.del(...picked);
    } while (cursor !== '0');
    return forgotten;
  }

  /** Removes the dead letters of the lanes `matches` picks; the others stay in order. */
  async dropDeadLetters(matches: (lane: string) => boolean): Promise<number> {
    let dropped = 0;
    for (const raw of await this.redis.lrange(this.deadKey, 0, -1)) {
      if (matches((JSON.parse(raw) as DeadLetter).lane))
        dropped += await this.redis.lrem(this.deadKey, 0, raw);
    }
    return dropped;
  }

  /** Items queued in every lane. */
  async depth(): Promise<number> {
    return Number((await this.redis.get(this.depthKey)) ?? 0);
  }
}
