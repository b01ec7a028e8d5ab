import type { Hub } from '../../src/hub.ts';
import { until } from './until.ts';

/**
 * Resolves once the hub has nothing in hand: no envelope queued or in progress (the queue's
 * depth counts an envelope until its turn is committed) and no reply waiting to be sent. The
 * explicit signal for "nothing more arrives" checks; with Redis the depth is every worker's.
 */
export async function settled(hub: Hub, timeoutMs = 30_000): Promise<void> {
  await until(
    async () => {
      const depth = await hub.queue.depth();
      const { rows } = await hub.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM messages WHERE delivery_status = 'queued'",
      );
      return depth + rows[0]!.n;
    },
    (pending) => pending === 0,
    timeoutMs,
  );
}
