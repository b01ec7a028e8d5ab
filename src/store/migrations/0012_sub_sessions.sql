-- Sub-sessions (CREATE SUB SESSION): a child session of the same person and channel, with its own
-- variables, context and dialog position, linked to its parent and ended when merged back.
ALTER TABLE sessions ADD COLUMN parent_id uuid REFERENCES sessions (id) ON DELETE CASCADE;
CREATE INDEX sessions_parent ON sessions (parent_id) WHERE parent_id IS NOT NULL;
