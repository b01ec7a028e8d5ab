import type { Queue } from 'bullmq';
import type { RedisLanes } from './redis-lanes.ts';
import { wakeJobId, wakeJobOver } from './wake-job.ts';

/** What one shared queue holds now (`switchboard queue status`). */
export interface LaneQueueStatus {
  queue: string;
  driver: 'redis-lanes';
  /** Items queued in its lanes and not yet handled (inbound: envelopes; outbound: wake-up calls of sessions with replies to send). */
  depth: number;
  /** Lanes waiting for a wake job to claim them. */
  readyLanes: number;
  /** The wake job marked for the ready lanes, and its state in BullMQ (`unknown`: not added, or gone). */
  wakeJob: { wake: number; state: string } | null;
  /** BullMQ's wake jobs by state. */
  jobs: { waiting: number; active: number; delayed: number };
  /** Lanes claimed by wake jobs, and how many jobs hold them. */
  claimed: { lanes: number; jobs: number };
  /** Of those, lanes held by jobs that are over: the workers' sweep hands them back (`QUEUE_SWEEP_MS`). */
  stranded: { lanes: number; jobs: number };
  /** Items set aside after failing again and again (`switchboard queue failed`). */
  deadLetters: number;
}

/** Reads a shared queue's state: its lanes in Redis and its wake jobs in BullMQ. Changes nothing a worker relies on. */
export async function laneQueueStatus(
  name: string,
  lanes: RedisLanes,
  bull: Queue,
): Promise<LaneQueueStatus> {
  const [counts, claimants, jobs] = await Promise.all([
    lanes.counts(),
    lanes.claimants(),
    bull.getJobCounts('waiting', 'active', 'delayed'),
  ]);
  const claimed = { lanes: 0, jobs: claimants.size };
  const stranded = { lanes: 0, jobs: 0 };
  for (const [wake, held] of claimants) {
    claimed.lanes += held.length;
    if (!(await wakeJobOver(bull, wake))) continue;
    stranded.jobs++;
    stranded.lanes += held.length;
  }
  return {
    queue: name,
    driver: 'redis-lanes',
    depth: counts.depth,
    readyLanes: counts.ready,
    wakeJob:
      counts.marked === undefined
        ? null
        : { wake: counts.marked, state: await bull.getJobState(wakeJobId(counts.marked)) },
    jobs: { waiting: jobs.waiting ?? 0, active: jobs.active ?? 0, delayed: jobs.delayed ?? 0 },
    claimed,
    stranded,
    deadLetters: counts.deadLetters,
  };
}

/** The embedded hub's queue (the inbox in its database): what waits, what was set aside. */
export interface InboxQueueStatus {
  queue: string;
  driver: 'in-process';
  depth: number;
  deadLetters: number;
}

export type QueueStatus = LaneQueueStatus | InboxQueueStatus;

/** The embedded queue's status from the inbox's counts (`inboxCounts`). */
export function inboxQueueStatus(counts: { pending: number; failed: number }): InboxQueueStatus {
  return { queue: 'inbound', driver: 'in-process', depth: counts.pending, deadLetters: counts.failed };
}

/** One line a queue, for a person: what waits, what runs, what is stuck. */
export function formatLaneQueueStatus(s: LaneQueueStatus): string {
  const wake = s.wakeJob ? `wake job ${s.wakeJob.wake} ${s.wakeJob.state}` : 'no wake job marked';
  const stuck =
    s.stranded.lanes > 0
      ? `, ${s.stranded.lanes} lane(s) held by ${s.stranded.jobs} job(s) that are over (the sweep hands them back)`
      : '';
  return (
    `${s.queue}: ${s.depth} queued; ${s.readyLanes} lane(s) ready, ${wake}; ` +
    `jobs ${s.jobs.active} active, ${s.jobs.waiting} waiting, ${s.jobs.delayed} delayed; ` +
    `${s.claimed.lanes} lane(s) claimed by ${s.claimed.jobs} job(s)${stuck}; ${s.deadLetters} dead letter(s)`
  );
}
