-- Switchboard's first schema. Runs unchanged on PostgreSQL and on the embedded PGlite.

CREATE TABLE users (
  id uuid PRIMARY KEY,
  display_name text,
  email text,
  -- The host site's own id for this person (the `sub` of the JWT that signed them in).
  external_id text UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One person, several channel identities: a phone, an email address, a Teams id, a web session.
CREATE TABLE user_identities (
  channel text NOT NULL,
  native_id text NOT NULL,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  display_name text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (channel, native_id)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

CREATE TABLE sessions (
  id uuid PRIMARY KEY,
  bot text NOT NULL,
  channel text NOT NULL,
  -- The channel-native part of the session key: from.id, and '#' + thread where there is one.
  native_key text NOT NULL,
  user_id uuid REFERENCES users (id) ON DELETE CASCADE,
  -- SHA-256 of the bearer token; the token itself is never stored.
  token_hash bytea UNIQUE,
  auth_level text NOT NULL DEFAULT 'anonymous' CHECK (auth_level IN ('anonymous', 'authenticated', 'elevated')),
  -- What the channel needs to answer (Teams ConversationReference, email headers): the latest seen.
  reply_to jsonb,
  meta jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  last_activity_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  ended_at timestamptz,
  end_reason text,
  -- Messages the person sent in this session.
  message_count integer NOT NULL DEFAULT 0,
  -- The last per-session sequence number handed to a message row.
  last_seq bigint NOT NULL DEFAULT 0
);
-- At most one open session per key; ended ones stay for history.
CREATE UNIQUE INDEX sessions_open_key ON sessions (bot, channel, native_key) WHERE ended_at IS NULL;
CREATE INDEX sessions_user ON sessions (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX sessions_expires ON sessions (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX sessions_activity ON sessions (last_activity_at);

CREATE TABLE messages (
  session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  seq bigint NOT NULL,
  role text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
  content text NOT NULL,
  -- Inbound rows: the envelope id. Unique, so a replayed envelope can never be recorded twice.
  envelope_id text UNIQUE,
  -- Reply rows: the envelope whose turn produced them.
  in_reply_to text,
  delivery_status text NOT NULL CHECK (delivery_status IN ('received', 'queued', 'sent', 'delivered', 'read', 'failed')),
  delivery_attempts integer NOT NULL DEFAULT 0,
  delivery_error text,
  -- The platform's id of an outbound message (a wamid, an activity id), to match status updates.
  channel_message_id text,
  -- Attachments, suggestions and anything else beside the text.
  payload jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, seq)
);
CREATE INDEX messages_in_reply_to ON messages (in_reply_to) WHERE in_reply_to IS NOT NULL;
CREATE INDEX messages_channel_message ON messages (channel_message_id) WHERE channel_message_id IS NOT NULL;
CREATE INDEX messages_undelivered ON messages (created_at) WHERE delivery_status = 'queued';

CREATE TABLE session_state (
  session_id uuid PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
  variables jsonb NOT NULL DEFAULT '{}',
  context jsonb NOT NULL DEFAULT '{}',
  kbs jsonb NOT NULL DEFAULT '[]',
  tools jsonb NOT NULL DEFAULT '[]',
  suggestions jsonb NOT NULL DEFAULT '[]',
  -- Where a dialog script waits (script, position, call stack, locals), as plain JSON.
  dialog jsonb,
  -- Optimistic concurrency: every write checks and bumps it, so a late writer cannot win.
  version bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bot_memory (
  bot text NOT NULL,
  key text NOT NULL,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bot, key)
);

CREATE TABLE session_events (
  id bigserial PRIMARY KEY,
  session_id uuid REFERENCES sessions (id) ON DELETE CASCADE,
  bot text NOT NULL,
  channel text NOT NULL,
  type text NOT NULL,
  data jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_events_session ON session_events (session_id);
CREATE INDEX session_events_time ON session_events (created_at);

-- The durable log behind the in-process queue: an envelope is here before it is acknowledged.
CREATE TABLE inbox (
  id bigserial PRIMARY KEY,
  envelope_id text NOT NULL UNIQUE,
  lane text NOT NULL,
  envelope jsonb NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  failed_at timestamptz
);
CREATE INDEX inbox_pending ON inbox (id) WHERE processed_at IS NULL AND failed_at IS NULL;
