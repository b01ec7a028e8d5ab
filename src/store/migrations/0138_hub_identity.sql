-- This database's identity (src/store/database-id.ts): one row, a random id written at the first
-- start (not here: the embedded database's data directories are copies of one migrated template,
-- and each must get an id of its own). A hub claims its Redis prefix for this id, so two hubs on
-- two databases cannot share one Redis prefix's queues without a word. Runs unchanged on
-- PostgreSQL and on the embedded PGlite.
CREATE TABLE hub_identity (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  database_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
