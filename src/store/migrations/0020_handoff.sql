-- Human handoff (issue 20): agents, their sign-ins, handoffs, the agents' event log and the
-- audit log of transcript reads. Runs unchanged on PostgreSQL and on the embedded PGlite.

CREATE TABLE agents (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  -- argon2id, PHC string format.
  password_hash text NOT NULL,
  role text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
  -- Bot names this agent serves ("*": every bot), and optional queues (skills).
  bots jsonb NOT NULL DEFAULT '[]',
  queues jsonb NOT NULL DEFAULT '[]',
  capacity integer NOT NULL DEFAULT 5 CHECK (capacity >= 0),
  status text NOT NULL DEFAULT 'offline' CHECK (status IN ('available', 'away', 'offline')),
  -- SHA-256 of the agent's API token; the token itself is never stored.
  token_hash bytea UNIQUE,
  -- The last sign of life from a console or event stream (the offline check reads it).
  last_seen_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX agents_email ON agents (lower(email));

-- A person's signed-in browser: the cookie holds a 256-bit token, stored here only hashed.
CREATE TABLE agent_logins (
  token_hash bytea PRIMARY KEY,
  agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX agent_logins_agent ON agent_logins (agent_id);

-- Failed sign-ins, by e-mail address and by client address: the throttle counts them.
CREATE TABLE agent_login_failures (
  key text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_login_failures_key ON agent_login_failures (key, at);

-- One row per TRANSFER SESSION: waiting for an agent, assigned to one, then ended.
CREATE TABLE handoffs (
  id uuid PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  bot text NOT NULL,
  channel text NOT NULL,
  queue text,
  state text NOT NULL CHECK (state IN ('waiting', 'assigned', 'ended')),
  agent_id uuid REFERENCES agents (id) ON DELETE SET NULL,
  requested_at timestamptz NOT NULL DEFAULT now(),
  assigned_at timestamptz,
  ended_at timestamptz,
  end_reason text
);
-- At most one open handoff per session.
CREATE UNIQUE INDEX handoffs_open ON handoffs (session_id) WHERE state <> 'ended';
CREATE INDEX handoffs_agent ON handoffs (agent_id) WHERE state = 'assigned';
CREATE INDEX handoffs_waiting ON handoffs (bot, requested_at) WHERE state = 'waiting';

-- What agents' event streams carry, kept so that a stream resumes after Last-Event-ID.
CREATE TABLE agent_events (
  id bigserial PRIMARY KEY,
  type text NOT NULL,
  session_id uuid NOT NULL,
  bot text NOT NULL,
  -- The agent the conversation is assigned to when the event happened (null: waiting).
  agent_id uuid,
  queue text,
  data jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_events_time ON agent_events (created_at);

-- Every read of a transcript through the agent API: who, which session, when, from where.
CREATE TABLE transcript_reads (
  id bigserial PRIMARY KEY,
  agent_id uuid,
  session_id uuid NOT NULL,
  ip text,
  user_agent text,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transcript_reads_session ON transcript_reads (session_id, at);

-- Where a session stands in a handoff, read with its state by the engine on every turn.
ALTER TABLE session_state ADD COLUMN handoff jsonb;
