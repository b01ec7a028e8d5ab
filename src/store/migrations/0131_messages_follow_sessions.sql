-- History rows go with their session by a trigger on `sessions` instead of a foreign key on
-- `messages` (issue 19). The key's check ran for every history row inserted: a query through
-- SPI per row (an executor start, a primary-key lookup on `sessions`, a row lock), 12–14% of
-- PostgreSQL's CPU in the group commit's statement (perf, 12 sessions × 9 turns a statement);
-- every turn writes two rows or more.
--
-- What the key guaranteed still holds:
-- - A session's rows are deleted with it, in the same statement (erasure, expiry, a user's or
--   a parent's cascade): the trigger below, once per statement, over the deleted sessions.
-- - No row without its session: a history row is written only by a turn's commit
--   (src/store/turns.ts), which in the same transaction updates the session's state row (a
--   turn whose state row is gone writes nothing) and then the session row, so a session deleted
--   meanwhile either is gone before (nothing written), or waits for the turn's commit and then
--   deletes its rows too (the trigger's DELETE reads what committed before it), or deadlocks
--   with it and one of the two is rolled back.
-- Runs unchanged on PostgreSQL and on the embedded PGlite.
ALTER TABLE messages DROP CONSTRAINT messages_session_id_fkey;

CREATE FUNCTION messages_follow_sessions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM messages m USING deleted_sessions d WHERE m.session_id = d.id;
  RETURN NULL;
END $$;

CREATE TRIGGER sessions_delete_messages AFTER DELETE ON sessions
  REFERENCING OLD TABLE AS deleted_sessions
  FOR EACH STATEMENT EXECUTE FUNCTION messages_follow_sessions();
