-- Agents' event stream (agent_events) carries what the person wrote during a handoff
-- (`conversation.message`: the text) under the session's id, with no reference to the session:
-- an erasure and the expiry of anonymous sessions left those rows behind for good. They now go
-- with their session. Rows of sessions already gone go now: nobody can resume a stream to them.
DELETE FROM agent_events e WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = e.session_id);
CREATE INDEX agent_events_session ON agent_events (session_id);
ALTER TABLE agent_events
  ADD CONSTRAINT agent_events_session_fk FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE;
