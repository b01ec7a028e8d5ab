import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { defineLuaCommands, type LuaCommand, readLua } from '../redis-scripts.ts';
import { TickBatcher } from './tick-batch.ts';

/**
 * Keyed FIFO lanes in Redis: the per-session order that open-source BullMQ lacks.
 *
 * Every lane (a session, or a session's outbox) is a Redis list. A lane that has items is
 * "scheduled" under an epoch and waits in the `ready` list as `<epoch>|<lane>` until a drain job
 * claims it. Drain jobs are BullMQ jobs (`wake-<n>`); one claims up to a handful of ready lanes
 * at once, so under load one job, with its few BullMQ round trips, serves many lanes.
 * All state changes are single Lua scripts, so these hold at every instant:
 * - an item is marked seen (dedupe) in the same step that queues it — never before;
 * - a lane with items is scheduled: ready, or claimed by exactly one job (listed in that job's
 *   claim set until its drain ends, so a job that BullMQ hands to another worker after a crash
 *   finds the lanes it held);
 * - while lanes are ready, a wake job is marked `waking` and exists or is about to (the
 *   producer adds it right after `push`; if it dies in between, any worker's sweep adds it);
 * - a drainer unschedules its lane only in the same step that sees it empty, so an item pushed
 *   a moment later schedules a new epoch;
 * - only the current epoch's drainer may read or unschedule; items leave the list only when
 *   their handling is done (acknowledged by exact value), so a drainer that dies loses nothing.
 */

/** claim.lua's and top-up.lua's reply: entries, next wake, first chunks, cached sessions, lingers. */
type ClaimReply = [string[], number, (string[] | null)[], ([string, string | null] | null)[], number];

/** Keys a step of the claims index's one-time seeding asks SCAN to look at. */
const SEED_SCAN_COUNT = 1_000;
/** How long one worker may hold the seeding to itself (a worker that dies in the middle frees it then). */
const SEED_LOCK_MS = 10 * 60_000;

/** What `seedClaimants` did: the jobs it added to the index, or why it added none. */
export type SeedOutcome =
  | { added: number }
  /** A whole scan was done before (the marker is set). */
  | 'done-before'
  /** Another worker is scanning for this queue. */
  | 'busy'
  /** `stopped` said to stop before the scan was whole (no marker set). */
  | 'interrupted';

export interface LaneCommands {
  lanePush(...args: (string | number)[]): Promise<[number, number]>;
  lanePushBatch(...args: (string | number)[]): Promise<number[]>;
  laneClaim(...args: (string | number)[]): Promise<ClaimReply>;
  laneTopUp(...args: (string | number)[]): Promise<ClaimReply>;
  laneRead(...args: (string | number)[]): Promise<string[] | null>;
  laneAck(...args: (string | number)[]): Promise<number>;
  laneAckBatch(...args: (string | number)[]): Promise<(number | string[])[]>;
  laneFinish(...args: (string | number)[]): Promise<number>;
  laneHandback(...args: (string | number)[]): Promise<[number, number]>;
  lanePendingWake(...args: (string | number)[]): Promise<number>;
  laneDeadLetter(...args: (string | number)[]): Promise<number>;
  lanePruneDead(...args: (string | number)[]): Promise<number>;
  laneClaimants(...args: (string | number)[]): Promise<(string | string[])[]>;
  laneReleaseLock(...args: (string | number)[]): Promise<number>;
}

const lua = (file: string, includes: string[] = []) =>
  readLua(import.meta.url, `./redis-lanes/${file}`, includes);

/** `enqueue` (and the `wake` it calls): the step both push scripts end with. */
const ENQUEUE = ['./redis-lanes/wake.lua', './redis-lanes/enqueue.lua'];

/** `take` (and the `chunks` it calls): the step the claim scripts end with. */
const TAKE = ['./redis-lanes/chunks.lua', './redis-lanes/take.lua'];

/** The lanes' scripts, in `redis-lanes/*.lua`; `wake.lua` is a helper the scripts that schedule share. */
export const LANE_COMMANDS: readonly LuaCommand[] = [
  { name: 'lanePush', numberOfKeys: 8, lua: lua('push.lua', ENQUEUE) },
  { name: 'lanePushBatch', numberOfKeys: 5, lua: lua('push-batch.lua', ENQUEUE) },
  { name: 'laneClaim', numberOfKeys: 4, lua: lua('claim.lua', TAKE) },
  { name: 'laneTopUp', numberOfKeys: 4, lua: lua('top-up.lua', TAKE) },
  { name: 'laneRead', numberOfKeys: 2, lua: lua('read.lua') },
  { name: 'laneAck', numberOfKeys: 2, lua: lua('ack.lua') },
  { name: 'laneAckBatch', numberOfKeys: 1, lua: lua('ack-batch.lua') },
  { name: 'laneFinish', numberOfKeys: 3, lua: lua('finish.lua') },
  { name: 'laneHandback', numberOfKeys: 5, lua: lua('handback.lua', ['./redis-lanes/wake.lua']) },
  { name: 'lanePendingWake', numberOfKeys: 3, lua: lua('pending-wake.lua', ['./redis-lanes/wake.lua']) },
  { name: 'laneDeadLetter', numberOfKeys: 3, lua: lua('dead-letter.lua') },
  { name: 'lanePruneDead', numberOfKeys: 1, lua: lua('prune-dead.lua') },
  { name: 'laneClaimants', numberOfKeys: 1, lua: lua('claimants.lua') },
  { name: 'laneReleaseLock', numberOfKeys: 1, lua: lua('release-lock.lua') },
];

/** Defines the lanes' commands on a connection (once). */
export function defineLaneCommands(redis: Redis): Redis & LaneCommands {
  defineLuaCommands(redis, LANE_COMMANDS);
  return redis as Redis & LaneCommands;
}

/** `wake`: the number of a wake job that the caller must add (`LaneRunner.wake`). */
export type PushResult = { status: 'duplicate' } | { status: 'accepted'; wake?: number };

/**
 * A sliding window of hits (the Redis rate limiter's sorted set, `src/limits/redis-rate-limiter.ts`)
 * that a push is counted against: the full key, the limit, the window. The hit is named by the
 * push's dedupe id (its member is `namedHitMember(id)`).
 */
export interface PushLimit {
  key: string;
  limit: number;
  windowMs: number;
}

/** One item of `pushMany`: deduplicated when it has a `dedupeId`, counted against `limit` when it has one. */
export interface PushEntry {
  lane: string;
  item: string;
  dedupeId?: string;
  limit?: PushLimit;
}

export type PushStatus = 'accepted' | 'duplicate' | 'limited';

/** A lane a drain job claimed, at the epoch it was scheduled under. */
export interface ClaimedLane {
  lane: string;
  epoch: number;
  /** The job that claimed it, and the claim's entry: to release the claim. */
  wake: number;
  entry: string;
  /** The lane's first items, read with the claim; null when a newer epoch owns the lane; absent when not read yet. */
  items?: string[] | null;
}

/** What a claim took. */
export interface Claim {
  lanes: ClaimedLane[];
  /** More lanes wait: the caller must add this wake job for them. */
  next?: number;
  /** The job kept the wake mark (see `RedisLanes.claim`). */
  lingers: boolean;
}

/** After an acknowledgement: the lane is done, or its next items, or null when a newer epoch owns it. */
export type AckOutcome = 'finished' | string[] | null;

interface AckEntry {
  claimed: ClaimedLane;
  items: readonly string[];
  count: number;
}

export interface DeadLetter {
  lane: string;
  item: string;
  error: string;
  attempts: number;
  at: string;
}

/** Dead letters one run of `prune-dead.lua` drops at most. */
const PRUNE_DEAD_BATCH = 1_000;

/** A literal string inside a SCAN MATCH pattern. */
const escapeGlob = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');

const wakeOrNone = (n: number) => (Number(n) > 0 ? Number(n) : undefined);

/** A claim entry (`<epoch>|<lane>`) of wake job `wake`, as a claimed lane (of one shape, read or not). */
function claimedLane(wake: number, entry: string, items: string[] | null | undefined): ClaimedLane {
  const bar = entry.indexOf('|');
  return { lane: entry.slice(bar + 1), epoch: Number(entry.slice(0, bar)), wake, entry, items };
}

/** An accepted push, with the wake job the caller must add when the script marked one. */
const accepted = (wake: number): PushResult => {
  const next = wakeOrNone(wake);
  return next === undefined ? { status: 'accepted' } : { status: 'accepted', wake: next };
};

/**
 * The shared session cache a claim looks into for each lane it takes (`claim.lua`): its key
 * prefix, and who is told what the cache holds for the lane's session (see
 * `LayeredCache.prime`), which saves the lane's first turn a round trip to check its copy.
 */
export interface ClaimSessions {
  cachePrefix: string;
  seen(lane: string, sessionId: string, cached: string | null): void;
}

export class RedisLanes {
  private readonly redis: Redis & LaneCommands;
  private readonly base: string;
  private readonly sessions: ClaimSessions | undefined;

  constructor(redis: Redis, options: { prefix: string; name: string; sessions?: ClaimSessions }) {
    this.redis = defineLaneCommands(redis);
    this.base = `${options.prefix}${options.name}:`;
    this.sessions = options.sessions;
  }

  private laneKey = (lane: string) => `${this.base}lane:${lane}`;
  private schedKey = (lane: string) => `${this.base}sched:${lane}`;
  private claimsKey = (wake: number) => `${this.base}claims:${wake}`;
  private get readyKey() {
    return `${this.base}ready`;
  }
  private get wakingKey() {
    return `${this.base}waking`;
  }
  private get wakeSeqKey() {
    return `${this.base}wake-seq`;
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
    const [status, wake] = await this.redis.lanePush(
      ...this.pushKeys(lane, dedupe?.id ?? ''),
      item,
      dedupe?.ttlMs ?? 0,
      lane,
      dedupe ? '1' : '0',
    );
    return status === 0 ? { status: 'duplicate' } : accepted(wake);
  }

  /** push.lua's keys (those enqueue.lua takes after the dedupe key). */
  private pushKeys(lane: string, dedupeId: string): string[] {
    return [
      `${this.base}dedupe:${dedupeId}`,
      this.laneKey(lane),
      this.schedKey(lane),
      this.readyKey,
      this.epochKey,
      this.depthKey,
      this.wakingKey,
      this.wakeSeqKey,
    ];
  }

  /**
   * Queues several items in one script and one round trip, each as `push` would (in order; an
   * item with a `dedupe` id is refused when that id was seen within `dedupeTtlMs`), and counts an
   * item that has a `limit` against it in the same step. `limited`: the window is full; nothing
   * was counted or queued for that item. `wake`: the one wake job the caller must add for them all.
   */
  async pushMany(
    entries: readonly PushEntry[],
    dedupeTtlMs: number,
  ): Promise<{ statuses: PushStatus[]; wake?: number }> {
    const args: (string | number)[] = [
      this.readyKey,
      this.epochKey,
      this.depthKey,
      this.wakingKey,
      this.wakeSeqKey,
      this.base,
      dedupeTtlMs,
    ];
    for (const { lane, item, dedupeId, limit } of entries) {
      if (limit && !dedupeId) throw new Error('a push counted against a rate limit needs its dedupe id');
      args.push(lane, item, dedupeId ?? '', limit?.key ?? '', limit?.limit ?? 0, limit?.windowMs ?? 0);
    }
    const [wake, ...codes] = await this.redis.lanePushBatch(...args);
    const statuses = codes.map((c): PushStatus => (c === 1 ? 'accepted' : c === 0 ? 'duplicate' : 'limited'));
    const next = wakeOrNone(wake!);
    return next === undefined ? { statuses } : { statuses, wake: next };
  }

  /**
   * Up to `max` ready lanes for wake job `wake` (or, when the job runs again, the lanes it still
   * holds). `next`: more lanes wait, and the caller must add this wake job for them. With
   * `lingerMs`, a job that emptied the ready list keeps the wake mark for that long (`lingers`):
   * lanes that become ready meanwhile wait for its `topUp`, not for a new job.
   */
  async claim(wake: number, max: number, chunk: number, lingerMs = 0): Promise<Claim> {
    return this.claimed(
      wake,
      await this.redis.laneClaim(
        this.claimsKey(wake),
        this.readyKey,
        this.wakingKey,
        this.wakeSeqKey,
        max,
        this.base,
        chunk,
        this.sessions?.cachePrefix ?? '',
        wake,
        lingerMs,
      ),
    );
  }

  /**
   * A lingering job (see `claim`) takes up to `max` lanes that became ready; nothing, and
   * `lingers` false, once the mark is no longer its own. It keeps the mark (renewed for
   * `lingerMs`) while it has lanes to drain (`busy`, or lanes taken now); `lingerMs` 0 lets it go.
   */
  async topUp(wake: number, max: number, chunk: number, lingerMs: number, busy: boolean): Promise<Claim> {
    return this.claimed(
      wake,
      await this.redis.laneTopUp(
        this.claimsKey(wake),
        this.readyKey,
        this.wakingKey,
        this.wakeSeqKey,
        wake,
        max,
        this.base,
        chunk,
        lingerMs,
        busy ? '1' : '0',
        this.sessions?.cachePrefix ?? '',
      ),
    );
  }

  private claimed(wake: number, [entries, next, chunks, sessions, lingers]: ClaimReply): Claim {
    const lanes = entries.map((entry, i) => {
      const claimed = claimedLane(wake, entry, chunks[i] ?? null);
      const session = sessions?.[i];
      if (session) this.sessions?.seen(claimed.lane, session[0], session[1]);
      return claimed;
    });
    const more = wakeOrNone(next);
    const claim: Claim = { lanes, lingers: Number(lingers) === 1 };
    if (more !== undefined) claim.next = more;
    return claim;
  }

  /** The job's drain of a claimed lane is over (the lane is finished, handed back, or owned by a newer epoch). */
  async release(claimed: ClaimedLane): Promise<void> {
    await this.redis.srem(this.claimsKey(claimed.wake), claimed.entry);
  }

  /**
   * The wake jobs that hold claimed lanes, with the lanes each holds (an index kept by the claims
   * themselves, `take.lua`; jobs whose claims were all released leave it now: `claimants.lua`).
   */
  async claimants(): Promise<Map<number, ClaimedLane[]>> {
    const reply = await this.redis.laneClaimants(`${this.base}claimants`, this.base);
    const held = new Map<number, ClaimedLane[]>();
    for (let i = 0; i < reply.length; i += 2) {
      const wake = Number(reply[i]);
      held.set(
        wake,
        (reply[i + 1] as string[]).map((entry) => claimedLane(wake, entry, undefined)),
      );
    }
    return held;
  }

  /**
   * Adds to the index of claiming jobs the claim sets written before there was one (versions
   * before it claimed without indexing), so that the sweep sees them too. It scans the keyspace,
   * so it runs once per queue, by one worker at a time (a lock), and a marker says it is done,
   * set only after a whole scan (a worker that dies or stops in the middle leaves it to the
   * next). `stopped` is asked between the scan's steps.
   */
  async seedClaimants(stopped: () => boolean = () => false): Promise<SeedOutcome> {
    const marker = `${this.base}claimants:seeded`;
    if ((await this.redis.exists(marker)) === 1) return 'done-before';
    const lock = `${this.base}claimants:seeding`;
    const token = randomUUID();
    if ((await this.redis.set(lock, token, 'PX', SEED_LOCK_MS, 'NX')) !== 'OK') return 'busy';
    try {
      const claims = `${this.base}claims:`;
      // The prefix is the operator's: its glob characters must match themselves.
      const match = `${claims.replace(/[*?[\\\]]/g, '\\$&')}*`;
      let added = 0;
      let cursor = '0';
      do {
        if (stopped()) return 'interrupted';
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', SEED_SCAN_COUNT);
        const wakes = keys.map((key) => key.slice(claims.length)).filter((wake) => /^\d+$/.test(wake));
        if (wakes.length > 0) added += await this.redis.sadd(`${this.base}claimants`, ...wakes);
        cursor = next;
      } while (cursor !== '0');
      await this.redis.set(marker, new Date().toISOString());
      return { added };
    } finally {
      // Compared and deleted in one step: a lock that lapsed meanwhile may be another worker's
      // now. A failure here leaves it to expire.
      await this.redis.laneReleaseLock(lock, token).catch(() => undefined);
    }
  }

  /** The wake job that ready lanes wait for (marked now if none was), or undefined when no lane is ready. */
  async pendingWake(): Promise<number | undefined> {
    return wakeOrNone(await this.redis.lanePendingWake(this.readyKey, this.wakingKey, this.wakeSeqKey));
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
   * Acknowledges handled items and, if that empties the lane, unschedules it and releases the
   * job's claim in the same step (one round trip for the common lane of one message): `finished`.
   * Else the lane's next `count` items, read in the same step, or null when a newer epoch owns it.
   * The acknowledgements of one moment (a group commit's lanes) share one script.
   */
  ackAndNext(claimed: ClaimedLane, items: readonly string[], count: number): Promise<AckOutcome> {
    return this.acks.call({ claimed, items, count });
  }

  /** Told, after each batch of acknowledgements, how many lanes wait in the ready list. */
  onAcked: ((ready: number) => void) | undefined;

  private readonly acks = new TickBatcher<AckEntry, AckOutcome>(async (entries) => {
    const args: (string | number)[] = [this.depthKey, this.base];
    for (const { claimed, items, count } of entries)
      args.push(claimed.lane, claimed.epoch, claimed.wake, claimed.entry, count, items.length, ...items);
    const results = await this.redis.laneAckBatch(...args);
    const ready = Number(results.pop());
    this.onAcked?.(ready);
    return results.map((r) => (Array.isArray(r) ? r : Number(r) === 1 ? 'finished' : null));
  });

  /** Unschedules the lane and releases the claim if the lane is empty; false when items arrived meanwhile. */
  async finish(claimed: ClaimedLane): Promise<boolean> {
    return (
      (await this.redis.laneFinish(
        this.laneKey(claimed.lane),
        this.schedKey(claimed.lane),
        this.claimsKey(claimed.wake),
        claimed.epoch,
        claimed.entry,
      )) === 1
    );
  }

  /**
   * Hands a lane on to a new epoch, ready for another job (shutdown). Undefined when `epoch` no
   * longer owns it; `wake`: a wake job the caller must add.
   */
  async handback(lane: string, epoch: number): Promise<{ epoch: number; wake?: number } | undefined> {
    const [next, wake] = await this.redis.laneHandback(
      this.schedKey(lane),
      this.epochKey,
      this.readyKey,
      this.wakingKey,
      this.wakeSeqKey,
      epoch,
      lane,
    );
    if (Number(next) === 0) return undefined;
    const w = wakeOrNone(wake);
    return w === undefined ? { epoch: Number(next) } : { epoch: Number(next), wake: w };
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

  /**
   * Replays the dead letters, oldest first: each is removed only once `requeue` has put it back,
   * so a failure or an interrupted replay leaves the rest where they were, to replay again. A
   * letter requeued but not removed (its removal failed) comes back again at the next replay: the
   * engine finds its envelope recorded and skips it.
   */
  async replayDeadLetters(requeue: (letter: DeadLetter) => Promise<unknown>): Promise<number> {
    let replayed = 0;
    for (;;) {
      const raw = await this.redis.lindex(this.deadKey, 0);
      if (raw === null) return replayed;
      await requeue(JSON.parse(raw) as DeadLetter);
      // By value, not by position: another replay may have taken this one meanwhile.
      if ((await this.redis.lrem(this.deadKey, 1, raw)) === 1) replayed++;
    }
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

  /**
   * Forgets the dead letters set aside more than `olderThanMs` before `now` (they hold whole
   * envelopes), oldest first, a bounded number per script so that Redis is never held long;
   * returns how many. Letters of workers whose clocks differ by a moment may sit a moment out of
   * order: one a little younger than the cutoff ahead of an older one keeps that one until the
   * next prune.
   */
  async pruneDeadLetters(olderThanMs: number, now = Date.now()): Promise<number> {
    const cutoff = new Date(now - olderThanMs).toISOString();
    let pruned = 0;
    for (;;) {
      const dropped = Number(await this.redis.lanePruneDead(this.deadKey, cutoff, PRUNE_DEAD_BATCH));
      pruned += dropped;
      if (dropped < PRUNE_DEAD_BATCH) return pruned;
    }
  }

  /**
   * What the lanes hold now, read in one round trip (`switchboard queue status`): items queued
   * (`depth`), lanes ready for a job, the wake job marked for them (undefined: none), dead letters.
   */
  async counts(): Promise<{ depth: number; ready: number; marked: number | undefined; deadLetters: number }> {
    const replies = await this.redis
      .multi()
      .get(this.depthKey)
      .llen(this.readyKey)
      .get(this.wakingKey)
      .llen(this.deadKey)
      .exec();
    if (!replies) throw new Error("Redis refused the read of the queue's counts");
    const [depth, ready, marked, dead] = replies.map(([err, value]) => {
      if (err) throw err;
      return value;
    });
    return {
      depth: Number(depth ?? 0),
      ready: Number(ready),
      marked: marked == null ? undefined : Number(marked),
      deadLetters: Number(dead),
    };
  }

  /** Items queued in every lane. */
  async depth(): Promise<number> {
    return Number((await this.redis.get(this.depthKey)) ?? 0);
  }
}
