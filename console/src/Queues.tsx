import { describeTrend, type Trend } from './queue-trend.ts';

/** The shape `GET /api/admin/queue` answers for each queue (README "Dashboard"). */
export type QueueStatus =
  | {
      queue: string;
      driver: 'redis-lanes';
      depth: number;
      readyLanes: number;
      wakeJob: { wake: number; state: string } | null;
      jobs: { waiting: number; active: number; delayed: number };
      claimed: { lanes: number; jobs: number };
      stranded: { lanes: number; jobs: number };
      deadLetters: number;
    }
  | { queue: string; driver: 'in-process'; depth: number; deadLetters: number };

/** What `GET /api/admin/queue` tells of the durable scheduler (README "Scheduled work"). */
export interface SchedulerStatus {
  driver: 'table' | 'bullmq';
  /** One-off jobs set aside after their last attempt, waiting for `switchboard scheduler replay`. */
  failed: number;
}

const QUEUE_NAMES: Record<string, string> = {
  inbound: 'Inbound (messages to the bot)',
  outbound: 'Outbound (replies to send)',
};

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** One cell of a count; `alert` marks a count an operator should act on when it is above zero. */
function Count(props: { field: string; value: number | undefined; alert?: boolean }) {
  const { field, value, alert } = props;
  return (
    <td data-field={field} class={alert && value ? 'alert' : undefined}>
      {value === undefined ? '–' : value}
    </td>
  );
}

/** What each queue holds now: what waits, what runs, what is stuck, what was set aside. */
export function Queues(props: {
  queues?: QueueStatus[];
  scheduler?: SchedulerStatus;
  trends?: Record<string, Trend>;
  error?: string;
}) {
  const { queues, scheduler, trends, error } = props;
  const queueNotes = (queues ?? []).flatMap((q) => {
    const name = q.queue;
    const out: string[] = [];
    if (q.driver === 'redis-lanes' && q.stranded.lanes > 0)
      out.push(
        `${name}: ${plural(q.stranded.lanes, 'lane is', 'lanes are')} held by ${plural(q.stranded.jobs, 'wake job', 'wake jobs')} that ended without handing ${q.stranded.lanes === 1 ? 'it' : 'them'} back. A worker's sweep hands ${q.stranded.lanes === 1 ? 'it' : 'them'} back within two sweeps (QUEUE_SWEEP_MS); if this stays, check that a worker runs.`,
      );
    if (q.deadLetters > 0)
      out.push(
        `${name}: ${plural(q.deadLetters, 'item was', 'items were')} set aside after failing again and again. switchboard queue failed lists them; switchboard queue replay puts them back.`,
      );
    return out;
  });
  const notes =
    scheduler && scheduler.failed > 0
      ? [
          ...queueNotes,
          `Scheduled work: ${plural(scheduler.failed, 'job was', 'jobs were')} set aside after ${scheduler.failed === 1 ? 'its' : 'their'} last attempt (event webhook deliveries, broadcasts, scheduled messages). switchboard scheduler failed lists them; switchboard scheduler replay runs them again.`,
        ]
      : queueNotes;
  return (
    <section class="queues" aria-labelledby="queues-title">
      <h2 id="queues-title">
        Queues <span class="muted">now, all bots</span>
      </h2>
      {error ? (
        <p role="alert" class="error">
          {error}
        </p>
      ) : !queues ? (
        <p class="loading">Loading…</p>
      ) : (
        <div class="table-wrap">
          <table aria-label="Queues">
            <thead>
              <tr>
                <th scope="col">Queue</th>
                <th scope="col">Queued</th>
                <th
                  scope="col"
                  title="Which way the queue went over the last two reloads of Live (about 10 s)"
                >
                  Last 10{'\u00a0'}s
                </th>
                <th scope="col">Lanes ready</th>
                <th scope="col">Wake jobs running / waiting / delayed</th>
                <th scope="col">Lanes claimed</th>
                <th scope="col">Lanes stuck</th>
                <th scope="col">Set aside</th>
              </tr>
            </thead>
            <tbody>
              {queues.map((q) => {
                const lanes = q.driver === 'redis-lanes' ? q : undefined;
                return (
                  <tr data-queue={q.queue}>
                    <th scope="row">
                      {QUEUE_NAMES[q.queue] ?? q.queue}
                      <span class="muted driver">{q.driver === 'redis-lanes' ? ' Redis' : ' embedded'}</span>
                    </th>
                    <Count field="depth" value={q.depth} />
                    <td data-field="trend">
                      {trends?.[q.queue] ? describeTrend(trends[q.queue]!, q.depth) : '–'}
                    </td>
                    <Count field="readyLanes" value={lanes?.readyLanes} />
                    <td data-field="jobs">
                      {lanes ? `${lanes.jobs.active} / ${lanes.jobs.waiting} / ${lanes.jobs.delayed}` : '–'}
                    </td>
                    <Count field="claimed" value={lanes?.claimed.lanes} />
                    <Count field="stranded" value={lanes?.stranded.lanes} alert />
                    <Count field="deadLetters" value={q.deadLetters} alert />
                  </tr>
                );
              })}
            </tbody>
          </table>
          {scheduler && (
            <p class="scheduler-status">
              Scheduled jobs set aside{' '}
              <span class="muted driver">{scheduler.driver === 'bullmq' ? 'Redis' : 'embedded'}</span>:{' '}
              <strong data-field="schedulerFailed" class={scheduler.failed ? 'alert' : undefined}>
                {scheduler.failed}
              </strong>
            </p>
          )}
        </div>
      )}
      {notes.length > 0 && (
        <ul class="queue-notes" aria-label="What needs attention">
          {notes.map((n) => (
            <li>{n}</li>
          ))}
        </ul>
      )}
    </section>
  );
}
