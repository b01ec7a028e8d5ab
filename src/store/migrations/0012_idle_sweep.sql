-- The idle sweep (src/lifecycle/idle-sweep.ts) walks open sessions by last activity.
CREATE INDEX sessions_open_activity ON sessions (last_activity_at, id) WHERE ended_at IS NULL;
