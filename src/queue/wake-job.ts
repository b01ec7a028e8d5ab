import type { Queue } from 'bullmq';

/** The BullMQ job id of wake job `wake` (src/queue/lane-runner.ts). */
export const wakeJobId = (wake: number) => `wake-${wake}`;

/** BullMQ's states of a job that no longer runs, nor will: its claims are nobody's. */
const JOB_OVER: ReadonlySet<string> = new Set(['unknown', 'completed', 'failed']);

/** Whether wake job `wake` is over (gone, completed, or failed for good): the lanes it still claims wait for nobody. */
export async function wakeJobOver(queue: Queue, wake: number): Promise<boolean> {
  return JOB_OVER.has(await queue.getJobState(wakeJobId(wake)));
}
