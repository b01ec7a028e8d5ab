-- When a person was last here, past their sessions: the expiry job removes anonymous sessions
-- (those on WhatsApp, Teams, email, Slack and Telegram too) after their bot's retention, and with
-- them the only record of that activity. Before it removes them it raises this to their latest
-- activity, for each user the sessions name or whose channel identity they were on; with the
-- sessions that remain, it tells how long a person has been away (IDENTIFIED_USER_RETENTION_DAYS,
-- src/lifecycle/identified-retention.ts). A new user starts at its creation. Existing users start
-- at the migration (now() is evaluated once here, so no row is rewritten): what expired before it
-- is unknown, and counting from now keeps them as long as a retention allows, never less. Runs
-- unchanged on PostgreSQL and on the embedded PGlite.
ALTER TABLE users ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();
