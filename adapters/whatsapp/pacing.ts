/** Entries older than this are forgotten when the table grows. */
const FORGET_AFTER_MS = 60_000;
const PRUNE_AT_SIZE = 10_000;

/**
 * Spaces the messages to one person: each waits until at least `intervalMs` after the previous
 * one to the same recipient, in this process. A recipient can also be held back for a while
 * (the platform said we were too fast for that pair).
 */
export class RecipientPacer {
  private readonly next = new Map<string, number>();

  constructor(
    private readonly intervalMs: number,
    private readonly sleep: (ms: number) => Promise<void> = (ms) =>
      new Promise((resolve) => setTimeout(resolve, ms)),
  ) {}

  /** Resolves when a message to `recipient` may go; reserves the slot after it. */
  async wait(recipient: string): Promise<void> {
    const now = Date.now();
    const at = Math.max(now, this.next.get(recipient) ?? 0);
    this.next.set(recipient, at + this.intervalMs);
    if (this.next.size > PRUNE_AT_SIZE) this.prune(now);
    if (at > now) await this.sleep(at - now);
  }

  /** Nothing goes to `recipient` for `ms` from now. */
  holdBack(recipient: string, ms: number): void {
    this.next.set(recipient, Math.max(this.next.get(recipient) ?? 0, Date.now() + ms));
  }

  private prune(now: number): void {
    for (const [key, at] of this.next) if (at < now - FORGET_AFTER_MS) this.next.delete(key);
  }
}
