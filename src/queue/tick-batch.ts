/**
 * Most items in one batch: Redis runs a script alone, so a batch stays short (well under a
 * millisecond of Redis's time at this size).
 */
export const TICK_BATCH_MAX = 128;

interface Waiting<T, R> {
  item: T;
  resolve(result: R): void;
  reject(err: Error): void;
}

/**
 * Gathers the calls a process makes in the same turn of the event loop (the envelopes of one
 * burst of requests, the acknowledgements of one group commit's lanes, or whatever one reply from
 * Redis let go on) and makes them with one `send`: for the Redis lanes, one script and one round
 * trip instead of one each. Each caller gets its own result; a batch that fails fails every
 * caller in it.
 *
 * The PostgreSQL batchers are not this one, for a reason: there a statement is a transaction (a
 * commit, an fsync), so the inbox writer (src/queue/in-process.ts) keeps one in flight and
 * GroupCommitter (src/engine/group-commit.ts) a few, of disjoint sessions, and what arrives
 * meanwhile joins the next. Here each tick's batch goes at once, however many are in flight: a
 * script costs Redis well under a millisecond and no fsync, and Redis runs them in the order
 * sent, so there is little to gain by waiting for the one before.
 */
export class TickBatcher<T, R> {
  private waiting: Waiting<T, R>[] = [];
  private scheduled = false;

  constructor(
    /** Answers the items in their order. */
    private readonly send: (items: T[]) => Promise<R[]>,
    private readonly max = TICK_BATCH_MAX,
  ) {}

  call(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
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
    for (let i = 0; i < all.length; i += this.max) void this.run(all.slice(i, i + this.max));
  };

  private async run(batch: Waiting<T, R>[]): Promise<void> {
    try {
      const results = await this.send(batch.map((w) => w.item));
      for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]!);
    } catch (err) {
      for (const w of batch) w.reject(err as Error);
    }
  }
}
