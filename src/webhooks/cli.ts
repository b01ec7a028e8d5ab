import type { Db } from '../store/db.ts';
import { deadEvents, replayDead } from './store.ts';

/** `switchboard webhooks failed|replay`: dead-lettered events, and sending them again. */
export async function webhooksCommand(
  db: Db,
  action: string,
  args: { id?: string },
  out: (rows: unknown[]) => void,
): Promise<number> {
  if (action === 'failed') {
    const rows = await deadEvents(db, 1000);
    out(
      rows.map((e) => ({
        event: e.eventId,
        type: e.type,
        session: e.sessionId,
        ordering_key: e.orderingKey,
        endpoint: e.endpoint,
        created_at: e.createdAt.toISOString(),
        attempts: e.attempts,
        error: e.lastError,
      })),
    );
    return 0;
  }
  if (action === 'replay') {
    const n = await replayDead(db, args.id ? [args.id] : undefined);
    process.stdout.write(`put ${n} dead-lettered event(s) back; the workers send them within a second\n`);
    return 0;
  }
  process.stderr.write(`unknown action "webhooks ${action}": use failed or replay\n`);
  return 2;
}
