-- The durable scheduler's table (src/scheduler/table-scheduler.ts): jobs that run later, claimed
-- by one process at a time. Used when the hub has no Redis (with Redis, BullMQ holds them).
CREATE TABLE scheduled_jobs (
  id text PRIMARY KEY,
  name text NOT NULL,
  payload jsonb NOT NULL,
  run_at timestamptz NOT NULL,
  -- Set for a repeating job: after each run it is due again this long later.
  every_ms bigint,
  -- Runs started, this one included; back to 0 when the job is replaced or repeats.
  attempts integer NOT NULL DEFAULT 0,
  -- The claim of the process running it, and until when that claim holds without a heartbeat.
  claim uuid,
  locked_until timestamptz,
  -- Set once the job has failed MAX_JOB_ATTEMPTS times: it is kept for operators, never run again.
  failed_at timestamptz,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX scheduled_jobs_due ON scheduled_jobs (run_at) WHERE failed_at IS NULL;
