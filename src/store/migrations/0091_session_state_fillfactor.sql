-- Room for the next version of a session's state row on its own page (issue 19). Every turn
-- rewrites its session's session_state row; the table's one index (the primary key) names no
-- column a turn changes, so the update is HOT (no index entry, the index does not grow) when
-- the page has room for the new version. A group commit updates many sessions' rows in one
-- statement, and the versions it replaces cannot be pruned before it commits, so on full pages
-- (fillfactor 100, the default) about one update in ten went to another page in a distributed
-- bench run (HOT 90.4%; with this, 94.2%). Like sessions (0076), its pages keep free space:
-- 30%, as state rows grow with a bot's variables. New pages only; VACUUM FULL would redo old
-- ones. Runs unchanged on PostgreSQL and on the embedded PGlite.
ALTER TABLE session_state SET (fillfactor = 70);
