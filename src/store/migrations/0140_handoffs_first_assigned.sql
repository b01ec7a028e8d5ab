-- When a handoff was first taken by an agent (claimed, or assigned at once), set once and never
-- by a transfer: the dashboard's handoff wait runs from the request to this, in this one's bucket
-- (src/analytics/rollup.ts). assigned_at stays the current holder's (a transfer moves it; the
-- sweep of absent agents' conversations counts from it), so a conversation claimed in 10 s and
-- transferred 30 minutes later was charted as a 30-minute wait, and counted again when the first
-- claim's hour was already rolled up. Existing rows start from assigned_at: a row transferred
-- before this migration keeps its last holder's time, which is all that is known of it. Runs
-- unchanged on PostgreSQL and on the embedded PGlite.
ALTER TABLE handoffs ADD COLUMN first_assigned_at timestamptz;
UPDATE handoffs SET first_assigned_at = assigned_at WHERE assigned_at IS NOT NULL;
