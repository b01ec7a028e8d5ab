/**
 * The lanes a worker may drain at once (`QUEUE_CONCURRENCY`). A claim takes its room here before
 * it is sent and gives back what it did not use, so claims in flight at the same moment (several
 * wake jobs starting together) never take more lanes than the worker may run.
 */
export class LaneSlots {
  private waiting: (() => void)[] = [];

  constructor(private free: number) {}

  /** Takes up to `max` free slots now; how many. */
  take(max: number): number {
    const n = Math.max(0, Math.min(max, this.free));
    this.free -= n;
    return n;
  }

  /** Takes between one and `max` slots, waiting for the first to be free. */
  async takeSome(max: number): Promise<number> {
    for (;;) {
      const n = this.take(max);
      if (n > 0) return n;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  give(n: number): void {
    if (n <= 0) return;
    this.free += n;
    // Each waiter takes at least one slot when it runs, unless a claim took them first (it then waits again).
    for (let i = 0; i < n && this.waiting.length > 0; i++) this.waiting.shift()!();
  }
}
