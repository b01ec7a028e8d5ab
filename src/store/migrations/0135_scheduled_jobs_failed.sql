-- The durable scheduler's jobs set aside as failed (src/scheduler/table-scheduler.ts) are listed
-- and replayed by operators (`switchboard scheduler failed|replay`) and counted at each scrape of
-- `/metrics` (`switchboard_scheduler_failed_jobs`). This index holds those jobs only, not the
-- pending ones: the count and the list read a few entries, however many jobs wait. Runs
-- unchanged on PostgreSQL and on the embedded PGlite.
CREATE INDEX scheduled_jobs_failed ON scheduled_jobs (failed_at) WHERE failed_at IS NOT NULL;
