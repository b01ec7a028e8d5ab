-- Session lifecycle: memory that follows a person across channels, and what operators query.

-- A person's memory (`SET USER MEMORY`, ctx.user.memory): shared by every session and channel
-- identity of the user, erased with the user.
CREATE TABLE user_memory (
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  key text NOT NULL,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, key)
);

-- The admin listing filters by bot and channel, newest first.
CREATE INDEX sessions_bot_channel_created ON sessions (bot, channel, created_at DESC);
-- The expiry job walks open and ended sessions by last activity, per auth level.
CREATE INDEX sessions_anonymous_activity ON sessions (last_activity_at) WHERE auth_level = 'anonymous';
-- Statistics count events by type over time; expiry events outlive their session (session_id NULL).
CREATE INDEX session_events_type_time ON session_events (type, created_at);
-- Message retention deletes by age.
CREATE INDEX messages_created ON messages (created_at);
