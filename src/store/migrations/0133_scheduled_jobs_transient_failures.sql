-- The table scheduler (src/scheduler/table-scheduler.ts): a run that fails because a dependency
-- is away (PostgreSQL or Redis unreachable) no longer counts among a job's five starts. It gives
-- its start back (`attempts - 1`) and counts here instead; the count spaces its retries (1 s,
-- 2 s, 4 s, ... up to a minute apart). Back to 0 when the job is replaced. A constant default:
-- no table rewrite on PostgreSQL, and runs unchanged on the embedded PGlite.
ALTER TABLE scheduled_jobs ADD COLUMN transient_failures integer NOT NULL DEFAULT 0;
