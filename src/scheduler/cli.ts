import type { Scheduler } from './scheduler.ts';

/**
 * `switchboard scheduler failed|replay`: the one-off jobs the durable scheduler set aside after
 * their last attempt (a webhook lane's retry, a broadcast's tick, a scheduled send, a handoff's
 * wait timeout...), whose owners wait on them, and running them again. No payloads are shown:
 * they may hold what a person wrote or who they are.
 */
export async function schedulerCommand(
  scheduler: Scheduler,
  action: string,
  args: { ids?: readonly string[] },
  out: (rows: unknown[]) => void,
): Promise<number> {
  if (action === 'failed') {
    out(
      (await scheduler.failed()).map((job) => ({
        id: job.id,
        name: job.name,
        attempts: job.attempts,
        failed_at: job.failedAt.toISOString(),
        error: job.error,
      })),
    );
    return 0;
  }
  if (action === 'replay') {
    const n = await scheduler.replay(args.ids?.length ? args.ids : undefined);
    const when = scheduler.driver === 'table' ? 'within a second (SCHEDULER_POLL_MS)' : 'now';
    process.stdout.write(`put ${n} set-aside job(s) back; the workers run them ${when}\n`);
    return 0;
  }
  process.stderr.write(`unknown action "scheduler ${action}": use failed or replay\n`);
  return 2;
}
