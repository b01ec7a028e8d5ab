-- Every turn updates its session row (last_seq, message_count, last_activity_at, reply_to,
-- expires_at). With no index on a column that update changes, PostgreSQL can make it a HOT
-- update — the new row version goes on the same page and no index gets a new entry — where
-- until now each of the table's indexes got one per turn (issue 19). So no index names
-- last_activity_at (nor expires_at, 0075), and pages keep room for the new versions.
--
-- What the dropped indexes served, and how those queries run now:
-- - sessions_key_activity (bot, channel, native_key, last_activity_at): the latest activity of a
--   key, and an outbound message's latest session of a key. sessions_key below finds the key's
--   sessions (a handful: one per idle-out), whose rows give last_activity_at.
-- - sessions_open_activity (last_activity_at, id) WHERE ended_at IS NULL: the idle sweep (every
--   IDLE_SWEEP_SECONDS) and the active-sessions gauge. Both read the open sessions through
--   sessions_open_key (open sessions only) and sort or count them: the cost grows with the open
--   sessions, not with the table (7 ms a sweep page with 3,300 open among 100,000).
-- - sessions_anonymous_activity (last_activity_at) WHERE auth_level = 'anonymous': the expiry
--   job, once an hour, reads the table.
-- Runs unchanged on PostgreSQL and on the embedded PGlite.
DROP INDEX IF EXISTS sessions_key_activity;
DROP INDEX IF EXISTS sessions_open_activity;
DROP INDEX IF EXISTS sessions_anonymous_activity;
CREATE INDEX IF NOT EXISTS sessions_key ON sessions (bot, channel, native_key);
-- Room on each page for the next version of its rows (new pages; VACUUM FULL would redo old ones).
ALTER TABLE sessions SET (fillfactor = 85);
