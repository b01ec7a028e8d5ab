import type { PushEntry, PushStatus, RedisLanes } from './redis-lanes.ts';

/**
 * Most items in one batch: Redis runs a script alone, so a batch stays short (well under a
 * millisecond of Redis's time at this size).
 */
export const PUSH_BATCH_MAX = 128;

interface Waiting {
  entry: PushEntry;
  resolve(status: PushStatus): void;
  reject(err: Error): void;
}

/**
 * Gathers the pushes a process makes in the same turn of the event loop (the envelopes of one
 * burst of requests, or of one reply from Redis that let many producers go on) and queues them
 * with one script (`RedisLanes.pushMany`): one round trip, one EVALSHA and one rate-limit clock
 * read for all of them, instead of one each. Each caller is answered once its item is durably
 * queued (or refused) and, if the batch marked a wake job, once that job is added: as a single
 * push. A batch that fails fails every caller in it (even one whose item was queued before the wake
 * job's add failed: its retry is a duplicate, and the sweep adds the wake job).
 */
export class PushBatcher {
  private waiting: Waiting[] = [];
  private scheduled = false;

  constructor(
    private readonly lanes: RedisLanes,
    private readonly dedupeTtlMs: number,
    private readonly wake: (wake: number) => Promise<void>,
  ) {}

  push(entry: PushEntry): Promise<PushStatus> {
    return new Promise<PushStatus>((resolve, reject) => {
      this.waiting.push({ entry, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      // After the I/O callbacks of this turn (and the promise chains they started) have run.
      setImmediate(this.flush);
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const all = this.waiting;
    this.waiting = [];
    for (let i = 0; i < all.length; i += PUSH_BATCH_MAX) void this.send(all.slice(i, i + PUSH_BATCH_MAX));
  };

  private async send(batch: Waiting[]): Promise<void> {
    try {
      const { statuses, wake } = await this.lanes.pushMany(
        batch.map((w) => w.entry),
        this.dedupeTtlMs,
      );
      if (wake !== undefined) await this.wake(wake);
      for (let i = 0; i < batch.length; i++) batch[i]!.resolve(statuses[i]!);
    } catch (err) {
      for (const w of batch) w.reject(err as Error);
    }
  }
}
