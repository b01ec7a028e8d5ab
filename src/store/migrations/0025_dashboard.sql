-- The operator dashboard (issue 25): analytics rollups, the audit log of transcript access, and
-- full-text search over messages. Runs unchanged on PostgreSQL and on the embedded PGlite.

-- Closed time buckets, computed once (src/analytics/rollup.ts) so that a dashboard query reads a
-- few hundred rows instead of every message of the range; they also outlive message retention.
-- Counts are per bot and channel; percentiles (key 'p50', 'p95', 'n') are per bot and for all
-- bots (bot '*'), channel '*'.
CREATE TABLE analytics_rollup (
  grain text NOT NULL CHECK (grain IN ('hour', 'day')),
  bucket timestamptz NOT NULL,
  metric text NOT NULL,
  bot text NOT NULL,
  channel text NOT NULL,
  key text NOT NULL DEFAULT '',
  value double precision NOT NULL,
  PRIMARY KEY (grain, bucket, metric, bot, channel, key)
);

-- Which buckets are in analytics_rollup (a bucket without rows, nothing happened, is here too).
CREATE TABLE analytics_rolled (
  grain text NOT NULL,
  bucket timestamptz NOT NULL,
  rolled_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (grain, bucket)
);

-- What the rollup reads by time.
CREATE INDEX sessions_created ON sessions (created_at);
CREATE INDEX sessions_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX handoffs_requested ON handoffs (requested_at);
CREATE INDEX handoffs_session ON handoffs (session_id);

-- The audit log: every read, export, search and inspection of a transcript, by an agent or the
-- operator. No foreign key and no message content: rows outlive the sessions they name (message
-- retention); erasing a person clears the session id of their rows and marks them erased.
ALTER TABLE transcript_reads ALTER COLUMN session_id DROP NOT NULL;
ALTER TABLE transcript_reads ADD COLUMN actor text NOT NULL DEFAULT 'agent' CHECK (actor IN ('agent', 'operator'));
ALTER TABLE transcript_reads ADD COLUMN action text NOT NULL DEFAULT 'transcript.read';
-- How it was reached (the agent API, the console, the admin API) and the format of an export.
ALTER TABLE transcript_reads ADD COLUMN via text;
ALTER TABLE transcript_reads ADD COLUMN detail jsonb NOT NULL DEFAULT '{}';
ALTER TABLE transcript_reads ADD COLUMN erased boolean NOT NULL DEFAULT false;
CREATE INDEX transcript_reads_at ON transcript_reads (at);
CREATE INDEX transcript_reads_agent ON transcript_reads (agent_id, at) WHERE agent_id IS NOT NULL;

-- Transcript search: words in any language, unstemmed ('simple').
CREATE INDEX messages_search ON messages USING gin (to_tsvector('simple', content));
-- Failed deliveries by time (the errors chart).
CREATE INDEX messages_failed ON messages (created_at) WHERE delivery_status = 'failed';
