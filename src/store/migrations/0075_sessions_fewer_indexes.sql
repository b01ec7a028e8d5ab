-- Fewer indexes on sessions (issue 19): every turn updates its session row, and that update is
-- never HOT (last_activity_at and, for anonymous sessions, expires_at are indexed), so each index
-- on the table gets a new entry per message. These two serve no query:
-- - sessions_activity (last_activity_at): every query that filters or sorts on last_activity_at
--   also asks for open sessions (the idle sweep, the active-sessions gauge, the admin listing's
--   idle/active state: sessions_open_activity) or anonymous ones (the expiry job:
--   sessions_anonymous_activity), or is keyed by person (sessions_key_activity, sessions_user).
-- - sessions_expires (expires_at): no query looks sessions up or ranges over expires_at; the
--   token lookup reads it from the row it found by token_hash.
-- Runs unchanged on PostgreSQL and on the embedded PGlite.
DROP INDEX IF EXISTS sessions_activity;
DROP INDEX IF EXISTS sessions_expires;
