/** The BullMQ job id of wake job `wake` (src/queue/lane-runner.ts). */
export const wakeJobId = (wake: number) => `wake-${wake}`;

/** BullMQ's states of a job that no longer runs, nor will: its claims are nobody's. */
export const JOB_OVER: ReadonlySet<string> = new Set(['unknown', 'completed', 'failed']);
